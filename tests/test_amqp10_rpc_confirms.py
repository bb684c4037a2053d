"""The AMQP 1.0 track, RPC and publisher confirms (amqp10/rpc/, amqp10/publisher_confirms/): the
same claims as test_rpc.py and test_publisher_confirms.py, Direct Reply-To where the broker has
it, and the pika chapter answering the AMQP 1.0 one and back."""

from __future__ import annotations

import re
import time

import pytest
from test_amqp10 import SINCE_4_0
from test_publisher_confirms import limit_queue, take_all
from test_rpc import each_served_some

from tutorial_tools.chapters import AWAITING_RPC
from tutorial_tools.processes import ScriptProcess

SERVER, CLIENT = "amqp10/rpc/rpc_server.py", "amqp10/rpc/rpc_client.py"
DIRECT = "amqp10/rpc/rpc_amqp10.py"
CONFIRMS = "amqp10/publisher_confirms/publisher_confirms.py"
FIB = {0: 0, 1: 1, 10: 55, 20: 6765, 25: 75025, 27: 196418, 30: 832040}
SINCE_4_2 = pytest.mark.rabbitmq(
    since=(4, 2),
    otherwise="Direct Reply-To over AMQP 1.0, and reply-to converted between AMQP 0-9-1 and "
    "1.0, came with 4.2 (test_before_4_2_...)",
)
BEFORE_4_2 = pytest.mark.rabbitmq(
    since=(4, 0),
    before=(4, 2),
    otherwise="it has no AMQP 1.0 (before 4.0), or Direct Reply-To over it (since 4.2)",
)


def start_server(sandbox, script: str = SERVER) -> ScriptProcess:
    return sandbox.start(script, ready=AWAITING_RPC)


def answered(client: ScriptProcess) -> list[str]:
    """All a client printed, once it has exited successfully."""
    assert client.wait() == 0, client.output
    return client.stdout


def asked(server: ScriptProcess, count: int) -> list[str]:
    """The server's ' [.] fib(n)' lines, once there are ``count`` (printed before it answers,
    they may reach us after the answer does)."""
    return server.wait_for(r"^ \[\.\] fib\(", count=count)


@SINCE_4_0
@pytest.mark.parametrize("n", [30, 0, 10], ids=lambda n: f"fib({n}) = {FIB[n]}")
def test_the_client_gets_fib_n_from_the_server_once(sandbox, n):
    server = start_server(sandbox)
    client = sandbox.run(CLIENT, str(n))
    assert answered(client) == [f" [x] Requesting fib({n})", f" [.] Got {FIB[n]}"]
    assert asked(server, 1) == [f" [.] fib({n})"]
    assert server.interrupt() == 0
    # One answer, one request taken off the queue and accepted: nothing more, nothing left.
    assert server.matching(r"^ \[") == [
        " [x] Awaiting RPC requests",
        f" [.] fib({n})",
        " [*] Interrupted",
    ]
    assert client.stderr == server.stderr == []
    assert sandbox.message_count("rpc_queue") == 0


@SINCE_4_0
def test_several_clients_at_once_each_get_their_own_answer(sandbox):
    server = start_server(sandbox)
    clients = {n: sandbox.start(CLIENT, str(n)) for n in (30, 20, 27, 10)}  # all in flight
    assert {n: answered(client) for n, client in clients.items()} == {
        n: [f" [x] Requesting fib({n})", f" [.] Got {FIB[n]}"] for n in clients
    }
    assert sorted(asked(server, len(clients))) == sorted(f" [.] fib({n})" for n in clients)
    assert server.interrupt() == 0
    assert len(server.matching(r"^ \[\.\] fib\(")) == len(clients)


@SINCE_4_0
def test_two_servers_share_the_load(sandbox):
    servers = [start_server(sandbox) for _ in range(2)]  # one credit each: a request at a time
    clients = [sandbox.start(CLIENT, "25") for _ in range(6)]
    assert [answered(client)[-1] for client in clients] == [f" [.] Got {FIB[25]}"] * 6
    each_served_some(servers, 6)


@SINCE_4_0
def test_a_request_the_server_cannot_answer_gets_an_error_back(sandbox):
    server = start_server(sandbox)
    client = sandbox.run(CLIENT, "40")
    why = "n=40 is too large: this server computes fib(n) for n <= 35"
    assert (client.process.returncode, client.stderr) == (1, [f" [!] Server error: {why}"])
    server.wait_for(re.escape(f" [!] {why}"))
    assert server.interrupt() == 0


@SINCE_4_0
def test_a_client_with_no_server_gives_up_and_its_answer_comes_back_released(sandbox):
    started = time.monotonic()
    client = sandbox.run(CLIENT, "10", "--timeout", "1")
    elapsed = time.monotonic() - started
    assert client.process.returncode == 1
    assert client.stderr == [" [!] No answer within 1 s: is rpc_server.py running?"]
    assert elapsed >= 1  # it waited its timeout (how much longer depends on the machine)
    # The request waited in 'rpc_queue'; a server started later answers a reply queue that went
    # with its client: no queue takes the answer, and the server says so and carries on.
    assert sandbox.message_count("rpc_queue") == 1
    server = start_server(sandbox)
    server.wait_for(r"^ \[!\] The answer was released: has the client gone\?$")
    assert sandbox.run(CLIENT, "1").stdout[-1] == " [.] Got 1"
    assert server.interrupt() == 0


@SINCE_4_2
@pytest.mark.parametrize(
    ("client", "server"),
    [
        ("rpc/rpc_client.py", SERVER),  # AMQP 0-9-1 asks, AMQP 1.0 answers
        (CLIENT, "rpc/rpc_server.py"),  # and back
    ],
)
def test_the_pika_chapter_and_the_amqp10_chapter_answer_each_other(sandbox, client, server):
    serving = start_server(sandbox, server)
    assert answered(sandbox.run(client, "20")) == [" [x] Requesting fib(20)", " [.] Got 6765"]
    assert asked(serving, 1) == [" [.] fib(20)"]
    assert serving.interrupt() == 0


