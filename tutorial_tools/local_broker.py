"""Source 3: a rabbitmq-server installed on this machine, run as a child process.

Each broker has its own node name, free ports and a temporary data directory, deleted when it
stops; rabbitmq_server.py runs the process itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from tutorial_tools.addresses import masked
from tutorial_tools.rabbitmq_server import RabbitMqServer, ServerExited, find_server, free_ports
from tutorial_tools.sources import (
    LISTENERS,
    PLUGINS,
    Broker,
    BrokerError,
    BrokerUnavailable,
    fixed_ports,
)

START_TIMEOUT = 90.0


class LocalBroker(Broker):
    """rabbitmq-server run as a child process, with its own node name, ports and data."""

    source = "local"

    def __init__(self, server: str | None = None, fixed_port: int | None = None) -> None:
        super().__init__()
        self.server = server or find_server()
        if self.server is None:
            raise BrokerUnavailable("no rabbitmq-server is installed")
        # A name@localhost node name avoids a long wait on host name resolution.
        self.node = f"tutorial-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.fixed = fixed_ports(fixed_port)
        self.workdir: Path | None = None
        self.process: RabbitMqServer | None = None

    def start(self, attempts: int = 3) -> LocalBroker:
        """Start the node; ``attempts`` times at most, each on other free ports."""
        self.workdir = Path(tempfile.mkdtemp(prefix="tutorial-rabbitmq-"))
        for directory in ("mnesia", "log"):
            (self.workdir / directory).mkdir()
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        try:
            self._start_on_free_ports(attempts)
        except ServerExited as exc:  # in one line: the logs keep the rest (stop() says where)
            self.stop()
            raise BrokerUnavailable(str(exc).partition("\n")[0]) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_ports(self, attempts: int = 3) -> None:
        """Start; if the node dies starting (a port taken meanwhile), again on other ports."""
        for attempt in range(1, attempts + 1):
            names = (*LISTENERS, "distribution", "epmd")
            self.ports = dict(zip(names, free_ports(len(names)), strict=True)) | self.fixed
            try:
                self._start_node()
                return
            except ServerExited:
                if attempt == attempts:
                    raise

    def _start_node(self) -> None:
        """Start the node on self.ports; with the same name and data directory as before, it
        comes back with its durable queues and persistent messages."""
        assert self.workdir is not None
        config = (line.format(port=self.ports[name]) for name, (_, line) in LISTENERS.items())
        (self.workdir / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        with (self.workdir / "server.out").open("a") as log:  # the node keeps its own copy
            self.process = RabbitMqServer(
                self.server, self.node, self.workdir, self.ports, log, START_TIMEOUT
            )
            self.process.start()

    def restart(self) -> str:
        assert self.process is not None
        self.process.stop()
        try:
            self._start_node()
        except ServerExited:
            self._start_on_free_ports()  # a port was taken while it was down: the URL changes
        return self.url

    def rabbitmqctl_command(self) -> str:
        # The node runs its own port mapper (epmd): rabbitmqctl must ask that one for the node.
        rabbitmqctl = str(Path(self.server).with_name("rabbitmqctl"))
        return f"env ERL_EPMD_PORT={self.ports['epmd']} {rabbitmqctl} -n {self.node}"

    def rabbitmqctl(self, *args: str) -> str:
        assert self.process is not None
        try:
            return self.process.rabbitmqctl(*args)
        except RuntimeError as exc:
            raise BrokerError(str(exc)) from exc

    def stop(self) -> None:
        """Kill the node and delete its data: nothing of it is kept, so nothing need be saved.
        A node that had ended by itself keeps its data directory, logs included, and says so
        (one that never got as far as logging, its port taken, has nothing to keep)."""
        process = self.process
        ended = process is not None and not process.running() and process.node_log.exists()
        try:
            if process is not None:
                process.kill()
        finally:
            if self.workdir is not None and ended:
                print(f"The broker {self.node} had ended by itself; its logs: {self.workdir}/log")
            elif self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def describe(self) -> str:
        return f"local broker (node {self.node}) at {masked(self.url)}"
