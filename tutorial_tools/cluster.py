"""make cluster: three RabbitMQ nodes on this machine, clustered, kept until Ctrl+C.

    python -m tutorial_tools.cluster [--port 5672]

Each node is a local rabbitmq-server run as local_broker.py runs one: its own node name
(`tutorial-PID-XXXXXX-N@localhost`), ports and data directory, every listener on 127.0.0.1. The
three share an Erlang port mapper (epmd) of their own, on a port of its own, through which they
find each other, and the Erlang cookie of the user who runs them. Node 1 starts alone; nodes 2
and 3 then join it (`rabbitmqctl stop_app`, `join_cluster`, `start_app`), as RabbitMQ's
clustering guide does by hand. With `--port 5672`, node N listens for AMQP on 5672+N-1 and for
streams on 5552+N-1, as rabbitmq-server's own `make start-cluster` does.

Prints each node's URLs, and the export lines for node 1. Ctrl+C (or SIGTERM) stops the three
and removes their data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

from tutorial_tools.lifecycle import STOP_SIGNALS, interrupt, wait_for_stop
from tutorial_tools.local_broker import LocalBroker
from tutorial_tools.rabbitmq_server import find_server, free_ports
from tutorial_tools.sources import PORTS, BrokerError, BrokerUnavailable
from tutorial_tools.waiting import TimedOut, wait_until

SIZE = 3


class ClusterNode(LocalBroker):
    """One node of a LocalCluster: a local broker that uses the cluster's port mapper."""

    def __init__(self, server: str, name: str, ports: dict[str, int]) -> None:
        super().__init__(server)
        self.node = f"{name}@localhost"
        self.fixed = ports  # the cluster's epmd; with --port, its own AMQP and stream ports
        self.taken_down = False  # by kill or halt: not a node that ended by itself

    def kill(self) -> None:
        """SIGKILL to the node's processes, as a crash would end them; its data stays."""
        if self.process is not None:
            self.taken_down = True
            self.process.kill()

    def halt(self) -> None:
        """Stop the node as a shutdown would (SIGTERM); its data stays."""
        if self.process is not None:
            self.taken_down = True
            self.process.stop()

    def start_again(self) -> None:
        """Start a killed or stopped node, with its name, ports and data: it rejoins."""
        if self.process is None or not self.process.running():
            self.taken_down = False  # from here on, stop() must end what this starts
            self._start_node()

    def stop(self) -> None:
        if self.taken_down:
            self.process = None  # not running, and no news: LocalBroker.stop would say so
        super().stop()


class LocalCluster:
    """``size`` local rabbitmq-server nodes, clustered, with an epmd of their own."""

    def __init__(self, size: int = SIZE, first_port: int | None = None) -> None:
        self.server = find_server()
        epmd = shutil.which("epmd")
        if self.server is None or epmd is None:
            raise BrokerUnavailable("a local cluster needs rabbitmq-server (and its epmd)")
        self.epmd_path: str = epmd
        self.size, self.first_port = size, first_port
        self.epmd: subprocess.Popen | None = None
        self.nodes: list[ClusterNode] = []

    def start(self) -> LocalCluster:
        try:
            self._start_epmd()
            name = f"tutorial-{os.getpid()}-{secrets.token_hex(3)}"
            for n in range(1, self.size + 1):
                fixed = {"epmd": self.epmd_port}
                if self.first_port is not None:
                    fixed["amqp"] = self.first_port + n - 1
                    fixed["stream"] = PORTS["stream"] + (self.first_port - PORTS["amqp"]) + n - 1
                self.nodes.append(ClusterNode(self.server, f"{name}-{n}", fixed))
            self._each(lambda node: node.start())  # side by side: the slow part
            first = self.nodes[0].node
            for node in self.nodes[1:]:  # one at a time: each joins the cluster as it is
                node.rabbitmqctl("stop_app")
                node.rabbitmqctl("join_cluster", first)
                node.rabbitmqctl("start_app")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_epmd(self) -> None:
        self.epmd_port = free_ports(1)[0]
        self.epmd = subprocess.Popen(
            [self.epmd_path, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl+C in the terminal is ours to handle, not its
        )

        def answers() -> bool:
            if self.epmd is not None and self.epmd.poll() is not None:
                raise BrokerError(f"epmd exited ({self.epmd.returncode}) on its port")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.epmd_port), timeout=1),
            ):
                return True
            return False

        try:
            wait_until(answers, 10, "the cluster's epmd")
        except TimedOut as exc:
            raise BrokerError(str(exc)) from exc

    def _each(self, do: Callable[[ClusterNode], object]) -> None:
        """``do`` to every node at once; the first error, once all are done."""
        errors: list[BaseException] = []

        def run(node: ClusterNode) -> None:
            try:
                do(node)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:  # let them finish: stop() then finds all they started
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise errors[0]

    def stop(self) -> None:
        """Stop every node and remove its data, then the port mapper."""
        try:
            self._each(lambda node: node.stop())
        finally:
            if self.epmd is not None:
                self.epmd.terminate()
                self.epmd.wait(timeout=10)
                self.epmd = None


