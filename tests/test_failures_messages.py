"""Every script fails well, part 3: bad arguments, odd messages, confusing RPC replies.

A script refuses what AMQP cannot carry before it publishes anything; a receiver survives a
body that is not UTF-8; the RPC server answers what it cannot compute with an error, and the
RPC client prints only the answer to its own request.
"""

from __future__ import annotations

import re

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties

QUORUM = {"x-queue-type": "quorum"}


def publish(sandbox, exchange: str, routing_key: str, body: bytes | str, **props) -> None:
    with sandbox.connection() as connection:
        connection.channel().basic_publish(
            exchange, routing_key, body, pika.BasicProperties(**props)
        )


# -- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, usage",
    [
        (
            "routing/receive_logs_direct.py",
            "Usage: receive_logs_direct.py [info] [warning] [error]",
        ),
        ("topics/receive_logs_topic.py", "Usage: receive_logs_topic.py [binding_key]..."),
    ],
    ids=["direct", "topic"],
)
def test_a_receiver_without_keys_prints_its_usage(sandbox, script, usage):
    proc = sandbox.run(script)
    assert (proc.process.returncode, proc.stdout, proc.stderr) == (1, [], [usage])


# AMQP carries a routing key in at most 255 bytes.
LONGEST = "k" * 255
TOO_LONG = "é" * 128  # 128 characters, but 256 bytes


@pytest.mark.parametrize(
    "sender, receiver, binding_key, too_long",
    [
        # Bound to the longest key: a script that cut "k" * 256 down to 255 bytes would reach it.
        ("routing/emit_log_direct.py", "routing/receive_logs_direct.py", LONGEST, "k" * 256),
        # Bound to everything: any message at all would reach it.
        ("topics/emit_log_topic.py", "topics/receive_logs_topic.py", "#", TOO_LONG),
    ],
    ids=["direct", "topic"],
)
def test_a_routing_key_over_255_bytes_is_refused_before_publishing(
    sandbox, sender, receiver, binding_key, too_long
):
    listening = sandbox.start(receiver, binding_key, ready="Waiting for logs")
    refused = sandbox.run(sender, too_long, "Never sent")
    assert refused.process.returncode == 1
    assert refused.stdout == []
    assert refused.stderr == [f"Routing key is longer than 255 bytes: {too_long[:20]}..."]
    # The next message arrives, and alone: had the refused one gone out, it would be first.
    sandbox.run(sender, LONGEST, "Sent after")
    listening.wait_for("Sent after")
    assert listening.stdout[1:] == [f" [x] {LONGEST}:Sent after"]


@pytest.mark.parametrize(
    "receiver", ["routing/receive_logs_direct.py", "topics/receive_logs_topic.py"]
)
def test_a_binding_key_over_255_bytes_is_refused(sandbox, receiver):
    proc = sandbox.run(receiver, "info", TOO_LONG)
    assert proc.process.returncode == 1
    assert proc.stdout == []
    assert proc.stderr == ["Binding key is longer than 255 bytes"]


@pytest.mark.parametrize("n", ["abc", "-3", "1.5"])
def test_the_rpc_client_refuses_what_is_not_a_non_negative_integer(sandbox, n):
    with sandbox.connection() as connection:  # as rpc_server.py would, but no server runs
        connection.channel().queue_declare("rpc_queue", durable=True, arguments=QUORUM)
    proc = sandbox.run("rpc/rpc_client.py", n)
    assert proc.process.returncode == 2  # argparse's usage error
    assert proc.stdout == []
    assert proc.stderr[-1].startswith("rpc_client.py: error: argument N: ")
    assert f"'{n}'" in proc.stderr[-1]
    assert sandbox.message_count("rpc_queue") == 0


# -- what the RPC server cannot compute --------------------------------------------------


def take_message(
    channel: BlockingChannel, queue: str, timeout: float = 20.0
) -> tuple[BasicProperties, bytes]:
    """The next message on ``queue`` (consumed with auto-ack): (properties, body)."""
    for method, properties, body in channel.consume(
        queue, auto_ack=True, inactivity_timeout=timeout
    ):
        assert method is not None, f"nothing arrived on {queue} within {timeout:g} s"
        return properties, body


def test_the_rpc_client_prints_the_server_s_error_and_exits_1(sandbox):
    server = sandbox.start("rpc/rpc_server.py", ready="Awaiting RPC requests")
    proc = sandbox.run("rpc/rpc_client.py", "50")
    assert proc.process.returncode == 1
    assert proc.stdout == [" [x] Requesting fib(50)"]
    assert proc.stderr == [
        " [!] Server error: n=50 is too large: this server computes fib(n) for n <= 35"
    ]
    # The server says so too (its line may reach us a moment after the client's).
    server.wait_for(r"^ \[!\] n=50 is too large")
    assert server.stdout[1:] == [" [!] n=50 is too large: this server computes fib(n) for n <= 35"]


