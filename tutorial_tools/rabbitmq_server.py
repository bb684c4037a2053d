"""A rabbitmq-server installed on this machine, run as a child process on mirakuru.

Each node has its own name, ports, Erlang port mapper (epmd) and data directory, so that several
can run side by side (the tests run two) and none touches a RabbitMQ already on the machine.
Every port it opens is on 127.0.0.1; the test of that is tests/test_broker.py.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import IO

from mirakuru import TCPExecutor
from mirakuru.base import ENV_UUID, cleanup_subprocesses
from mirakuru.base_env import processes_with_env

# At exit, mirakuru SIGKILLs every process whose mirakuru_uuid merely *contains* the exiting
# process's PID ("PID:uuid4"): a `make broker` with PID 537 that ends would kill the broker of
# a test worker with PID 5371, or one whose uuid4 has the digits 537. Each broker here is
# stopped by whoever started it, and leftovers.py removes what a killed command left behind.
atexit.unregister(cleanup_subprocesses)

# Where a rabbitmq-server may be installed, besides PATH. Debian's /usr/sbin wrapper switches
# to the rabbitmq user, so the real script in /usr/lib/rabbitmq/bin comes first.
CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/opt/homebrew/sbin/rabbitmq-server",
    "/usr/local/sbin/rabbitmq-server",
)
# Erlang's own listeners: node-to-node distribution (rabbitmqctl reaches the node through it)
# and its port mapper, epmd, which our node starts on a port of its own and which ends with it.
ERLANG_ON_LOOPBACK = "-kernel inet_dist_use_interface {127,0,0,1}"


def find_server() -> str | None:
    override = os.environ.get("TUTORIAL_RABBITMQ_SERVER_CANDIDATES")
    candidates = CANDIDATES if override is None else override.split(os.pathsep)
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rabbitmq-server")


def free_ports(count: int) -> list[int]:
    """``count`` different ports, free right now, below the ephemeral range (32768 and up on
    Linux): the kernel hands those out as the local ends of outgoing connections, so one could
    be taken by a client socket before the broker binds it."""
    with contextlib.ExitStack() as held:  # each stays bound until all are chosen
        ports: list[int] = []
        for _ in range(50 * count):
            sock = held.enter_context(socket.socket())
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", secrets.randbelow(32767 - 20000) + 20000))
                ports.append(sock.getsockname()[1])
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found no {count} free ports between 20000 and 32767")


class ServerExited(RuntimeError):
    """rabbitmq-server ended while it was starting (often: one of its ports was taken)."""


class RabbitMqServer(TCPExecutor):
    """rabbitmq-server in the foreground, ready once its log says it listens on its AMQP port.

    mirakuru starts it in a session of its own (a Ctrl+C in the terminal reaches us, not the
    broker), stops the whole process group with SIGTERM (SIGKILL after ``timeout``) and ends
    every process it left, epmd included, by the marker mirakuru puts in their environment.
    """

    def __init__(
        self,
        server: str,
        node: str,
        workdir: Path,
        ports: dict[str, int],
        log: IO[str],
        timeout: float = 90,
    ) -> None:
        self.node = node
        self.rabbitmqctl_path = str(Path(server).with_name("rabbitmqctl"))
        self.log = log
        self.node_log = workdir / "log" / f"{node}.log"
        self.listening = f"started TCP listener on 127.0.0.1:{ports['amqp']}\n".encode()
        self.log_offset = 0
        self.erlang_env = {
            "ERL_EPMD_PORT": str(ports["epmd"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        env = {
            **self.erlang_env,
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_DIST_PORT": str(ports["distribution"]),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERLANG_ON_LOOPBACK,
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_LOGS": str(self.node_log),  # where after_start_check() reads it
        }
        super().__init__(
            [server],
            host="127.0.0.1",
            port=ports["amqp"],
            timeout=timeout,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> RabbitMqServer:
        if self.pre_start_check():  # the AMQP port answers before the node is even started
            raise ServerExited(
                f"port {self.port} on {self.host} is taken: another process answers on it"
            )
        # A restart logs to the same file: only what this start logs counts.
        self.log_offset = self.node_log.stat().st_size if self.node_log.exists() else 0
        return super().start()

    def after_start_check(self) -> bool:
        # The wrapper script exits 0 even when the node it runs fails: do not wait for a port
        # that nothing will open.
        if self.process is not None and self.process.poll() is not None:
            tail = Path(self.log.name).read_text(errors="replace")[-1500:]
            self.kill()  # and whatever it left, epmd included
            why = "a port it was given was taken meanwhile: eaddrinuse"
            why = f" ({why})" if "eaddrinuse" in tail else ""
            raise ServerExited(f"rabbitmq-server exited as it started{why}\n{tail}")
        # Ready once the node itself logs that it listens on its AMQP port (its last listener
        # to start), not as soon as the port accepts a connection: between free_ports()
        # choosing the port and the node binding it, another process may have taken it. The
        # node then dies ('eaddrinuse'), and is started again on other ports.
        return self._logged_listening() and super().after_start_check()

    def _logged_listening(self) -> bool:
        try:
            with self.node_log.open("rb") as log:
                log.seek(self.log_offset)
                return self.listening in log.read()
        except FileNotFoundError:
            return False

    def stop(self, *args, **kwargs) -> RabbitMqServer:
        """Stop the node (SIGTERM to its process group), in about a second instead of six.

        At shutdown the management agent's event handler resets a setting through the
        application controller, which is busy stopping RabbitMQ: the call waits out its 5 s
        timeout (rabbit_mgmt_db_handler:terminate/2). Removed while the node still runs, the
        handler has nothing left to wait for at shutdown.
        """
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.rabbitmqctl(
                    "eval", "gen_event:delete_handler(rabbit_event, rabbit_mgmt_db_handler, [])."
                )
        return super().stop(*args, **kwargs)

    def pids(self) -> set[int]:
        """Every process of this node: the wrapper, the Erlang VM and its helpers, its epmd."""
        return processes_with_env(ENV_UUID, self.envvars[ENV_UUID])

    def rabbitmqctl(self, *args: str) -> str:
        """Run rabbitmqctl against this node; what it printed. Fails with RuntimeError, saying
        rabbitmqctl's first line and its DIAGNOSTICS section (where it gave one)."""
        env = dict(os.environ, **self.erlang_env, RABBITMQ_CTL_ERL_ARGS=ERLANG_ON_LOOPBACK)
        result = subprocess.run(
            [self.rabbitmqctl_path, "-n", self.node, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            first, _, rest = (result.stderr or result.stdout).strip().partition("\n")
            why = rest[rest.find("DIAGNOSTICS") :] if "DIAGNOSTICS" in rest else rest
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): "
                f"{first}\n{why.strip()[:1500]}"
            )
        return result.stdout
