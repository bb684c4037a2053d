"""A throwaway RabbitMQ, from wherever one can be had, and taken away again.

Sources, tried in this order unless one is named (``--source`` or ``TUTORIAL_BROKER_SOURCE``):

1. ``url``: an existing broker named by ``RABBITMQ_URL``; used as it is, never stopped.
2. ``container``: a container through testcontainers, when a Docker-compatible engine answers
   (Docker, or Podman through ``DOCKER_HOST``); the image comes from ``RABBITMQ_IMAGE``.
3. ``local``: a ``rabbitmq-server`` installed on this machine, run as a child process with its
   own node name, free ports and a temporary data directory.

Every broker offers its AMQP URL, a restart that keeps durable queues and persistent messages,
``rabbitmqctl`` against it, and a stop that leaves nothing behind.

Run ``python -m tutorial_tools.broker`` to start one and keep it until Ctrl+C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_IMAGE = "rabbitmq:4.3-management"
SOURCES = ("url", "container", "local")
USER = PASSWORD = "guest"
START_TIMEOUT = 90.0

# Where a rabbitmq-server may be installed, besides PATH. Debian's /usr/sbin wrapper switches
# to the rabbitmq user, so the real script in /usr/lib/rabbitmq/bin comes first.
LOCAL_SERVER_CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/opt/homebrew/sbin/rabbitmq-server",
    "/usr/local/sbin/rabbitmq-server",
)

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


class BrokerExited(BrokerError):
    """A local broker process ended while it was starting."""


def amqp_url(
    host: str, port: int, vhost: str = "/", user: str = USER, password: str = PASSWORD
) -> str:
    userinfo = f"{_q(user)}:{_q(password)}"
    return f"amqp://{userinfo}@{host}:{port}/{_q(vhost)}"


def masked(url: str) -> str:
    """The URL with its password replaced, fit to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def free_port() -> int:
    """A port free right now, below the ephemeral range (32768 and up on Linux).

    Ports the kernel hands out itself also serve as the local ends of outgoing connections, so
    one could be taken by a client socket before the broker binds it.
    """
    for _ in range(50):
        port = secrets.randbelow(32767 - 20000) + 20000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Call ``check`` until it returns something truthy, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise BrokerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Broker:
    """A running RabbitMQ: its URLs, a restart, rabbitmqctl, and a stop."""

    source = ""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.amqp_port = 0
        self.user, self.password = USER, PASSWORD
        self.management_port: int | None = None

    # -- what every source offers ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The AMQP URL of the default virtual host."""
        return self.url_for("/")

    def url_for(self, vhost: str) -> str:
        return amqp_url(self.host, self.amqp_port, vhost, self.user, self.password)

    @property
    def management_url(self) -> str | None:
        if self.management_port is None:
            return None
        return f"http://{self.host}:{self.management_port}"

    def start(self) -> Broker:
        raise NotImplementedError

    def restart(self) -> str:
        """Restart the broker, keeping durable queues and persistent messages; the new URL."""
        raise BrokerError(f"a broker from the {self.source!r} source cannot be restarted")

    def rabbitmqctl(self, *args: str) -> str:
        """Run rabbitmqctl against this broker and return what it printed."""
        raise BrokerError(f"rabbitmqctl cannot reach a broker from the {self.source!r} source")

    def stop(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.source} broker at {masked(self.url)}"

    def state(self) -> dict[str, str]:
        """What another process needs to reach this broker (see AttachedBroker)."""
        return {"source": self.source, "url": self.url, "management_url": self.management_url or ""}

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- virtual hosts: one per test keeps chapters that reuse names apart -----------------

    def add_vhost(self, name: str) -> None:
        if self.management_url:
            self.management_api("PUT", f"/api/vhosts/{_q(name)}")
            self.management_api(
                "PUT",
                f"/api/permissions/{_q(name)}/{_q(self.user)}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
        else:
            self.rabbitmqctl("add_vhost", name)
            self.rabbitmqctl("set_permissions", "-p", name, self.user, ".*", ".*", ".*")

    def delete_vhost(self, name: str) -> None:
        if self.management_url:
            self.management_api("DELETE", f"/api/vhosts/{_q(name)}")
        else:
            self.rabbitmqctl("delete_vhost", name)

    def management_api(self, method: str, path: str, body: object | None = None) -> object:
        """Call the management plugin's HTTP API and return its decoded JSON answer."""
        if not self.management_url:
            raise BrokerError(f"the {self.source!r} broker has no management API")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.management_url + path, data=data, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise BrokerError(f"{method} {path}: HTTP {exc.code} {exc.read()[:200]!r}") from exc
        except OSError as exc:
            raise BrokerError(f"{method} {path}: {exc}") from exc
        return json.loads(payload) if payload else None

    def is_ready(self) -> bool:
        """True once the broker accepts AMQP connections (and its management API answers)."""
        import pika

        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?socket_timeout=2")).close()
            if self.management_url:
                self.management_api("GET", "/api/overview")
        except Exception:
            return False
        return True


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


# -- source 1: a broker the user points at ------------------------------------------------


class UrlBroker(Broker):
    """An existing broker named by a URL: used as it is, never restarted or stopped."""

    source = "url"

    def __init__(self, url: str, management_url: str | None = None) -> None:
        super().__init__()
        import pika

        self._given = url
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise BrokerUnavailable(f"RABBITMQ_URL is not a valid AMQP URL: {exc}") from exc
        self.host, self.amqp_port = params.host, params.port
        self.user, self.password = params.credentials.username, params.credentials.password
        management_url = management_url or os.environ.get("RABBITMQ_MANAGEMENT_URL")
        if management_url:
            self._management_url: str | None = management_url.rstrip("/")
        else:
            self._management_url = f"http://{self.host}:15672"

    @property
    def url(self) -> str:
        return self._given

    @property
    def management_url(self) -> str | None:
        return self._management_url

    def start(self) -> UrlBroker:
        import pika

        try:
            pika.BlockingConnection(pika.URLParameters(self._given)).close()
        except Exception as exc:
            raise BrokerUnavailable(
                f"RABBITMQ_URL={masked(self._given)} does not answer: {exc!r}"
            ) from exc
        try:
            self.management_api("GET", "/api/overview")
        except BrokerError:
            self._management_url = None  # no management plugin: vhosts need rabbitmqctl
        return self

    def stop(self) -> None:
        """Not ours to stop."""


# -- source 2: a container through testcontainers -----------------------------------------


def engine_answers() -> bool:
    """True when a Docker-compatible engine (Docker, or Podman via DOCKER_HOST) answers."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
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

    def __init__(self, image: str | None = None, fixed_port: int | None = None) -> None:
        super().__init__()
        self.image = image or os.environ.get("RABBITMQ_IMAGE") or DEFAULT_IMAGE
        self.fixed_port = fixed_port
        self.name = f"tutorial-rabbitmq-{os.getpid()}-{secrets.token_hex(3)}"
        self._container = None

    def start(self) -> ContainerBroker:
        _prepare_testcontainers_for_podman()
        from testcontainers.community.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer(self.image, username=USER, password=PASSWORD)
        container.with_name(self.name).with_exposed_ports(15672)
        if self.fixed_port:
            container.with_bind_ports(5672, self.fixed_port)
        self._container = container
        try:
            container.start()
            self._read_ports()
            wait_until(self.is_ready, START_TIMEOUT, f"{self.image} to accept connections")
        except BaseException:
            self.stop()
            raise
        return self

    def _read_ports(self) -> None:
        self.host = self._container.get_container_host_ip()
        if self.host == "localhost":
            self.host = "127.0.0.1"
        self.amqp_port = int(self._container.get_exposed_port(5672))
        self.management_port = int(self._container.get_exposed_port(15672))

    def restart(self) -> str:
        wrapped = self._container.get_wrapped_container()
        wrapped.restart(timeout=30)
        # The engine may map new host ports after a restart: read them again.
        wait_until(lambda: _reload_running(wrapped), 30, "the container to run again")
        self._read_ports()
        wait_until(self.is_ready, START_TIMEOUT, "the restarted broker")
        return self.url

    def rabbitmqctl(self, *args: str) -> str:
        return _rabbitmqctl_in_container(self._container.get_wrapped_container(), args)

    def state(self) -> dict[str, str]:
        return {**super().state(), "container": self.name}

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        wrapped = container.get_wrapped_container()  # None when starting failed early
        container_id = wrapped.id if wrapped else None
        try:
            container.stop()  # removes the container and its anonymous volumes
        except Exception as exc:
            if "No such container" not in str(exc) and "no such container" not in str(exc):
                raise
        if container_id:
            _end_exec_monitors(container_id)

    def describe(self) -> str:
        return f"container broker ({self.name}, image {self.image}) at {masked(self.url)}"


def _end_exec_monitors(container_id: str) -> None:
    """End the conmon processes Podman 4.3 leaves behind for each exec through its Docker API.

    They watch rabbitmqctl runs of a container that is gone, and would linger for about five
    minutes. Only this container's are touched (matched by its full ID); Docker has none.
    """
    for pid in _pids_matching(f"conmon .*-c {container_id}"):
        _signal(pid, signal.SIGTERM)


def _reload_running(wrapped) -> bool:
    wrapped.reload()
    return wrapped.status == "running"


# -- source 3: a local rabbitmq-server process --------------------------------------------


def find_local_server() -> str | None:
    override = os.environ.get("TUTORIAL_RABBITMQ_SERVER_CANDIDATES")
    candidates = LOCAL_SERVER_CANDIDATES if override is None else override.split(os.pathsep)
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("rabbitmq-server")


class LocalBroker(Broker):
    """rabbitmq-server run as a child process, with its own node name, ports and data."""

    source = "local"

    def __init__(self, server: str | None = None, fixed_port: int | None = None) -> None:
        super().__init__()
        server = server or find_local_server()
        if server is None:
            raise BrokerUnavailable("no rabbitmq-server is installed")
        self.server = server
        self.rabbitmqctl_path = str(Path(server).with_name("rabbitmqctl"))
        # A name@localhost node name avoids a long wait on host name resolution.
        self.node = f"tutorial-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.fixed_port = fixed_port
        self.workdir: Path | None = None
        self._process: subprocess.Popen | None = None

    def start(self) -> LocalBroker:
        self.workdir = Path(tempfile.mkdtemp(prefix="tutorial-rabbitmq-"))
        (self.workdir / "mnesia").mkdir()
        (self.workdir / "log").mkdir()
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        try:
            self._launch_on_free_ports()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch_on_free_ports(self, attempts: int = 3) -> None:
        """Launch; if the node dies starting (a port taken meanwhile), again on other ports."""
        for attempt in range(1, attempts + 1):
            self.amqp_port = self.fixed_port or free_port()
            self.management_port = free_port()
            self.dist_port = free_port()
            (self.workdir / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = {self.amqp_port}\n"
                f"management.tcp.ip = 127.0.0.1\n"
                f"management.tcp.port = {self.management_port}\n"
            )
            try:
                self._launch()
                return
            except BrokerExited:
                if attempt == attempts:
                    raise

    def _environment(self) -> dict[str, str]:
        assert self.workdir is not None
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.workdir / "rabbitmq.conf"),
        )
        return env

    def _launch(self) -> None:
        assert self.workdir is not None
        log = open(self.workdir / "server.out", "ab")  # noqa: SIM115 (kept open by the child)
        # A session of its own, so that a Ctrl+C in the terminal reaches us, not the broker,
        # and the stop below decides how it ends.
        self._process = subprocess.Popen(
            [self.server],
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            if self._process.poll() is not None:
                tail = (self.workdir / "server.out").read_text(errors="replace")[-1500:]
                raise BrokerExited(f"rabbitmq-server exited ({self._process.returncode}):\n{tail}")
            return self.is_ready()

        wait_until(ready, START_TIMEOUT, f"the local broker {self.node}")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM to the Erlang VM stops the node cleanly (about 6 s with the management
        # plugin, 1 s without); sent to the wrapper shell's whole group it takes longer still.
        # The wrapper exits once the VM has.
        for pid in _group_members(process.pid, "beam.smp") or [process.pid]:
            _signal(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def restart(self) -> str:
        self._terminate()
        try:
            self._launch()  # same node name and data directory: durable state comes back
        except BrokerExited:
            self._launch_on_free_ports()  # a port was taken while it was down: the URL changes
        return self.url

    def rabbitmqctl(self, *args: str) -> str:
        return _rabbitmqctl_local(self.rabbitmqctl_path, self.node, args)

    def state(self) -> dict[str, str]:
        return {**super().state(), "node": self.node, "rabbitmqctl": self.rabbitmqctl_path}

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def describe(self) -> str:
        return f"local broker (node {self.node}) at {masked(self.url)}"


def _rabbitmqctl_local(path: str, node: str, args: tuple[str, ...]) -> str:
    # The CLI finds the node by name and authenticates with the Erlang cookie in $HOME.
    result = subprocess.run([path, "-n", node, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BrokerError(
            f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[:500]}"
        )
    return result.stdout


def _rabbitmqctl_in_container(container, args: tuple[str, ...]) -> str:
    code, output = container.exec_run(["rabbitmqctl", *args])
    text = output.decode(errors="replace")
    if code != 0:
        raise BrokerError(f"rabbitmqctl {' '.join(args)} failed ({code}): {text.strip()[:500]}")
    return text


def _group_members(pgid: int, name: str) -> list[int]:
    return _pgrep("-g", str(pgid), name)


def _pids_matching(pattern: str) -> list[int]:
    return _pgrep("-f", pattern)


def _pgrep(*args: str) -> list[int]:
    try:
        found = subprocess.run(["pgrep", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(pid) for pid in found.stdout.split()]


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# -- a broker another process started --------------------------------------------------

STATE_FILE = Path(
    os.environ.get("TUTORIAL_BROKER_STATE")
    or Path(__file__).resolve().parent.parent / ".run" / "broker.json"
)


class AttachedBroker(Broker):
    """The broker that `python -m tutorial_tools.broker` keeps running in another terminal.

    Read from the state file that command writes, so that other commands (the inspector) can
    run rabbitmqctl against it. Never stopped from here.
    """

    def __init__(self, state: dict[str, str]) -> None:
        super().__init__()
        self.source = state["source"]
        self._state = state
        self._url = state["url"]
        self._management = state.get("management_url") or None

    @classmethod
    def from_state_file(cls, path: Path = STATE_FILE) -> AttachedBroker | None:
        try:
            return cls(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError):
            return None

    @property
    def url(self) -> str:
        return self._url

    @property
    def management_url(self) -> str | None:
        return self._management

    def rabbitmqctl(self, *args: str) -> str:
        if "node" in self._state:
            return _rabbitmqctl_local(self._state["rabbitmqctl"], self._state["node"], args)
        if "container" in self._state:
            import docker

            client = docker.from_env()
            try:
                return _rabbitmqctl_in_container(
                    client.containers.get(self._state["container"]), args
                )
            finally:
                client.close()
        return super().rabbitmqctl(*args)

    def start(self) -> AttachedBroker:
        return self

    def stop(self) -> None:
        """Not ours to stop."""


# -- choosing a source --------------------------------------------------------------------


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
    if source == "local" or (source is None and find_local_server()):
        return LocalBroker(fixed_port=fixed_port)
    raise BrokerUnavailable(HOW_TO_GET_ONE)


def start_broker(source: str | None = None, fixed_port: int | None = None) -> Broker:
    return make_broker(source, fixed_port).start()


def ensure_source(source: str | None = None) -> int:
    """Make sure some broker source is there for the tests and the tour; 0 when one is.

    As root on Debian or Ubuntu with no source at all, installs Debian's rabbitmq-server,
    saying so; anywhere else prints what to run.
    """
    source = source or os.environ.get("TUTORIAL_BROKER_SOURCE") or None
    if source in (None, "url") and os.environ.get("RABBITMQ_URL"):
        print(f"Broker source: the broker at RABBITMQ_URL={masked(os.environ['RABBITMQ_URL'])}")
        return 0
    if source in (None, "container") and engine_answers():
        print("Broker source: containers, through the Docker-compatible engine that answers")
        return 0
    if source in (None, "local") and find_local_server():
        print(f"Broker source: the local rabbitmq-server at {find_local_server()}")
        return 0
    if source not in (None, "local"):
        print(f"setup: the {source!r} broker source is not available here.", file=sys.stderr)
        print(HOW_TO_GET_ONE, file=sys.stderr)
        return 1
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(
            "No RabbitMQ broker source found: installing Debian's rabbitmq-server with apt-get "
            "(this takes about half a minute) ...",
            flush=True,
        )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for step in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "rabbitmq-server"],
        ):
            if subprocess.run(step, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                print(f"setup: '{' '.join(step)}' failed", file=sys.stderr)
                return 1
        if find_local_server():
            print(f"Broker source: the local rabbitmq-server at {find_local_server()}")
            return 0
    print(HOW_TO_GET_ONE, file=sys.stderr)
    return 1


# -- command line ------------------------------------------------------------------------


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
        help="publish AMQP on this port (5672 lets the chapter scripts run with no RABBITMQ_URL)",
    )
    parser.add_argument(
        "--ensure-source",
        action="store_true",
        help="only check that a broker source exists (installing Debian's rabbitmq-server as root)",
    )
    args = parser.parse_args(argv)
    if args.ensure_source:
        return ensure_source(args.source)
    # SIGTERM stops as Ctrl+C does; and Ctrl+C works even where a shell started us ignoring it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    broker: Broker | None = None
    try:
        broker = make_broker(args.source, args.port)
        print(f"Starting a {broker.source} broker ...", flush=True)
        broker.start()
        print(f"RabbitMQ is up: {broker.describe()}", flush=True)
        if broker.management_url:
            print(f"Management UI: {broker.management_url} (guest / guest)", flush=True)
        print("Paste this into the terminals where you run the chapter scripts:\n", flush=True)
        print(f"    export RABBITMQ_URL={broker.url}\n", flush=True)
        STATE_FILE.parent.mkdir(exist_ok=True)
        STATE_FILE.write_text(json.dumps(broker.state()))
        print("Press Ctrl+C to stop the broker and remove it.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopping the broker ...", flush=True)
        return 0
    except (BrokerUnavailable, BrokerError) as exc:
        print(f"tutorial-broker: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()
            if (
                AttachedBroker.from_state_file()
                and json.loads(STATE_FILE.read_text()) == broker.state()
            ):
                STATE_FILE.unlink()


if __name__ == "__main__":
    sys.exit(main())
