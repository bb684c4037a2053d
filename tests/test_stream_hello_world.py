"""Stream Hello World: send.py appends to 'hello-python-stream'; every receive.py reads it all."""

from __future__ import annotations

import pytest

from tutorial_tools.chapters import WAITING_STREAM
from tutorial_tools.waiting import wait_until

pytestmark = pytest.mark.usefixtures("streams")

STREAM = "hello-python-stream"
SENT = " [x] Hello, World! message sent"
GOT = f"Got message: Hello, World! from stream {STREAM}"
RECEIVE = "stream_hello_world/receive.py"


def send(sandbox) -> None:
    proc = sandbox.run("stream_hello_world/send.py")
    assert (proc.process.returncode, proc.stdout, proc.stderr) == (0, [SENT], [])


def messages(receiver) -> list[str]:
    return receiver.matching(r"^Got message: ")


def test_a_message_sent_before_any_consumer_starts_is_read_from_the_first_offset(sandbox):
    send(sandbox)

    receiver = sandbox.start(RECEIVE, ready=WAITING_STREAM)
    receiver.wait_for(GOT)
    assert receiver.interrupt() == 0

    assert messages(receiver) == [GOT]
    assert receiver.stderr == []


def test_two_consumers_each_read_everything_reading_removes_nothing(sandbox):
    send(sandbox)  # before either consumer starts
    first, second = (sandbox.start(RECEIVE, ready=WAITING_STREAM) for _ in range(2))
    send(sandbox)  # while both run
    for receiver in (first, second):
        receiver.wait_for(GOT, count=2)

    # A consumer that starts after both have read everything still finds everything there.
    third = sandbox.start(RECEIVE, ready=WAITING_STREAM)
    third.wait_for(GOT, count=2)
    # One more message for all three: a stream delivers in order, so once it has arrived,
    # anything else that was going to arrive has too.
    send(sandbox)
    for receiver in (first, second, third):
        receiver.wait_for(GOT, count=3)
        assert receiver.interrupt() == 0
        assert messages(receiver) == [GOT] * 3


def test_the_stream_keeps_5_gb_as_both_scripts_declare(sandbox):
    send(sandbox)
    stream = sandbox.broker.management.get("queues", sandbox.vhost, STREAM)
    assert stream["type"] == "stream"
    assert stream["arguments"]["x-max-length-bytes"] == 5_000_000_000


# A new stream is usable once it has elected its leader. On RabbitMQ 4.x a second script that
# declares it meanwhile is told at once that it exists, and finds no leader when it subscribes
# or sends; 3.10 answers its declaration only once the leader is there. The stream's writer,
# whose start makes the leader, cannot start while the supervisor that starts it is suspended.
HOLD_THE_LEADER = "sys:suspend(osiris_server_sup)."
LET_IT_GO = "sys:resume(osiris_server_sup)."


@pytest.mark.rabbitmq(
    since=(4, 0),
    otherwise="a declaration of a stream that has no leader yet waits for it, so no script finds "
    "it without one (test_receivers_started_together_on_a_new_stream_each_read_it)",
)
def test_scripts_that_find_a_new_stream_without_its_leader_wait_for_it(sandbox):
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    sandbox.rabbitmqctl("eval", HOLD_THE_LEADER)
    try:
        creator = sandbox.start(RECEIVE)  # its declaration makes the stream, and waits
        wait_until(lambda: STREAM in sandbox.queue_names(), 30, "the stream to be declared")
        others = [sandbox.start(RECEIVE) for _ in range(3)]
        sender = sandbox.start("stream_hello_world/send.py")
        for proc in [*others, sender]:
            # rstream's own warning: the script found the stream without a leader.
            proc.wait_for(f"^Leader not yet elected for stream {STREAM}")
    finally:
        sandbox.rabbitmqctl("eval", LET_IT_GO)
    assert sender.wait() == 0
    assert sender.stdout == [SENT]
    for receiver in (creator, *others):
        receiver.wait_for(GOT)
        assert receiver.interrupt() == 0
        assert messages(receiver) == [GOT]
        assert receiver.matching(r"^ \[!\]") == []


def test_receivers_started_together_on_a_new_stream_each_read_it(sandbox):
    for _ in range(3):  # a new stream each time: the first of them declares it
        receivers = [sandbox.start(RECEIVE) for _ in range(4)]
        for receiver in receivers:
            receiver.wait_for(WAITING_STREAM)
        send(sandbox)
        for receiver in receivers:
            receiver.wait_for(GOT)
            assert receiver.interrupt() == 0
            assert messages(receiver) == [GOT]
            assert receiver.matching(r"^ \[!\]") == []
        sandbox.broker.management.delete("queues", sandbox.vhost, STREAM)
