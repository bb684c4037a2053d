"""A throwaway RabbitMQ, from wherever one can be had, and taken away again.

Sources, tried in this order unless one is named (``--source`` or ``TUTORIAL_BROKER_SOURCE``):

1. ``url``: an existing broker named by ``RABBITMQ_URL``; used as it is, never stopped.
2. ``container``: a container through testcontainers, when a Docker-compatible engine answers
   (Docker, or Podman through ``DOCKER_HOST``); the image comes from ``RABBITMQ_IMAGE``.
3. ``local``: a ``rabbitmq-server`` installed on this machine, run as a child process with its
   own node name, free ports and a temporary data directory (see rabbitmq_server.py).

Every broker offers its AMQP URL, its RabbitMQ Stream URL, its management API, a restart that
keeps durable queues, persistent messages and streams, ``rabbitmqctl`` against it, and a stop
that leaves nothing behind. Every port of a broker started here listens on 127.0.0.1 only.

``running_broker()`` is the one lifecycle of the commands that need a broker (this module's
command line, the tour, the bench): Ctrl+C and SIGTERM stop, the broker starts, and it is
stopped however the command ends. Run ``python -m tutorial_tools.broker`` to start one and keep
it until Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import psutil

from tutorial_tools.management import ManagementApi, ManagementError
from tutorial_tools.rabbitmq_server import RabbitMqServer, ServerExited, find_server, free_ports

DEFAULT_IMAGE = "rabbitmq:4.3-management"
SOURCES = ("url", "container", "local")
USER = PASSWORD = "guest"
START_TIMEOUT = 90.0

# A stream client asks the broker which node holds a stream and connects to the host and port
# that node advertises (by default its host name, which means nothing outside a container):
# every broker started here advertises this host, and its stream port as this machine sees it.
ADVERTISED_HOST = "localhost"
# Every listener of a broker started here: its name, its port in a container, and the
# rabbitmq.conf lines that put it on 127.0.0.1 in a local broker. A plugin's listener is one
# more row here, and its plugin one more name in PLUGINS.
LISTENERS = {
    "amqp": (5672, "listeners.tcp.1 = 127.0.0.1:{port}"),
    "management": (15672, "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port}"),
    "stream": (
        5552,
        f"stream.listeners.tcp.1 = 127.0.0.1:{{port}}\nstream.advertised_host = {ADVERTISED_HOST}",
    ),
}
PLUGINS = ("rabbitmq_management", "rabbitmq_stream")
# --port 5672 puts the chapters' default ports on the host: AMQP's, and the stream port's.
DEFAULT_PORTS = {name: LISTENERS[name][0] for name in ("amqp", "stream")}

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


def amqp_url(
    host: str, port: int, vhost: str = "/", user: str = USER, password: str = PASSWORD
) -> str:
    userinfo = f"{_q(user)}:{_q(password)}"
    return f"amqp://{userinfo}@{host}:{port}/{_q(vhost)}"


def stream_url(
    host: str, port: int, vhost: str = "/", user: str = USER, password: str = PASSWORD
) -> str:
    """A RabbitMQ Stream URL, as the stream clients write it: rabbitmq-stream://..."""
    return amqp_url(host, port, vhost, user, password).replace("amqp://", "rabbitmq-stream://", 1)


@dataclass(frozen=True)
class StreamAddress:
    host: str
    port: int
    vhost: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> StreamAddress:
        """What the stream scripts read from a rabbitmq-stream:// URL (guest:guest if none)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "rabbitmq-stream":
            raise ValueError("it must start with rabbitmq-stream://")
        if not parts.hostname:
            raise ValueError("it names no host")
        return cls(
            parts.hostname,
            parts.port or DEFAULT_PORTS["stream"],
            urllib.parse.unquote(parts.path[1:]) or "/",
            urllib.parse.unquote(parts.username or "guest"),
            urllib.parse.unquote(parts.password or "guest"),
        )

    def client_args(self) -> dict[str, str | int]:
        """The keyword arguments of rstream's Producer and Consumer for this address."""
        return {
            "host": self.host,
            "port": self.port,
            "vhost": self.vhost,
            "username": self.user,
            "password": self.password,
        }


