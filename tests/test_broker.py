"""The throwaway broker: each source starts, restarts keeping durable state, and stops clean."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pika
import psutil
import pytest
from mirakuru.base import ENV_UUID
from mirakuru.base_env import processes_with_env

from tutorial_tools import container_broker, leftovers
from tutorial_tools.lifecycle import STOP_SIGNALS, running_broker
from tutorial_tools.local_broker import LocalBroker
from tutorial_tools.management import ManagementApi
from tutorial_tools.processes import ROOT, ScriptProcess, run_script
from tutorial_tools.rabbitmq_server import find_server, free_ports
from tutorial_tools.sources import Broker, BrokerUnavailable
from tutorial_tools.url_broker import UrlBroker
from tutorial_tools.waiting import wait_until


def publish_kept_message(url: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare("kept", durable=True, arguments={"x-queue-type": "quorum"})
        channel.basic_publish(
            "",
            "kept",
            b"still here",
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        )


def take_message(url: str) -> bytes | None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        _, _, body = connection.channel().basic_get("kept", auto_ack=True)
        return body


def still_running(described: str) -> list[str]:
    """What of a broker described as `describe()` does still exists on this machine."""
    node = re.search(r"\(node (\S+)\)", described)
    if node:
        # The Erlang VM's command line does not name the node: every process of the node (the
        # VM, its helpers, its epmd) has it in its environment.
        pids = processes_with_env("RABBITMQ_NODENAME", node[1])
        return [f"process {pid} of node {node[1]}" for pid in sorted(pids)]
    container = re.search(r"\((tutorial-rabbitmq-\S+), image", described)
    assert container, f"cannot tell which broker this is: {described}"
    client = docker.from_env()
    try:
        return [c.name for c in client.containers.list(all=True, filters={"name": container[1]})]
    finally:
        client.close()


def data_directories(described: str) -> set[str]:
    """The data directory of a local broker described as `describe()` (none for a container)."""
    node = re.search(r"\(node (\S+)\)", described)
    if not node:
        return set()
    found = set()
    for pid in processes_with_env("RABBITMQ_NODENAME", node[1]):
        with contextlib.suppress(psutil.Error):
            found.add(str(Path(psutil.Process(pid).environ()["RABBITMQ_MNESIA_BASE"]).parent))
    return found


def test_url_source_uses_the_broker_it_is_given_and_never_stops_it(broker: Broker, sandbox):
    given = UrlBroker(sandbox.url, management_url=broker.management_url).start()
    publish_kept_message(given.url)
    given.stop()
    assert take_message(sandbox.url) == b"still here"
    with pytest.raises(Exception, match="cannot be restarted"):
        given.restart()


@contextlib.contextmanager
def broker_command(broker: Broker) -> Iterator[ScriptProcess]:
    """The broker command on the tests' source, ready; once the block ends, it must have left
    no traceback and nothing of its broker running."""
    if broker.source == "url":
        pytest.skip("the url source starts nothing of its own")
    cli = ScriptProcess(
        "tutorial_tools/broker.py", ["--source", broker.source], env={"RABBITMQ_URL": ""}
    )
    try:
        cli.wait_for(r"^Press Ctrl\+C to stop the broker", timeout=120)
        yield cli
    finally:
        cli.stop()
    assert "Traceback" not in cli.output
    assert still_running(cli.matching(r"^Using the ")[0]) == []


def test_command_line_starts_a_broker_and_ctrl_c_leaves_nothing_behind(broker: Broker):
    with broker_command(broker) as cli:
        url = cli.matching(r"^\s+export RABBITMQ_URL=amqp://")[0].split("=", 1)[1]
        publish_kept_message(url)
        management = cli.matching(r"^\s+export RABBITMQ_MANAGEMENT_URL=http://")[0].split("=", 1)[1]
        assert ManagementApi(management, "guest", "guest").get("queues", "/", "kept")["durable"]
        # The stream chapters run with its RABBITMQ_STREAM_URL line.
        stream_export = cli.matching(r"^\s+export RABBITMQ_STREAM_URL=rabbitmq-stream://")[0]
        sent = run_script("stream_hello_world/send.py", stream_url=stream_export.split("=", 1)[1])
        assert (sent.process.returncode, sent.stderr) == (0, [])
        # The alias line it prints makes `rabbitmqctl`, as the notes and the doctor write it,
        # reach this broker.
        alias = cli.matching(r"^\s+alias rabbitmqctl='")[0].strip()
        shell = f"shopt -s expand_aliases; {alias}\nrabbitmqctl list_queues -q name"
        listed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
        assert "kept" in listed.stdout.split(), listed.stderr
        assert cli.interrupt(timeout=60) == 0
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=2"))


def test_a_second_interrupt_while_the_broker_stops_does_not_cut_the_stop_short(broker: Broker):
    # `make broker` passes the SIGTERM it gets on to its child, which the process group's
    # SIGTERM has already reached; a user may press Ctrl+C again while the broker stops.
    with broker_command(broker) as cli:
        cli.process.send_signal(signal.SIGTERM)
        cli.wait_for(r"Stopping the broker \.\.\.$")
        cli.process.send_signal(signal.SIGINT)
        assert cli.wait(timeout=60) == 0


def test_a_stop_signal_that_comes_before_the_command_waits_for_it_is_not_lost():
    # The broker command waits for Ctrl+C. A signal that came in the gap just before a
    # signal.pause() was lost until the next one: a test that sent SIGTERM as soon as the
    # command said "Press Ctrl+C" waited in vain, now and then. Here the signal is held back
    # (blocked) and so surely there before the wait begins.
    code = (
        "import os, signal\n"
        "from tutorial_tools.lifecycle import STOP_SIGNALS, wait_for_stop\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "try:\n"
        "    wait_for_stop()\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


def test_what_a_killed_broker_command_left_running_goes_when_the_run_ends(broker: Broker):
    # A test whose broker command hangs kills it in its teardown; the broker it started runs
    # on in a session of its own, with its epmd and its data. The run's end removes them.
    if broker.source == "url":
        pytest.skip("the url source starts nothing of its own")
    mark = f"test-{secrets.token_hex(4)}"  # a run of its own, so that nothing else is removed
    cli = ScriptProcess(
        "tutorial_tools/broker.py",
        ["--source", broker.source],
        env={"RABBITMQ_URL": "", leftovers.MARK: mark},
    )
    try:
        cli.wait_for(r"^Press Ctrl\+C to stop the broker", timeout=120)
    finally:
        cli.kill()
    described = cli.matching(r"^Using the ")[0]
    data = [Path(p) for p in data_directories(described)]
    try:
        assert still_running(described), "the killed command should have left its broker"
        assert leftovers.remove(mark)
        assert still_running(described) == []
        assert [d for d in data if d.exists()] == []
    finally:
        leftovers.remove(mark)  # whatever this test got wrong, it leaves nothing behind


def test_after_the_first_interrupt_the_commands_ignore_any_further_one(broker, monkeypatch):
    # What keeps a second Ctrl+C or SIGTERM (make passes its own on) from cutting the stop
    # short, which the test above cannot catch: it lands too late to tell.
    monkeypatch.setenv("RABBITMQ_URL", broker.url)  # a broker started here would stop it
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        with pytest.raises(KeyboardInterrupt), running_broker("url", say=lambda text: None):
            signal.raise_signal(signal.SIGTERM)
        assert [signal.getsignal(signum) for signum in STOP_SIGNALS] == [signal.SIG_IGN] * 2
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def listening(broker: Broker) -> list[tuple[str, int]]:
    """(address, port) of every socket on this machine that listens for ``broker``."""
    if broker.source == "local":
        # Every process of the node: the Erlang VM, its helpers, its own epmd.
        pids = broker.process.pids()
        return [
            (c.laddr.ip, c.laddr.port)
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        ]
    # A container's ports on this machine are what its engine publishes (where the engine
    # listens itself, as Podman's conmon or Docker's proxy do, those sockets too).
    client = docker.from_env()
    try:
        container = client.containers.get(broker.name)
        bindings = [b for bs in container.ports.values() if bs for b in bs]
    finally:
        client.close()
    published = {(b["HostIp"] or "0.0.0.0", int(b["HostPort"])) for b in bindings}
    ports = {port for _, port in published}
    return sorted(
        published
        | {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
        }
    )


def test_every_listener_of_a_broker_we_started_is_on_loopback_only(broker: Broker):
    if broker.source == "url":
        pytest.skip("the broker named by RABBITMQ_URL is not one we started")
    found = listening(broker)
    # It does see the broker's listeners: every port the broker says it has (a local node's
    # Erlang distribution port and epmd among them).
    assert {port for _, port in found} >= set(broker.ports.values()), found
    assert [(ip, port) for ip, port in found if not ipaddress.ip_address(ip).is_loopback] == []


LOCAL = pytest.mark.skipif(find_server() is None, reason="no rabbitmq-server is installed here")


@LOCAL
def test_a_local_node_whose_port_is_taken_as_it_starts_is_not_taken_for_started():
    """free_ports() chooses ports free at that moment; another process (another test worker's
    broker) may bind one before the node does. The node then dies ('eaddrinuse') while the port
    accepts connections: it must not count as started, or the tests go to another broker."""
    port = free_ports(1)[0]
    local, failed = LocalBroker(fixed_port=port), []

    def start() -> None:
        try:
            local.start(attempts=1)  # one attempt: every one would find the port taken
        except BrokerUnavailable as exc:
            failed.append(str(exc))

    starting = threading.Thread(target=start)
    starting.start()
    workdir = None
    try:
        # The node has begun to log: its AMQP listener, the last it starts, is seconds away.
        wait_until(lambda: local.process and local.process.node_log.exists(), 60, "its log")
        workdir = local.workdir
        with socket.create_server(("127.0.0.1", port)):
            starting.join(timeout=120)
    finally:
        starting.join(timeout=120)
        if workdir:  # kept, with its logs, by a node that ended by itself
            shutil.rmtree(workdir, ignore_errors=True)
    taken = "a port it was given was taken meanwhile: eaddrinuse"
    assert failed == [f"rabbitmq-server exited as it started ({taken})"]
    assert processes_with_env(ENV_UUID, local.process.envvars[ENV_UUID]) == set()


@LOCAL
def test_a_local_node_whose_port_is_taken_before_it_starts_is_not_started():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        local = LocalBroker(fixed_port=port)
        with pytest.raises(BrokerUnavailable, match=f"^port {port} on 127.0.0.1 is taken"):
            local.start()
    assert not local.process.node_log.parent.parent.exists()  # nothing kept: no node ran


def test_a_container_whose_host_port_is_taken_as_it_starts_is_started_on_others(
    broker: Broker, monkeypatch
):
    """The same race for a container: the engine binds the host ports free_ports() chose, and
    one may have been taken meanwhile. The broker starts again on others."""
    if broker.source != "container":
        pytest.skip("the tests' brokers are not containers here")
    real, chosen = container_broker.free_ports, []

    def first_taken(count: int) -> list[int]:
        ports = real(count)
        if not chosen:
            ports[0] = held  # the first choice: one of them taken before the engine binds it
        chosen.append(ports)
        return ports

    monkeypatch.setattr(container_broker, "free_ports", first_taken)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        held = taken.getsockname()[1]
        with container_broker.ContainerBroker() as box:
            assert len(chosen) == 2 and held not in box.ports.values()
            assert box.management.get("overview")["rabbitmq_version"]
        # The port given (make broker PORT=N) taken: one line, once every attempt found it so.
        with pytest.raises(BrokerUnavailable, match=f"^cannot listen on .*:{held}: .*in use$"):
            container_broker.ContainerBroker(fixed_port=held).start()


def test_no_source_at_all_names_the_three_ways_to_get_a_broker(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("RABBITMQ_URL", "TUTORIAL_BROKER_SOURCE")
    }
    env["PATH"] = os.path.dirname(sys.executable)
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    env["TUTORIAL_RABBITMQ_SERVER_CANDIDATES"] = ""
    result = subprocess.run(
        [sys.executable, "-m", "tutorial_tools.broker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for way in ("RABBITMQ_URL", "Docker", "apt-get install rabbitmq-server"):
        assert way in result.stderr


def test_a_tooling_process_that_ends_kills_no_broker_whose_marker_has_its_pid_in_it():
    # mirakuru's own exit handler would SIGKILL every process whose mirakuru_uuid contains
    # the exiting process's PID: once in a few runs, a `make broker` ending in one test killed
    # the broker of another worker. Here a process marked with the PID of the one that ends.
    code = "import sys, tutorial_tools.rabbitmq_server\nprint(flush=True)\nsys.stdin.readline()\n"
    ending = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    ending.stdout.readline()  # it has imported the tooling
    env = dict(os.environ, mirakuru_uuid=f"{ending.pid}1:not-its-own")
    marked = subprocess.Popen(["sleep", "60"], env=env)
    try:
        ending.communicate(b"\n", timeout=30)
        assert ending.returncode == 0
        assert marked.poll() is None, "killed when the other process ended"
    finally:
        marked.kill()
        marked.wait()
