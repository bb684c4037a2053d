"""Fixtures: one throwaway broker for the session, and a virtual host of its own per test.

The chapters reuse the official names (`hello`, `task_queue`, `logs`, ...). Giving every test a
fresh virtual host on the session's broker means no test can see another's queues, exchanges or
leftover messages, without paying for a broker start per test.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
from collections.abc import Iterator

import pika
import progress
import pytest
from dead_ends import dead_ends

from tutorial_tools import leftovers, processes
from tutorial_tools.addresses import StreamAddress, masked
from tutorial_tools.chapters import SENDER, Chapter, Step
from tutorial_tools.management import ManagementError
from tutorial_tools.processes import ScriptProcess, run_script
from tutorial_tools.sources import Broker, BrokerError, BrokerUnavailable, make_broker


class Sandbox:
    """A virtual host of a test's own on the session broker, and the scripts run against it."""

    def __init__(self, broker: Broker, vhost: str) -> None:
        self.broker = broker
        self.vhost = vhost
        self.processes: list[ScriptProcess] = []

    @property
    def url(self) -> str:
        # Read each time: a container may come back on another port after a restart.
        return self.broker.url_for(self.vhost)

    @property
    def stream_url(self) -> str | None:
        """The same virtual host through the stream protocol (RABBITMQ_STREAM_URL)."""
        return self.broker.stream_url_for(self.vhost)

    def start(self, script: str, *args: str, ready: str | None = None, **kw) -> ScriptProcess:
        """Start a script (a receiver, a worker, a server); wait for ``ready`` if given."""
        kw.setdefault("stream_url", self.stream_url)
        proc = ScriptProcess(script, args, url=self.url, **kw)
        self.processes.append(proc)
        if ready:
            proc.wait_for(ready)
        return proc

    def run(self, script: str, *args: str, timeout: float = 30, **kw) -> ScriptProcess:
        """Run a script to its end (a sender, a client)."""
        kw.setdefault("stream_url", self.stream_url)
        return run_script(script, args, url=self.url, timeout=timeout, **kw)

    def terminals(self, chap: Chapter) -> Terminals:
        """The chapter's receiving terminals, started here and ready."""
        return Terminals(self, chap)

    def connection(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url))

    def declared(self, queue: str):
        """What RabbitMQ says of ``queue`` (Queue.DeclareOk): it must exist."""
        with self.connection() as connection:
            return connection.channel().queue_declare(queue, passive=True).method

    def message_count(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting those delivered and not yet acked)."""
        return self.declared(queue).message_count

    def consumer_count(self, queue: str) -> int:
        """Consumers of ``queue``, of either protocol."""
        return self.declared(queue).consumer_count

    def queue_names(self) -> set[str]:
        return {q["name"] for q in self.broker.management.get("queues", self.vhost)}

    def set_policy(self, name: str, queue: str, definition: dict) -> None:
        """A policy ``name`` that applies ``definition`` to the queue (or stream) ``queue``."""
        self.broker.management.put(
            "policies",
            self.vhost,
            name,
            body={"pattern": f"^{queue}$", "apply-to": "queues", "definition": definition},
        )

    def rabbitmqctl(self, *args: str) -> str:
        return self.broker.rabbitmqctl(*args)

    def remove(self) -> None:
        """Stop every script started here, and delete the virtual host."""
        for proc in self.processes:
            proc.stop()
        try:
            self.broker.delete_vhost(self.vhost)
        except BrokerError:
            pass  # a test that stopped the broker on purpose leaves nothing to delete


def pytest_configure(config: pytest.Config) -> None:
    """Mark the run: every process the tests start, and everything those start (brokers, their
    epmd), carries the mark in its environment, and so do the containers they start."""
    if not hasattr(config, "workerinput"):  # the first process, not an xdist worker
        os.environ[leftovers.MARK] = secrets.token_hex(8)  # the workers inherit it
    progress.register(config)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background of a script (`make test &`, nohup): the scripts it starts
        # would inherit the ignored Ctrl+C, and the tests that press it would wait in vain.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        processes.start_scripts_from_a_launcher()  # where the tests run (see launcher.py)


# The order in which the workers take the test modules (pytest-xdist's own order, by number of
# tests, is turned off in pyproject.toml). The static notes checks first: they need no broker
# and report while the brokers start. Then the longest first, as measured with a timeline of a
# whole run on 2 cores (3.10, local broker): each module runs whole on one worker, and a long
# one taken up late keeps the run waiting for it alone (test_restart.py, about 65 s, was taken
# 17th: a fresh clone's make test took 141-145 s then, 133-135 s in this order).
ORDER = (
    "test_notes.py",
    "test_cluster.py",  # three nodes to start and join: about 30 s before its first test
    "test_doctor.py",
    "test_notes_runs.py",
    "test_restart.py",
    "test_stream_offset_tracking.py",
    "test_doctor_streams.py",
    "test_resilient_worker.py",
    "test_tour.py",
    "test_broker.py",
    "test_failures_stopping.py",
    "test_dead_letters.py",
    "test_amqp10_exchanges.py",
    "test_amqp10.py",
    "test_amqp10_rpc_confirms.py",
    "test_notes_runs_streams.py",
    "test_stream_failures.py",
    "test_stream_hello_world.py",
    "test_versions.py",
    "test_publisher_confirms.py",
    "test_failures_connecting.py",
    "test_failures_messages.py",
    "test_inspector.py",
    "test_rpc.py",
    "test_work_queues.py",
    "test_notes_runs_amqp10.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return ORDER.index(name) if name in ORDER else len(ORDER)

    items.sort(key=rank)  # stable: a module's tests keep their order


def pytest_unconfigure(config: pytest.Config) -> None:
    """Whatever the tests left running (a broker whose command a failed test killed, its
    epmd, its data, its container) goes once the run is over, and the run says so."""
    processes.stop_the_launcher()
    if hasattr(config, "workerinput"):
        return
    removed = leftovers.remove(os.environ[leftovers.MARK])
    if removed:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line("Removed what the tests left running:", yellow=True)
            for line in removed:
                reporter.write_line(f"  {line}", yellow=True)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """The session's broker, from TUTORIAL_BROKER_SOURCE or the first source that works."""
    try:
        with make_broker() as running:
            yield running
    except BrokerUnavailable as exc:
        pytest.exit(f"no broker for the tests: {exc}", returncode=1)


