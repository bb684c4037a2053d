"""RPC: rpc_client.py asks for fib(n) on 'rpc_queue'; rpc_server.py answers on the reply queue."""

from __future__ import annotations

import time

import pytest

from tutorial_tools.chapters import AWAITING_RPC
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.waiting import wait_until

FIB = {0: 0, 1: 1, 10: 55, 20: 6765, 25: 75025, 27: 196418, 30: 832040}


def start_servers(sandbox, count: int = 1) -> list[ScriptProcess]:
    # One after the other: RabbitMQ 3.10 can fail a consumer on a quorum queue that another
    # connection is declaring at the same moment (INTERNAL_ERROR), which is not what we test.
    return [sandbox.start("rpc/rpc_server.py", ready=AWAITING_RPC) for _ in range(count)]


def start_client(sandbox, n: int) -> ScriptProcess:
    return sandbox.start("rpc/rpc_client.py", str(n))


def answered(client: ScriptProcess) -> list[str]:
    """All a client printed, once it has exited successfully."""
    assert client.wait() == 0, client.output
    return client.stdout


@pytest.mark.parametrize("n", [30, 0, 1, 10], ids=lambda n: f"fib({n}) = {FIB[n]}")
def test_the_client_gets_fib_n_from_the_server(sandbox, n):
    (server,) = start_servers(sandbox)

    client = sandbox.run("rpc/rpc_client.py", str(n))

    assert answered(client) == [f" [x] Requesting fib({n})", f" [.] Got {FIB[n]}"]
    # The server printed its line before it answered; read from its pipe, it may come after.
    assert server.wait_for(r"^ \[\.\] fib\(") == [f" [.] fib({n})"]


def test_several_clients_at_once_each_get_their_own_answer(sandbox):
    (server,) = start_servers(sandbox)

    clients = {n: start_client(sandbox, n) for n in (30, 20, 27, 10)}  # all in flight together

    assert {n: answered(client)[-1] for n, client in clients.items()} == {
        n: f" [.] Got {FIB[n]}" for n in clients
    }
    asked = server.wait_for(r"^ \[\.\] fib\(", count=len(clients))
    assert sorted(asked) == sorted(f" [.] fib({n})" for n in clients)


def each_served_some(servers: list[ScriptProcess], n: int) -> None:
    """The ``servers`` answered the ``n`` fib(25) requests between them, each some of them (as
    read from their pipes, which may lag the answers the clients printed)."""

    def done() -> list[int]:
        return [len(server.matching(r"^ \[\.\] fib\(25\)$")) for server in servers]

    counts = wait_until(lambda: sum(done()) >= n and done(), 30, f"the servers' {n} lines")
    assert sum(counts) == n
    assert min(counts) >= 1, f"one server did all the work: {counts}"


def test_two_servers_share_the_load(sandbox):
    servers = start_servers(sandbox, 2)

    clients = [start_client(sandbox, 25) for _ in range(6)]

    assert [answered(client)[-1] for client in clients] == [f" [.] Got {FIB[25]}"] * 6
    each_served_some(servers, 6)


def test_a_client_with_no_server_gives_up_with_a_clear_message_within_its_timeout(sandbox):
    started = time.monotonic()
    client = sandbox.run("rpc/rpc_client.py", "30", "--timeout", "2")
    elapsed = time.monotonic() - started

    assert client.process.returncode == 1
    assert client.stderr == [" [!] No answer within 2 s: is rpc_server.py running?"]
    assert 2 <= elapsed < 2 + 5  # it waited its timeout, and not much longer
