"""Source 2: RabbitMQ in a container, started and removed through testcontainers.

Used when a Docker-compatible engine answers: Docker, or Podman serving the Docker API through
DOCKER_HOST. The image comes from RABBITMQ_IMAGE (default: the official one); its ports are
published on 127.0.0.1 only, and its stream port is advertised as this machine sees it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets

import psutil

from tutorial_tools import leftovers
from tutorial_tools.addresses import PASSWORD, USER, masked
from tutorial_tools.rabbitmq_server import free_ports
from tutorial_tools.sources import (
    ADVERTISED_HOST,
    LISTENERS,
    PLUGINS,
    Broker,
    BrokerError,
    BrokerUnavailable,
    fixed_ports,
)

DEFAULT_IMAGE = "rabbitmq:4.3-management"
START_TIMEOUT = 90.0


def _prepare_testcontainers_for_podman() -> None:
    """Podman serves no Ryuk reaper image and reports no gateway: tell testcontainers so.

    Must run before testcontainers is imported, because it reads some settings then. Every
    container started here is removed by stop(), so no reaper is needed.
    """
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            components = client.version().get("Components") or []
        finally:
            client.close()
    except Exception:
        return
    if any("podman" in str(c.get("Name", "")).lower() for c in components):
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


TAKEN = "address already in use"  # how an engine says that a host port was taken


class ContainerBroker(Broker):
    """RabbitMQ in a container, started and removed through testcontainers."""

    source = "container"
    # Printed by rabbitmq-server once it has started every plugin and opened its listeners,
    # whether it logs to the console (the official image) or to a file (Debian's package).
    STARTED = r"completed with \d+ plugins"

    def __init__(self, image: str | None = None, fixed_port: int | None = None) -> None:
        super().__init__()
        self.image = image or os.environ.get("RABBITMQ_IMAGE") or DEFAULT_IMAGE
        self.fixed = fixed_ports(fixed_port)
        self.name = f"tutorial-rabbitmq-{os.getpid()}-{secrets.token_hex(3)}"
        self._container = None

    def start(self, attempts: int = 3) -> ContainerBroker:
        """Start the container; ``attempts`` times at most, each on other free host ports:
        free_ports() chooses ports free at that moment, and another process (another test
        worker's broker) may bind one before the engine does."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_on_free_ports()
            except Exception as exc:
                if TAKEN not in str(exc):
                    raise
                if attempt == attempts:  # a port given with --port stays taken: one line
                    said = re.search(r'\("([^"]+)"\)', str(exc))  # the engine's own words
                    raise BrokerUnavailable(said[1] if said else str(exc)) from exc
        raise ValueError(f"attempts must be 1 or more, not {attempts}")

    def _start_on_free_ports(self) -> ContainerBroker:
        _prepare_testcontainers_for_podman()
        from testcontainers.community.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer(self.image, username=USER, password=PASSWORD)
        container.with_name(self.name)
        if os.environ.get(leftovers.MARK):  # so that a run can find it should we be killed
            container.with_kwargs(labels={leftovers.LABEL: os.environ[leftovers.MARK]})
        # Every host port is chosen here, not by the engine, and below the ephemeral range (see
        # free_ports): a restart binds them again, and a port the engine picked from that range
        # could meanwhile be the local end of some outgoing connection (CI saw a restart fail
        # with "address already in use"). The stream port is advertised, besides.
        host_ports = dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True)) | self.fixed
        for name, (port, _) in LISTENERS.items():
            # Published on 127.0.0.1 only (an engine's default is every interface).
            container.ports[str(port)] = ("127.0.0.1", host_ports.get(name))
        # This list replaces the image's own (the official image enables management only).
        container.with_env("RABBITMQ_ENABLED_PLUGINS", ",".join(PLUGINS))
        container.with_env(
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            f"-rabbitmq_stream advertised_host {ADVERTISED_HOST} "
            f"-rabbitmq_stream advertised_port {host_ports['stream']}",
        )
        self._container = container.waiting_for(self._started(1))
        try:
            container.start()
            self._read_ports()
        except BaseException:
            self.stop()
            raise
        return self

    def _started(self, nth: int):
        """testcontainers' wait for the ``nth`` start line in the log, with a deadline."""
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        # A container's log keeps the lines of its earlier starts; the strategy's `times` is
        # not honoured (testcontainers 4.15), so the pattern itself asks for the n-th line.
        pattern = re.compile(f"(?:{self.STARTED}.*?){{{nth}}}", re.DOTALL)
        return LogMessageWaitStrategy(pattern).with_startup_timeout(START_TIMEOUT)

    def _start_lines(self) -> int:
        """How many start lines the container's log holds so far. Not only one per container
        start: 'rabbitmqctl start_app' prints one too."""
        stdout, stderr = self._container.get_logs()
        return max(len(re.findall(self.STARTED, text.decode())) for text in (stdout, stderr))

    def _read_ports(self) -> None:
        host = self._container.get_container_host_ip()
        self.host = "127.0.0.1" if host == "localhost" else host
        for name, (port, _) in LISTENERS.items():
            self.ports[name] = int(self._container.get_exposed_port(port))

    def restart(self) -> str:
        before = self._start_lines()
        self._container.get_wrapped_container().restart(timeout=30)
        self._started(before + 1).wait_until_ready(self._container)
        self._read_ports()  # the engine may map other host ports after a restart
        return self.url

    def rabbitmqctl_command(self) -> str:
        return f"docker exec {self.name} rabbitmqctl"  # with Podman: podman exec

    def rabbitmqctl(self, *args: str) -> str:
        code, output = self._container.get_wrapped_container().exec_run(["rabbitmqctl", *args])
        text = output.decode(errors="replace")
        if code != 0:
            raise BrokerError(f"rabbitmqctl {' '.join(args)} failed ({code}): {text.strip()[:500]}")
        return text

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        wrapped = container.get_wrapped_container()  # None when starting failed early
        try:
            container.stop()  # removes the container and its anonymous volumes
        except Exception as exc:
            if "no such container" not in str(exc).lower():
                raise
        if wrapped is not None:
            _end_exec_monitors(wrapped.id)

    def describe(self) -> str:
        return f"container broker ({self.name}, image {self.image}) at {masked(self.url)}"


def _end_exec_monitors(container_id: str) -> None:
    """End the conmon processes Podman 4.3 leaves behind for each exec through its Docker API.

    They watch rabbitmqctl runs of a container that is gone, and would linger for about five
    minutes. Only this container's are touched (matched by its full ID); Docker has none.
    """
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "conmon" and container_id in cmdline:
            with contextlib.suppress(psutil.Error):
                process.terminate()