class Terminals:
    """A chapter's receiving terminals, started once: each step, one after another, reads what
    reached them (a module's table of steps shares them, rather than starting them per step)."""

    def __init__(self, box: Sandbox, chap: Chapter) -> None:
        self.box, self.chap = box, chap
        self.procs = {term.name: box.start(term.script, *term.args) for term in chap.terminals}
        for term in chap.terminals:
            self.procs[term.name].wait_for(term.ready)
        self.flushed = dict.fromkeys(self.procs, 0)  # the last step's lines each one printed
        self.read = dict.fromkeys(self.procs, 0)  # message lines handed out so far

    def arrivals(self, step: Step) -> dict[str, list[str]]:
        """Run ``step``, then the chapter's last step, which reaches every terminal (once it
        has, nothing else is on its way); the message lines each terminal printed since the
        previous call."""
        last = self.chap.steps[-1]
        for sent in (step, last):
            sender = self.box.run(sent.script, *sent.args)
            promised = [e.line for e in sent.expect if SENDER in e.where]
            assert (sender.process.returncode, sender.stdout) == (0, promised), sender.output
        for name, lines in self.chap.promised(step, last).items():
            self.flushed[name] += lines.count(lines[-1])
            self.procs[name].wait_for(f"^{re.escape(lines[-1])}$", count=self.flushed[name])
        found = {}
        for term in self.chap.terminals:
            printed = self.procs[term.name].matching(term.message)
            found[term.name] = printed[self.read[term.name] :]
            self.read[term.name] = len(printed)
        return found


def new_sandbox(broker: Broker, name: str) -> Sandbox:
    """A virtual host of its own on ``broker``, named after ``name``; remove() takes it away."""
    vhost = f"test-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)[:80]}-{secrets.token_hex(2)}"
    broker.add_vhost(vhost)
    return Sandbox(broker, vhost)


def sandbox_for(broker: Broker, name: str) -> Iterator[Sandbox]:
    box = new_sandbox(broker, name)
    try:
        yield box
    finally:
        box.remove()


@pytest.fixture(scope="module")
def module_sandbox(broker: Broker, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A virtual host that the tests of a module share, in order (a table of steps)."""
    yield from sandbox_for(broker, request.module.__name__)


@pytest.fixture
def sandbox(broker: Broker, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from sandbox_for(broker, request.node.name)


@pytest.fixture
def port():
    """The "refused" and "silent" loopback ports of dead_ends(), for the test's length."""
    with dead_ends() as ports:
        yield ports


@pytest.fixture(scope="session")
def streams(broker: Broker) -> Broker:
    """The session's broker, which must serve streams (the brokers the tooling starts do).

    A broker named by RABBITMQ_URL may not run the stream plugin: its stream tests are skipped,
    saying where they looked (RABBITMQ_STREAM_URL, else port 5552 on the same host).
    """
    if broker.source == "url":
        where = StreamAddress.parse(broker.stream_url)
        try:
            socket.create_connection((where.host, where.port), timeout=5).close()
        except OSError as exc:
            pytest.skip(f"no stream port at {masked(broker.stream_url)}: {exc}")
    return broker


@pytest.fixture(scope="session")
def restartable(broker: Broker) -> Broker:
    """Skip a test that restarts the broker when the broker is not ours to restart."""
    if broker.source == "url":
        pytest.skip("the broker named by RABBITMQ_URL is not ours to restart")
    return broker


@pytest.fixture(scope="session")
def rabbitmq_version(broker: Broker) -> tuple[int, int]:
    """The broker's RabbitMQ version as (major, minor), from its management API."""
    try:
        overview = broker.management.get("overview")
    except (BrokerError, ManagementError) as exc:
        pytest.skip(f"the broker does not say its version (no management API): {exc}")
    major, minor = overview["rabbitmq_version"].split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(scope="session")
def broker_build(broker: Broker) -> str:
    """Which broker this is, as a test that pins a version says it: 'RabbitMQ 4.3.6 on Erlang
    29.1.2' (the same version is built by more than one packager; Erlang tells them apart)."""
    try:
        overview = broker.management.get("overview")
    except (BrokerError, ManagementError):
        return "a RabbitMQ that does not say its version"
    return f"RabbitMQ {overview['rabbitmq_version']} on Erlang {overview['erlang_version']}"


@pytest.fixture(autouse=True)
def only_on_its_versions(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``rabbitmq(since=..., before=..., otherwise=...)`` on other versions;
    where it runs, it records the build it ran on (the run's summary lists them).

    Before any other fixture of the test runs, so that none changes a broker it will not use.
    """
    marker = request.node.get_closest_marker("rabbitmq")
    if marker is None:
        return
    version = request.getfixturevalue("rabbitmq_version")
    if not marker.kwargs.get("since", (0, 0)) <= version < marker.kwargs.get("before", (99, 0)):
        pytest.skip(f"on RabbitMQ {version[0]}.{version[1]}, {marker.kwargs['otherwise']}")
    request.node.user_properties.append(("ran on", request.getfixturevalue("broker_build")))
