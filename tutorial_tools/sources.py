"""Where a throwaway RabbitMQ comes from: what every broker offers, and the choice of source.

Sources, tried in this order unless one is named (``--source`` or ``TUTORIAL_BROKER_SOURCE``):

1. ``url``: an existing broker named by ``RABBITMQ_URL``; used as it is, never stopped
   (url_broker.py).
2. ``container``: a container through testcontainers, when a Docker-compatible engine answers
   (Docker, or Podman through ``DOCKER_HOST``); the image comes from ``RABBITMQ_IMAGE``
   (container_broker.py).
3. ``local``: a ``rabbitmq-server`` installed on this machine, run as a child process with its
   own node name, free ports and a temporary data directory (local_broker.py).

Every broker offers its AMQP URL, its RabbitMQ Stream URL, its management API, a restart that
keeps durable queues, persistent messages and streams, ``rabbitmqctl`` against it, and a stop
that leaves nothing behind. Every port of a broker started here listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
from pathlib import Path

from tutorial_tools.addresses import PASSWORD, PORTS, USER, amqp_url, masked, stream_url
from tutorial_tools.management import ManagementApi, ManagementError
from tutorial_tools.rabbitmq_server import find_server

SOURCES = ("url", "container", "local")

# A stream client asks the broker which node holds a stream and connects to the host and port
# that node advertises (by default its host name, which means nothing outside a container):
# every broker started here advertises this host, and its stream port as this machine sees it.
ADVERTISED_HOST = "localhost"
# Every listener of a broker started here: its name, its port in a container, and the
# rabbitmq.conf lines that put it on 127.0.0.1 in a local broker. A plugin's listener is one
# more row here, and its plugin one more name in PLUGINS.
LISTENERS = {
    "amqp": (PORTS["amqp"], "listeners.tcp.1 = 127.0.0.1:{port}"),
    "management": (
        PORTS["management"],
        "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port}",
    ),
    "stream": (
        PORTS["stream"],
        f"stream.listeners.tcp.1 = 127.0.0.1:{{port}}\nstream.advertised_host = {ADVERTISED_HOST}",
    ),
}
PLUGINS = ("rabbitmq_management", "rabbitmq_stream")

# Why a source that was named cannot give a broker.
UNAVAILABLE = {
    "url": "the 'url' source needs RABBITMQ_URL",
    "container": "no Docker-compatible engine answers "
    "(start Docker, or set DOCKER_HOST to Podman's socket)",
    "local": "no rabbitmq-server is installed",
}
HOW_TO_GET_ONE = """\
No RabbitMQ broker is available. Any one of these will do:
  1. point at a running broker:   export RABBITMQ_URL=amqp://guest:guest@HOST:5672/%2F
  2. start a Docker-compatible engine (Docker, or Podman with DOCKER_HOST set)
  3. install RabbitMQ locally:    sudo apt-get install rabbitmq-server
                                  (macOS: brew install rabbitmq)"""


class BrokerUnavailable(RuntimeError):
    """No broker could be had from the requested source(s)."""


class BrokerError(RuntimeError):
    """A broker that was had could not do what was asked."""


def fixed_ports(amqp_port: int | None) -> dict[str, int]:
    """The host ports asked for: AMQP's, and with 5672 the stream port's default too."""
    if amqp_port is None:
        return {}
    if amqp_port == PORTS["amqp"]:
        return {name: PORTS[name] for name in ("amqp", "stream")}
    return {"amqp": amqp_port}


class Broker:
    """A running RabbitMQ: its URLs, its management API, a restart, rabbitmqctl, and a stop."""

    source = ""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.user, self.password = USER, PASSWORD
        self.ports: dict[str, int] = {}  # by the names of LISTENERS
        self._management: ManagementApi | None = None

    @property
    def amqp_port(self) -> int:
        return self.ports["amqp"]

    @property
    def url(self) -> str:
        """The AMQP URL of the default virtual host."""
        return self.url_for("/")

    def url_for(self, vhost: str) -> str:
        return amqp_url(self.host, self.amqp_port, vhost, self.user, self.password)

    @property
    def management_url(self) -> str | None:
        port = self.ports.get("management")
        return f"http://{self.host}:{port}" if port else None

    @property
    def stream_url(self) -> str | None:
        """The RabbitMQ Stream URL of the default virtual host (RABBITMQ_STREAM_URL)."""
        return self.stream_url_for("/")

    def stream_url_for(self, vhost: str) -> str | None:
        port = self.ports.get("stream")
        return stream_url(self.host, port, vhost, self.user, self.password) if port else None

    @property
    def management(self) -> ManagementApi:
        if not self.management_url:
            raise BrokerError(f"the {self.source!r} broker has no management API")
        # One client, and so one pool of kept-alive connections, until the port changes (a
        # container may come back on another after a restart).
        if self._management is None or self._management.base_url != self.management_url:
            self._management = ManagementApi(self.management_url, self.user, self.password)
        return self._management

    def start(self) -> Broker:
        raise NotImplementedError

    def restart(self) -> str:
        """Restart the broker, keeping durable queues and persistent messages; the new URL."""
        raise BrokerError(f"a broker from the {self.source!r} source cannot be restarted")

    def rabbitmqctl(self, *args: str) -> str:
        """Run rabbitmqctl against this broker and return what it printed."""
        raise BrokerError(f"rabbitmqctl cannot reach a broker from the {self.source!r} source")

    def rabbitmqctl_command(self) -> str | None:
        """The shell command that runs rabbitmqctl against this broker, for a learner to type."""
        return None

    def stop(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.source} broker at {masked(self.url)}"

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- virtual hosts: one per test keeps chapters that reuse names apart -----------------

    def add_vhost(self, name: str) -> None:
        try:
            self.management.put("vhosts", name)
            body = {"configure": ".*", "write": ".*", "read": ".*"}
            self.management.put("permissions", name, self.user, body=body)
        except ManagementError as exc:
            raise BrokerError(f"cannot create virtual host {name!r}: {exc}") from exc

    def delete_vhost(self, name: str) -> None:
        try:
            self.management.delete("vhosts", name)
        except ManagementError as exc:
            raise BrokerError(f"cannot delete virtual host {name!r}: {exc}") from exc


def engine_answers() -> bool:
    """True when a Docker-compatible engine (Docker, or Podman via DOCKER_HOST) answers."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def choose_source(source: str | None = None) -> str:
    """The source to take a broker from: the one named (here or in TUTORIAL_BROKER_SOURCE),
    if it can give one, else the first that can. BrokerUnavailable, saying why, if none can."""
    source = source or os.environ.get("TUTORIAL_BROKER_SOURCE") or None
    if source not in (None, *SOURCES):
        raise BrokerUnavailable(
            f"unknown broker source {source!r}: choose one of {', '.join(SOURCES)}"
        )
    available = {
        "url": lambda: bool(os.environ.get("RABBITMQ_URL")),
        "container": engine_answers,
        "local": lambda: find_server() is not None,
    }
    for name in SOURCES if source is None else (source,):
        if available[name]():
            return name
    if source is None:
        raise BrokerUnavailable(HOW_TO_GET_ONE)
    raise BrokerUnavailable(UNAVAILABLE[source])


def make_broker(source: str | None = None, fixed_port: int | None = None) -> Broker:
    """A not-yet-started broker from the named source, or from the first one available."""
    # Each source's module imports this one, and the container's brings docker and
    # testcontainers: imported here, for the source chosen only.
    chosen = choose_source(source)
    if chosen == "url":
        from tutorial_tools.url_broker import UrlBroker

        return UrlBroker(os.environ["RABBITMQ_URL"])
    if chosen == "container":
        from tutorial_tools.container_broker import ContainerBroker

        return ContainerBroker(fixed_port=fixed_port)
    from tutorial_tools.local_broker import LocalBroker

    return LocalBroker(fixed_port=fixed_port)