@pytest.mark.parametrize(
    "request_body, error",
    [
        (b"abc", "not a non-negative integer: 'abc'"),
        (b"-3", "not a non-negative integer: '-3'"),
        (b"\xff\xfe", r"not a non-negative integer: '\\xff\\xfe'"),
        (b"50", "n=50 is too large: this server computes fib(n) for n <= 35"),
    ],
    ids=["abc", "-3", "not-utf8", "50"],
)
def test_the_rpc_server_answers_a_bad_request_with_an_error_and_keeps_serving(
    sandbox, request_body, error
):
    server = sandbox.start("rpc/rpc_server.py", ready="Awaiting RPC requests")
    with sandbox.connection() as connection:
        channel = connection.channel()
        reply_to = channel.queue_declare("", exclusive=True).method.queue
        publish(sandbox, "", "rpc_queue", request_body, reply_to=reply_to, correlation_id="c-1")
        properties, body = take_message(channel, reply_to)
    assert (properties.correlation_id, properties.headers, body) == (
        "c-1",
        {"error": "true"},
        error.encode(),
    )
    # The server asks for one request at a time (prefetch 1): it gets the next one only if it
    # acknowledged the bad one.
    proc = sandbox.run("rpc/rpc_client.py", "10")
    assert (proc.process.returncode, proc.stdout[-1]) == (0, " [.] Got 55")
    assert server.interrupt() == 0
    # Anything still unacknowledged would now be back in the queue.
    assert sandbox.message_count("rpc_queue") == 0
    assert "Traceback" not in server.output


# -- bodies that are not UTF-8 ------------------------------------------------------------

NOT_UTF8 = b"\xff\xfe caf\xe9"  # Latin-1, say, where UTF-8 was expected
ESCAPED = r"\xff\xfe caf\xe9"

# receiver, its arguments, where to publish (exchange, routing key), what it prints
NOT_UTF8_ROWS = [
    ("hello_world/receive.py", (), ("", "hello"), f" [x] Received {ESCAPED}"),
    ("work_queues/worker.py", (), ("", "task_queue"), f" [x] Received {ESCAPED}"),
    ("publish_subscribe/receive_logs.py", (), ("logs", ""), f" [x] {ESCAPED}"),
    ("routing/receive_logs_direct.py", ("info",), ("direct_logs", "info"), f" [x] info:{ESCAPED}"),
    ("topics/receive_logs_topic.py", ("#",), ("topic_logs", "a.b"), f" [x] a.b:{ESCAPED}"),
]


@pytest.mark.parametrize(
    "receiver, args, destination, printed", NOT_UTF8_ROWS, ids=[row[0] for row in NOT_UTF8_ROWS]
)
def test_a_body_that_is_not_utf8_is_printed_escaped_and_the_receiver_goes_on(
    sandbox, receiver, args, destination, printed
):
    proc = sandbox.start(receiver, *args, ready="Waiting for")
    publish(sandbox, *destination, NOT_UTF8)
    publish(sandbox, *destination, "Next")
    proc.wait_for("Next")
    assert proc.matching(re.escape(ESCAPED)) == [printed]
    assert proc.stderr == []


# -- replies that are not ours -------------------------------------------------------------


def reply(
    channel: BlockingChannel,
    request: tuple[BasicProperties, bytes],
    correlation_id: str | None,
    body: str,
) -> None:
    """Answer ``request`` on its reply queue, with the given correlation id."""
    properties, _ = request
    channel.basic_publish(
        "", properties.reply_to, body, pika.BasicProperties(correlation_id=correlation_id)
    )


def test_the_rpc_client_prints_its_own_answer_once_whatever_else_arrives(sandbox):
    # The test plays a confused server: around the right answer, sent twice, it sends answers
    # that are not for this request, before and after.
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("rpc_queue", durable=True, arguments=QUORUM)
        client = sandbox.start("rpc/rpc_client.py", "7")
        request = take_message(channel, "rpc_queue")
        correlation_id = request[0].correlation_id
        reply(channel, request, None, "111")
        reply(channel, request, f"not-{correlation_id}", "999")
        reply(channel, request, correlation_id, "13")
        reply(channel, request, correlation_id, "13")
        reply(channel, request, f"also-not-{correlation_id}", "21")
        assert client.wait() == 0
    assert client.stdout == [" [x] Requesting fib(7)", " [.] Got 13"]
    assert client.stderr == []


def test_a_late_answer_for_an_earlier_client_is_not_taken_for_the_next_one(sandbox):
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("rpc_queue", durable=True, arguments=QUORUM)
        # The first client gives up before any server answers...
        first = sandbox.run("rpc/rpc_client.py", "5", "--timeout", "0.5")
        assert first.process.returncode == 1
        assert first.stderr == [" [!] No answer within 0.5 s: is rpc_server.py running?"]
        late = take_message(channel, "rpc_queue")
        # ...and its answer, late, lands in the next client's queue, the only reply there.
        second = sandbox.start("rpc/rpc_client.py", "6", "--timeout", "1")
        request = take_message(channel, "rpc_queue")
        reply(channel, request, late[0].correlation_id, "5")
        assert second.wait() == 1
    assert second.stdout == [" [x] Requesting fib(6)"]
    assert second.stderr == [" [!] No answer within 1 s: is rpc_server.py running?"]