def fixed_ports(amqp_port: int | None) -> dict[str, int]:
    """The host ports asked for: AMQP's, and with 5672 the stream port's default too."""
    if amqp_port is None:
        return {}
    if amqp_port == DEFAULT_PORTS["amqp"]:
        return dict(DEFAULT_PORTS)
    return {"amqp": amqp_port}


def masked(url: str) -> str:
    """The URL with its password replaced, fit to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class Broker:
    """A running RabbitMQ: its URLs, its management API, a restart, rabbitmqctl, and a stop."""

    source = ""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.user, self.password = USER, PASSWORD
        self.ports: dict[str, int] = {}  # by the names of LISTENERS

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
        return ManagementApi(self.management_url, self.user, self.password)

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


# -- source 1: a broker the user points at ------------------------------------------------


class UrlBroker(Broker):
    """An existing broker named by a URL: used as it is, never restarted or stopped."""

    source = "url"

    def __init__(
        self, url: str, management_url: str | None = None, stream_url: str | None = None
    ) -> None:
        super().__init__()
        self._given = url
        # Streams: RABBITMQ_STREAM_URL; without it, the standard port on the AMQP URL's host.
        self._stream_given = stream_url or os.environ.get("RABBITMQ_STREAM_URL") or None
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise BrokerUnavailable(f"RABBITMQ_URL is not a valid AMQP URL: {exc}") from exc
        self.host, self.ports["amqp"] = params.host, params.port
        self.ports["stream"] = DEFAULT_PORTS["stream"]
        self.user, self.password = params.credentials.username, params.credentials.password
        management_url = management_url or os.environ.get("RABBITMQ_MANAGEMENT_URL")
        self._management_url = (management_url or f"http://{self.host}:15672").rstrip("/")

    @property
    def url(self) -> str:
        return self._given

    def stream_url_for(self, vhost: str) -> str | None:
        if not self._stream_given:
            return super().stream_url_for(vhost)
        parts = urllib.parse.urlsplit(self._stream_given)
        return urllib.parse.urlunsplit(parts._replace(path="/" + _q(vhost)))

    @property
    def management_url(self) -> str:
        return self._management_url

    def start(self) -> UrlBroker:
        try:
            pika.BlockingConnection(pika.URLParameters(self._given)).close()
        except Exception as exc:
            raise BrokerUnavailable(
                f"RABBITMQ_URL={masked(self._given)} does not answer: {exc!r}"
            ) from exc
        return self

    def stop(self) -> None:
        """Not ours to stop."""


# -- source 2: a container through testcontainers -----------------------------------------


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

    def start(self) -> ContainerBroker:
        _prepare_testcontainers_for_podman()
        from testcontainers.community.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer(self.image, username=USER, password=PASSWORD)
        container.with_name(self.name)
        # The stream port is advertised, so its host port is chosen here, not by the engine.
        host_ports = {"stream": free_ports(1)[0], **self.fixed}
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


# -- source 3: a local rabbitmq-server process --------------------------------------------


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

    def start(self) -> LocalBroker:
        self.workdir = Path(tempfile.mkdtemp(prefix="tutorial-rabbitmq-"))
        for directory in ("mnesia", "log"):
            (self.workdir / directory).mkdir()
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        try:
            self._start_on_free_ports()
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
        try:
            if self.process is not None:
                self.process.stop()
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def describe(self) -> str:
        return f"local broker (node {self.node}) at {masked(self.url)}"


# -- choosing a source, and the one lifecycle ----------------------------------------------


def make_broker(source: str | None = None, fixed_port: int | None = None) -> Broker:
    """A not-yet-started broker from the named source, or from the first one available."""
    source = source or os.environ.get("TUTORIAL_BROKER_SOURCE") or None
    if source not in (None, *SOURCES):
        raise BrokerUnavailable(
            f"unknown broker source {source!r}: choose one of {', '.join(SOURCES)}"
        )
    url = os.environ.get("RABBITMQ_URL")
    if source == "url" or (source is None and url):
        if not url:
            raise BrokerUnavailable("the 'url' source needs RABBITMQ_URL")
        return UrlBroker(url)
    if source == "container" or (source is None and engine_answers()):
        if source == "container" and not engine_answers():
            raise BrokerUnavailable(
                "no Docker-compatible engine answers "
                "(start Docker, or set DOCKER_HOST to Podman's socket)"
            )
        return ContainerBroker(fixed_port=fixed_port)
    if source == "local" or (source is None and find_server()):
        return LocalBroker(fixed_port=fixed_port)
    raise BrokerUnavailable(HOW_TO_GET_ONE)


def _say(text: str) -> None:
    print(text, flush=True)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupt(signum: int, frame: object) -> None:
    """Raise KeyboardInterrupt, and ignore Ctrl+C and SIGTERM from now on, so that a second
    one cannot cut the broker's stop short: `make` passes on to its child the SIGTERM that
    the child got already, and an impatient user presses Ctrl+C twice."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def running_broker(
    source: str | None = None, fixed_port: int | None = None, say: Callable[[str], None] = _say
) -> Iterator[Broker]:
    """A started broker for the ``with`` block, stopped when it ends, however it ends.

    Ctrl+C and SIGTERM raise KeyboardInterrupt (also where a shell started us ignoring SIGINT),
    once: see interrupt().
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)
    broker = make_broker(source, fixed_port)
    try:
        if broker.source != "url":
            say(f"Starting a throwaway {broker.source} broker ...")
        broker.start()
        say(f"Using the {broker.describe()}")
        yield broker
    except KeyboardInterrupt:
        say("\nInterrupted." + (" Stopping the broker ..." if broker.source != "url" else ""))
        raise
    finally:
        broker.stop()


def run_with_broker(
    prog: str,
    work: Callable[[Broker], int],
    source: str | None = None,
    fixed_port: int | None = None,
    say: Callable[[str], None] = _say,
    interrupted: int = 130,
) -> int:
    """``work(broker)`` in running_broker(); its exit status, ``interrupted`` on Ctrl+C, or 1
    with one line on stderr when no broker could be had."""
    try:
        with running_broker(source, fixed_port, say) as broker:
            return work(broker)
    except KeyboardInterrupt:
        return interrupted
    except (BrokerUnavailable, BrokerError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


# -- command line ------------------------------------------------------------------------


def keep(broker: Broker) -> int:
    """Say how to reach the broker, and keep it until Ctrl+C."""
    print(f"Management UI: {broker.management_url} (guest / guest)")
    print("Paste these into the terminals where you run the chapter scripts:\n")
    print(f"    export RABBITMQ_URL={broker.url}")
    print(f"    export RABBITMQ_MANAGEMENT_URL={broker.management_url}")
    print(f"    export RABBITMQ_STREAM_URL={broker.stream_url}")
    if broker.rabbitmqctl_command():  # so that the commands of the notes and the doctor work
        print(f"    alias rabbitmqctl='{broker.rabbitmqctl_command()}'")
    print()
    print("Press Ctrl+C to stop the broker and remove it.", flush=True)
    while True:
        signal.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.broker",
        description="Start a throwaway RabbitMQ and keep it until Ctrl+C.",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        help="where the broker comes from (default: the first that works)",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="publish AMQP on this port (5672 lets the chapter scripts run with no RABBITMQ_URL, "
        "and puts streams on 5552, their default port)",
    )
    args = parser.parse_args(argv)
    return run_with_broker("tutorial-broker", keep, args.source, args.port, interrupted=0)


if __name__ == "__main__":
    sys.exit(main())