@BEFORE_4_2
def test_before_4_2_a_pika_client_asks_an_address_amqp10_cannot_answer(sandbox):
    server = start_server(sandbox)
    client = sandbox.run("rpc/rpc_client.py", "20", "--timeout", "1")
    assert client.process.returncode == 1
    # pika's reply_to is a queue name, not made an AMQP 1.0 address before 4.2.
    server.wait_for(r"^ \[!\] The answer was rejected: bad 'to' address string: amq\.gen-")
    assert server.interrupt() == 0


@SINCE_4_2
def test_direct_reply_to_answers_each_ping_at_an_address_rabbitmq_made_up(sandbox):
    both = sandbox.start(DIRECT, ready=AWAITING_RPC)
    both.wait_for(r"^ \[\.\] Got pong \(correlation-id 2\)$")
    assert both.interrupt() == 0
    assert both.stderr == []
    lines = both.stdout
    assert re.fullmatch(
        r" \[\*\] Replies to this client go to /queues/amq\.rabbitmq\.reply-to\.\S+ "
        r"\(to exit press CTRL\+C\)",
        lines[1],
    ), lines
    # Each ping answered once, in turn: its message-id comes back as the pong's correlation-id.
    for n in (1, 2):
        start = lines.index(f" [x] Requesting ping (message-id {n})")
        assert lines[start + 1 : start + 3] == [
            f" [.] ping (message-id {n})",
            f" [.] Got pong (correlation-id {n})",
        ], lines
    assert lines[-1] == " [*] Interrupted"
    assert sandbox.queue_names() == {"rpc-requests"}  # and no reply queue


@BEFORE_4_2
def test_before_4_2_direct_reply_to_says_in_one_line_that_it_needs_4_2(sandbox):
    proc = sandbox.run(DIRECT)
    where = sandbox.url.rpartition("@")[2]
    assert (proc.process.returncode, proc.stdout) == (1, [])
    assert proc.stderr == [
        f" [!] Direct Reply-To over AMQP 1.0 needs RabbitMQ 4.2 or newer at {where} "
        "(run 'make doctor' to diagnose)"
    ]
    assert sandbox.queue_names() == set()  # it asked before it declared anything


N = 500


@SINCE_4_0
@pytest.mark.parametrize("k", [1, 30], ids=["one-at-a-time", "30-at-a-time"])
def test_every_message_published_is_confirmed_and_in_the_queue(sandbox, k):
    proc = sandbox.run(CONFIRMS, str(N), "--in-flight", str(k))
    assert (proc.process.returncode, proc.stderr) == (0, []), proc.output
    how = "one at a time" if k == 1 else f"{k} at a time"
    wait = "each waiting for its outcome" if k == 1 else f"{how}, waiting for their outcomes"
    assert proc.stdout[:2] == [
        f" [*] Publishing {N} messages to 'confirms_amqp10', {wait}",
        f" [x] {N} of {N} messages confirmed",
    ]
    assert re.fullmatch(rf"Published {N} messages {how} in [\d,]+ ms", proc.stdout[2])
    assert sorted(take_all(sandbox, "confirms_amqp10")) == sorted(f"amqp10-{i}" for i in range(N))


@SINCE_4_0
def test_each_run_starts_from_an_empty_queue(sandbox):
    assert sandbox.run(CONFIRMS, "30").process.returncode == 0
    assert sandbox.run(CONFIRMS, "12").process.returncode == 0
    assert sandbox.message_count("confirms_amqp10") == 12


@SINCE_4_0
@pytest.mark.parametrize("k", [1, 20], ids=["one-at-a-time", "20-at-a-time"])
def test_a_full_queue_rejects_and_the_script_stops_at_the_first_rejection(
    sandbox, rabbitmq_version, k
):
    limit_queue(sandbox, "confirms_amqp10", 50)
    proc = sandbox.run(CONFIRMS, "200", "--in-flight", str(k))
    assert proc.process.returncode == 1
    # RabbitMQ 4.3 says which queue refused the message, and why; 4.0 only that one did.
    why = "a queue refused it"
    if rabbitmq_version >= (4, 3):
        why = "queue 'confirms_amqp10' exceeded maximum length"
    (line,) = proc.stderr
    found = re.fullmatch(
        rf" \[!\] RabbitMQ rejected amqp10-\d+: (\d+) of 200 messages confirmed \({why}\)", line
    )
    assert found, proc.output
    # What was confirmed is in the queue, and nothing else (one at a time: all before the one
    # rejected, in order).
    confirmed, taken = int(found.group(1)), take_all(sandbox, "confirms_amqp10")
    assert len(taken) == confirmed >= 50
    if k == 1:
        assert taken == [f"amqp10-{i}" for i in range(confirmed)]


@SINCE_4_0
@pytest.mark.parametrize(
    ("script", "args", "ready"),
    [
        (CLIENT, ("30", "--timeout", "60"), r"^ \[x\] Requesting fib\(30\)$"),
        (CONFIRMS, ("100000", "--in-flight", "20"), r"^ \[\*\] Publishing 100,000 messages"),
    ],
    ids=["client-waiting", "publisher-publishing"],
)
def test_ctrl_c_stops_a_script_in_the_middle_with_one_line(sandbox, script, args, ready):
    proc = sandbox.start(script, *args, ready=ready)
    assert proc.interrupt() == 0
    assert proc.stdout[-1] == " [*] Interrupted"
    assert proc.stderr == []