def keep(cluster: LocalCluster) -> None:
    first = cluster.nodes[0]
    for number, node in enumerate(cluster.nodes, 1):
        print(f"Node {number}: {node.node}")
        print(f"    AMQP      {node.url}")
        print(f"    streams   {node.stream_url}")
        print(f"    UI        {node.management_url} (guest / guest)")
    print("\nPaste these into the terminals where you run the chapter scripts (node 1):\n")
    print(f"    export RABBITMQ_URL={first.url}")
    print(f"    export RABBITMQ_MANAGEMENT_URL={first.management_url}")
    print(f"    export RABBITMQ_STREAM_URL={first.stream_url}")
    print(f"    alias rabbitmqctl='{first.rabbitmqctl_command()}'")
    print("\nAnd these for the cluster chapter's scripts (cluster/), which know every node:\n")
    print(f"    export RABBITMQ_URLS={','.join(node.url for node in cluster.nodes)}")
    print(f"    export RABBITMQ_STREAM_URLS={','.join(n.stream_url for n in cluster.nodes)}")
    print("\n(Any node's rabbitmqctl: the same alias with that node's name after -n.)")
    print(f"Type here 'kill N' (SIGKILL), 'stop N' or 'start N' for node N (1 to {SIZE}).")
    print("Press Ctrl+C to stop the cluster and remove it.", flush=True)
    if sys.stdin is not None and not sys.stdin.closed:
        take_commands(cluster)  # until stdin ends; Ctrl+C meanwhile raises KeyboardInterrupt
    wait_for_stop()


# What each command typed at make cluster does to its node, and the word that says it is done.
ACTIONS = {
    "kill": ("Killed", ClusterNode.kill),
    "stop": ("Stopped", ClusterNode.halt),
    "start": ("Started", ClusterNode.start_again),
}


def take_commands(cluster: LocalCluster) -> None:
    """Read 'kill N', 'stop N' and 'start N' from stdin until it ends, and do each. In the
    main thread: a node started from another thread would inherit its blocked signals, and
    a SIGTERM would no longer stop it."""
    signal.signal(signal.SIGTTIN, signal.SIG_IGN)  # read in the background: an error, no halt
    with contextlib.suppress(OSError):
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if len(words) != 2 or words[0] not in ACTIONS or words[1] not in NUMBERS:
                print(f"Type 'kill N', 'stop N' or 'start N', N from 1 to {SIZE}", flush=True)
                continue
            number = int(words[1])
            node = cluster.nodes[number - 1]
            if words[0] == "start":
                print(f"Starting node {number} ...", flush=True)
            done_as, act = ACTIONS[words[0]]
            try:
                act(node)
                print(f"{done_as} node {number} ({node.node})", flush=True)
            except (BrokerError, RuntimeError) as exc:
                print(f"tutorial-cluster: {words[0]} {number}: {exc}", flush=True)


NUMBERS = {str(n) for n in range(1, SIZE + 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.cluster",
        description="Start three RabbitMQ nodes on this machine, clustered; keep them until "
        "Ctrl+C.",
    )
    parser.add_argument(
        "--port", type=int, help="node 1's AMQP port; node N's is this + N - 1 (default: free)"
    )
    args = parser.parse_args(argv)
    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    try:
        cluster = LocalCluster(first_port=args.port)
        print(f"Starting {SIZE} local RabbitMQ nodes and clustering them ...", flush=True)
        cluster.start()
    except KeyboardInterrupt:
        return 0
    except (BrokerUnavailable, BrokerError, RuntimeError) as exc:
        print(f"tutorial-cluster: {exc}", file=sys.stderr)
        return 1
    try:
        keep(cluster)
    except KeyboardInterrupt:
        print("\nInterrupted. Stopping the cluster ...", flush=True)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
