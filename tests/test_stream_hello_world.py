"""Stream Hello World: send.py appends to 'hello-python-stream'; every receive.py reads it all."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tutorial_tools.chapters import WAITING_STREAM
from tutorial_tools.management import ManagementApi
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
# A script retries for 5 s from its first warning, and rabbitmqctl can take that long to start
# on a loaded machine: so the broker lets the leader go itself, within 50 ms of a queue named
# LET_GO appearing in the test's virtual host, which the test declares over HTTP (or after a
# minute, so that a failed test cannot leave the broker's streams stuck).
LET_GO = "let-the-leader-go"
HOLD_THE_LEADER = """sys:suspend(osiris_server_sup),
spawn(fun() -> (fun Wait(N) ->
    case N > 0 andalso rabbit_amqqueue:lookup(rabbit_misc:r(<<"{vhost}">>, queue, <<"{name}">>)) of
        {{ok, _}} -> sys:resume(osiris_server_sup);
        false -> sys:resume(osiris_server_sup);
        _ -> timer:sleep(50), Wait(N - 1)
    end end)(1200) end), ok."""
LEADERLESS = f"^Leader not yet elected for stream {STREAM}"  # rstream's own warning


def found_without_its_leader(sandbox, script: str):
    """Declare the stream while its leader cannot start, then start ``script``, which finds the
    stream without a leader; let the leader go once ``script`` says so. Return its process."""
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    management = sandbox.broker.management
    sandbox.rabbitmqctl("eval", HOLD_THE_LEADER.format(vhost=sandbox.vhost, name=LET_GO))
    # The declaration is answered once the leader is there, so it waits in a thread of its own.
    declared = ThreadPoolExecutor(1)
    stream = {
        "durable": True,
        "arguments": {"x-queue-type": "stream", "x-max-length-bytes": 5_000_000_000},
    }
    declaring = declared.submit(
        ManagementApi(management.base_url, *management.auth, timeout=120).put,
        "queues",
        sandbox.vhost,
        STREAM,
        body=stream,
    )
    try:
        wait_until(lambda: STREAM in sandbox.queue_names(), 30, "the stream to be declared")
        found = sandbox.start(script)
        found.wait_for(LEADERLESS)
    finally:
        management.put("queues", sandbox.vhost, LET_GO, body={"durable": True})
        declaring.result(timeout=60)
        declared.shutdown()
    return found


def read_once_each(*receivers) -> None:
    for receiver in receivers:
        receiver.wait_for(GOT)
        assert receiver.interrupt() == 0
        assert messages(receiver) == [GOT]
        assert receiver.matching(r"^ \[!\]") == []


NO_LEADERLESS_STREAM = (
    "a declaration of a stream that has no leader yet waits for it, so no script finds "
    "it without one (test_receivers_started_together_on_a_new_stream_each_read_it)"
)


@pytest.mark.rabbitmq(since=(4, 0), otherwise=NO_LEADERLESS_STREAM)
def test_a_receiver_that_finds_a_new_stream_without_its_leader_waits_for_it(sandbox):
    receiver = found_without_its_leader(sandbox, RECEIVE)
    send(sandbox)
    read_once_each(receiver)


@pytest.mark.rabbitmq(since=(4, 0), otherwise=NO_LEADERLESS_STREAM)
def test_a_sender_that_finds_a_new_stream_without_its_leader_waits_for_it(sandbox):
    sender = found_without_its_leader(sandbox, "stream_hello_world/send.py")
    assert sender.wait() == 0
    assert sender.stdout == [SENT]
    read_once_each(sandbox.start(RECEIVE))


def test_receivers_started_together_on_a_new_stream_each_read_it(sandbox):
    for _ in range(3):  # a new stream each time: the first of them declares it
        receivers = [sandbox.start(RECEIVE) for _ in range(4)]
        for receiver in receivers:
            receiver.wait_for(WAITING_STREAM)
        send(sandbox)
        read_once_each(*receivers)
        sandbox.broker.management.delete("queues", sandbox.vhost, STREAM)
