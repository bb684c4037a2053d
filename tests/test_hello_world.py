"""Hello World: send.py puts one message on the queue 'hello', receive.py prints it."""

from __future__ import annotations

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.waiting import wait_until

SENT = " [x] Sent 'Hello World!'"
RECEIVED = " [x] Received Hello World!"


def test_the_message_sent_arrives_at_the_receiver_once(sandbox):
    receiver = sandbox.start("hello_world/receive.py", ready=WAITING_MESSAGES)

    sender = sandbox.run("hello_world/send.py")
    receiver.wait_for(r"^ \[x\] Received ")
    # Ctrl+C ends the receiver with all it printed collected, and the queue holds nothing more:
    # no second copy arrived, and none is waiting to.
    assert receiver.interrupt() == 0

    assert (sender.process.returncode, sender.stdout) == (0, [SENT])
    assert receiver.matching(r"^ \[x\] ") == [RECEIVED]
    assert sandbox.message_count("hello") == 0


def test_a_message_sent_before_the_receiver_starts_waits_in_the_queue_until_it_does(sandbox):
    assert sandbox.run("hello_world/send.py").process.returncode == 0
    # The durable queue 'hello' keeps it, with nobody there to take it.
    wait_until(lambda: sandbox.message_count("hello") == 1, 10, "the message in queue 'hello'")

    receiver = sandbox.start("hello_world/receive.py")
    receiver.wait_for(r"^ \[x\] Received ")
    assert receiver.interrupt() == 0

    assert receiver.matching(r"^ \[x\] ") == [RECEIVED]
    assert sandbox.message_count("hello") == 0
