"""Drive cluster/docker-compose.yml: three RabbitMQ nodes in containers, clustered.

    cluster = ComposeCluster("cluster/docker-compose.yml", project="tutorialci_cluster")
    cluster.start()     # up -d, then waits until the three run as one cluster
    ...                 # cluster.nodes[1].url: node 2's AMQP URL; kill(2), start_node(2)
    cluster.stop()      # down -v: containers, network and data (in a finally)

Through `docker compose` when a Docker CLI with compose answers, else podman-compose (with
CONTAINERS_CONF set as .ci/run sets it). Nodes are found by the labels both put on their
containers, since the two name containers differently.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tutorial_tools.cluster import SIZE  # make cluster's nodes; the compose file has as many
from tutorial_tools.sources import BrokerError, BrokerUnavailable
from tutorial_tools.waiting import wait_until

START_TIMEOUT = 120.0  # measured: about 20 s on two busy cores, most of it the three boots
EXEC_TIMEOUT = 60.0  # rabbitmqctl against a node that does not answer may wait for ever


@dataclass(frozen=True)
class ComposeNode:
    """One node as the host sees it: the compose file publishes node N on each port + N - 1."""

    service: str  # rabbit1
    name: str  # rabbit@rabbit1
    url: str
    stream_url: str
    management_url: str


def _node(n: int) -> ComposeNode:
    return ComposeNode(
        f"rabbit{n}",
        f"rabbit@rabbit{n}",
        f"amqp://guest:guest@localhost:{5672 + n - 1}/%2F",
        f"rabbitmq-stream://guest:guest@localhost:{5552 + n - 1}/%2F",
        f"http://localhost:{15672 + n - 1}",
    )


def _answers(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_compose() -> tuple[list[str], str]:
    """The compose command and the engine CLI beside it: Docker's when its compose plugin and
    engine both answer (a learner's laptop), else podman-compose and podman (CI, no engine)."""
    docker = shutil.which("docker")
    if docker and _answers([docker, "compose", "version"]) and _answers([docker, "version"]):
        return [docker, "compose"], docker
    # podman-compose comes with the project's [compose] extra, next to this Python.
    beside = Path(sys.executable).with_name("podman-compose")
    podman_compose = shutil.which("podman-compose") or (str(beside) if beside.exists() else None)
    podman = shutil.which("podman")
    if podman_compose and podman:
        return [podman_compose], podman
    raise BrokerUnavailable("a compose cluster needs `docker compose`, or podman-compose")


class ComposeCluster:
    """The three nodes of ``compose_file``, run as compose project ``project``; ``image``
    replaces the file's image (through RABBITMQ_IMAGE, which the file reads)."""

    def __init__(
        self, compose_file: str | Path, image: str | None = None, project: str = "tutorial-cluster"
    ) -> None:
        self.compose, self.engine = find_compose()
        self.compose += ["-p", project, "-f", str(compose_file)]
        self.project = project
        self.env = {**os.environ, **({"RABBITMQ_IMAGE": image} if image else {})}
        self.nodes = [_node(n) for n in range(1, SIZE + 1)]

    def start(self, timeout: float = START_TIMEOUT) -> ComposeCluster:
        """Bring the file up, and return once every node has booted and sees all three
        running. On failure, removes whatever did start."""
        try:
            self._run(*self.compose, "up", "-d")
            ready: set[int] = set()  # a node found ready is not asked again each round

            def formed() -> bool:
                ready.update(n for n in range(1, SIZE + 1) if n in ready or self._in_cluster(n))
                return len(ready) == SIZE

            wait_until(formed, timeout, "three nodes running as one cluster", interval=0.5)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error says more than this one
                self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove the containers, network and volumes: also after a partial or failed start."""
        self._run(*self.compose, "down", "-v")

    def kill(self, n: int) -> None:
        """SIGKILL node n's container: a crash, with no goodbye to the other nodes."""
        self._run(self.engine, "kill", "--signal", "KILL", self._container(n))

    def stop_node(self, n: int) -> None:
        """SIGTERM, then 60 s (not 10) before SIGKILL: a busy node hands its leaders over."""
        self._run(self.engine, "stop", "-t", "60", self._container(n))

    def start_node(self, n: int, timeout: float = START_TIMEOUT) -> None:
        """Start node n's container again and wait until it runs in the cluster again."""
        self._run(self.engine, "start", self._container(n))
        wait_until(lambda: self._in_cluster(n, n), timeout, f"node {n} back in the cluster", 0.5)

    def ctl(self, n: int, *args: str) -> str:
        """rabbitmqctl inside node n's container, whose environment carries the cookie."""
        return self._exec(n, "rabbitmqctl", *args)

    def _exec(self, n: int, *argv: str) -> str:
        return self._run(self.engine, "exec", self._container(n), *argv, timeout=EXEC_TIMEOUT)

    def _in_cluster(self, n: int, *others: int) -> bool:
        """Node n has booted, plugins included, and sees running the nodes ``others`` (by
        default all three: another may be down on purpose when n comes back)."""
        try:
            self._exec(n, "rabbitmq-diagnostics", "-q", "check_running")
            status = json.loads(self.ctl(n, "cluster_status", "--formatter", "json"))
        except (BrokerError, ValueError):
            return False
        wanted = {self.nodes[m - 1].name for m in others or range(1, SIZE + 1)}
        return wanted <= set(status.get("running_nodes", []))

    def _container(self, n: int) -> str:
        """Node n's container id, by the labels that docker compose and podman-compose set."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        filters += ["--filter", f"label=com.docker.compose.service={self.nodes[n - 1].service}"]
        ids = self._run(self.engine, "ps", "-a", "-q", *filters).split()
        if len(ids) != 1:
            raise BrokerError(f"{len(ids)} containers for node {n} in project {self.project}")
        return ids[0]

    def _run(self, *argv: str, timeout: float | None = None) -> str:
        """Run a command, return its output; if it fails or hangs, raise BrokerError with its
        stderr, where compose, the engine and rabbitmqctl say what went wrong."""
        run = subprocess.run
        try:
            done = run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"{' '.join(argv)}: no answer in {timeout:g} s") from exc
        if done.returncode:
            said = (done.stderr or done.stdout).strip()[-2000:]
            raise BrokerError(f"{' '.join(argv)} failed ({done.returncode}): {said}")
        return done.stdout
