"""make cluster: three local RabbitMQ nodes, clustered, on loopback, gone after Ctrl+C.

The command runs once for the module, as a learner runs it (python -m tutorial_tools.cluster);
the tests read what it printed and ask the nodes. It starts local rabbitmq-server processes, so
it runs where the tests' own broker is a local one (CI's 3.10 run); elsewhere it is skipped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pika
import psutil
import pytest
from doctor_runs import doctor, lines
from shown import HINT, SHOWN, short_of, shown

from tutorial_tools.cluster import ACTIONS
from tutorial_tools.compose_cluster import ComposeCluster
from tutorial_tools.management import ManagementApi, ManagementError
from tutorial_tools.processes import ROOT, ScriptProcess
from tutorial_tools.sources import choose_source
from tutorial_tools.waiting import TimedOut, wait_until

pytestmark = pytest.mark.cluster  # make test-cluster
READY = r"^Press Ctrl\+C to stop the cluster and remove it\.$"
PROJECT = "tutorialci_cluster"  # .ci/run removes what is left of a tutorialci_ project
DONE = r"^(Killed|Stopped|Started) node \d|^tutorial-cluster: "


@dataclass
class Node:
    name: str
    url: str
    stream_url: str
    management_url: str


class Cluster:
    """Three nodes the experiments can take down and bring back: make cluster's, or those of
    cluster/docker-compose.yml."""

    nodes: list[Node]

    def do(self, command: str) -> None:
        """'kill N', 'stop N' or 'start N': done when this returns."""
        raise NotImplementedError

    def ctl(self, node: Node, *args: str) -> str:
        """rabbitmqctl against ``node``; what it printed."""
        raise NotImplementedError

    def running(self) -> Node:
        """A node that runs: the first that answers AMQP."""
        for node in self.nodes:
            with contextlib.suppress(pika.exceptions.AMQPConnectionError):
                pika.BlockingConnection(pika.URLParameters(node.url)).close()
                return node
        raise AssertionError("no node of the cluster answers")


@dataclass
class MadeCluster(Cluster):
    """make cluster, run as a learner runs it: commands typed at it, its alias for rabbitmqctl."""

    command: ScriptProcess
    nodes: list[Node]
    rabbitmqctl: list[str]  # node 1's, as the alias the command prints

    @property
    def epmd_port(self) -> int:
        return int(self.rabbitmqctl[1].split("=")[1])  # ERL_EPMD_PORT=NNNN in the alias

    def do(self, command: str) -> None:
        done = len(self.command.matching(DONE))
        self.command.type_line(command)
        self.command.wait_for(DONE, timeout=120, count=done + 1)
        done_as = ACTIONS[command.split()[0]][0]  # 'Killed' for kill, ...
        assert self.command.lines[-1].startswith(done_as), self.command.output

    def ctl(self, node: Node, *args: str) -> str:
        env, argv = self.rabbitmqctl[1], self.rabbitmqctl[2:]
        argv = [*argv[:-1], node.name]  # the alias, with this node's name after -n
        result = subprocess.run(
            ["env", env, *argv, *args], capture_output=True, text=True, timeout=60, check=True
        )
        return result.stdout


@dataclass
class ComposedCluster(Cluster):
    """cluster/docker-compose.yml's three containers (CI: podman-compose, a 4.x image)."""

    compose: ComposeCluster
    nodes: list[Node]

    def do(self, command: str) -> None:
        action, number = command.split()
        {
            "kill": self.compose.kill,
            "stop": self.compose.stop_node,
            "start": self.compose.start_node,
        }[action](int(number))

    def ctl(self, node: Node, *args: str) -> str:
        return self.compose.ctl(self.nodes.index(node) + 1, *args)


def parsed(command: ScriptProcess) -> MadeCluster:
    text = "\n".join(command.stdout)
    nodes = [
        Node(*found)
        for found in re.findall(
            r"^Node \d: (\S+)\n    AMQP +(\S+)\n    streams +(\S+)\n    UI +(\S+)", text, re.M
        )
    ]
    [alias] = re.findall(r"^    alias rabbitmqctl='(.*)'$", text, re.M)
    return MadeCluster(command, nodes, shlex.split(alias))


@pytest.fixture(scope="module")
def cluster():
    if os.environ.get("TUTORIAL_CLUSTER") == "compose":  # CI's 4.3 run
        compose = ComposeCluster(ROOT / "cluster" / "docker-compose.yml", project=PROJECT)
        try:
            compose.start()
            nodes = [Node(n.name, n.url, n.stream_url, n.management_url) for n in compose.nodes]
            yield ComposedCluster(compose, nodes)
        finally:
            compose.stop()
        return
    # Asked of the choice, without starting the tests' own broker on this worker.
    if choose_source() != "local":
        pytest.skip("make cluster starts local rabbitmq-server nodes: tested with the local source")
    command = ScriptProcess("tutorial_tools/cluster.py", label="make cluster", keyboard=True)
    try:
        command.wait_for(READY, timeout=180)
        yield parsed(command)
    finally:
        command.stop()


def made(cluster: Cluster) -> MadeCluster:
    if not isinstance(cluster, MadeCluster):
        pytest.skip("a test of make cluster itself")
    return cluster


def node_processes(cluster: Cluster) -> list[psutil.Process]:
    """The processes of the cluster's nodes (each carries its node's name in its environment)."""
    names = {node.name for node in cluster.nodes}
    found = []
    for process in psutil.process_iter(["environ"]):
        if (process.info["environ"] or {}).get("RABBITMQ_NODENAME") in names:
            found.append(process)
    return found


def test_three_nodes_run_as_one_cluster(cluster):
    assert len(cluster.nodes) == 3
    for node in cluster.nodes:
        status = cluster.ctl(node, "cluster_status", "--formatter", "json")
        assert sorted(re.findall(r'"running_nodes":\[([^\]]*)\]', status)[0].split(",")) == sorted(
            f'"{n.name}"' for n in cluster.nodes
        )


def test_a_quorum_queue_declared_through_any_node_has_a_member_on_each(cluster):
    with pika.BlockingConnection(pika.URLParameters(cluster.nodes[1].url)) as connection:
        connection.channel().queue_declare(
            "replicated", durable=True, arguments={"x-queue-type": "quorum"}
        )
    listing = cluster.ctl(cluster.nodes[0], "list_queues", "name", "members", "--no-table-headers")
    [line] = [line for line in listing.splitlines() if line.startswith("replicated")]
    assert sorted(re.findall(r"[\w.-]+@[\w.-]+", line)) == sorted(n.name for n in cluster.nodes)


def test_each_node_advertises_its_own_stream_port(cluster):
    for node in cluster.nodes:
        port = node.stream_url.rsplit(":", 1)[1].split("/")[0]
        proc = doctor(node.url, node.management_url, stream_url=node.stream_url)
        assert any(
            line.endswith(
                f"RabbitMQ advertises localhost:{port} for its streams, and it answers from here"
            )
            for line in proc.stdout
        ), proc.output


def test_every_listener_of_every_node_and_of_their_epmd_is_on_loopback(cluster):
    cluster = made(cluster)
    processes = node_processes(cluster)
    pids = {p.pid for p in processes}
    epmd_port = cluster.epmd_port
    found = [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and (c.pid in pids or c.laddr.port == epmd_port)
    ]
    ports = {port for _, port in found}
    for node in cluster.nodes:  # it sees every node's AMQP, stream and management ports
        for url in (node.url, node.stream_url, node.management_url):
            assert int(re.search(r":(\d+)(/|$)", url.split("@")[-1])[1]) in ports, url
    assert epmd_port in ports
    assert [(ip, port) for ip, port in found if not ipaddress.ip_address(ip).is_loopback] == []


def doctor_lines(cluster: Cluster, status: str) -> list[str]:
    node = cluster.nodes[0]
    return lines(doctor(node.url, node.management_url, stream_url=node.stream_url), status)


def test_make_doctor_shows_the_nodes_and_where_a_quorum_queue_has_its_members(cluster):
    with pika.BlockingConnection(pika.URLParameters(cluster.nodes[0].url)) as connection:
        connection.channel().queue_declare(
            "task_queue", durable=True, arguments={"x-queue-type": "quorum"}
        )
    names = ", ".join(node.name for node in cluster.nodes)
    ok = doctor_lines(cluster, "ok")
    assert f"cluster of 3 nodes, all running: {names}" in ok
    [replicas] = [line for line in ok if line.startswith("quorum queue 'task_queue'")]
    assert re.fullmatch(
        r"quorum queue 'task_queue': leader \S+@\S+, 3 of 3 members online", replicas
    )

    third = cluster.nodes[2]
    cluster.ctl(third, "stop_app")  # its Erlang VM runs on, RabbitMQ on it does not
    try:
        notes = doctor_lines(cluster, "note")
        assert f"cluster of 3 nodes, 1 not running: {third.name}; " in " ".join(notes), notes
        # The queue's count of members online follows a moment later.
        wait_until(
            lambda: any(
                line.endswith(", 2 of 3 members online") for line in doctor_lines(cluster, "ok")
            ),
            30,
            "make doctor to count 2 of the queue's 3 members online",
        )
    finally:
        cluster.ctl(third, "start_app")


# -- the chapter's experiments (cluster/) -------------------------------------------------

COUNT = 400  # messages per run: about 6 s at the publisher's pace
CONFIRMED = r"^ \[x\] Confirmed Message (\d+)$"
RECEIVED = r"^ \[x\] Received Message (\d+)"


def numbers(proc: ScriptProcess, pattern: str) -> list[int]:
    return [int(re.search(pattern, line)[1]) for line in proc.matching(pattern)]


def address(node: Node) -> str:
    """'127.0.0.1:5672' from the node's AMQP URL."""
    return node.url.split("@")[1].split("/")[0]


def chapter_script(cluster: Cluster, script: str, *args: str) -> ScriptProcess:
    urls = ",".join(node.url for node in cluster.nodes)
    return ScriptProcess(f"cluster/{script}", args, env={"RABBITMQ_URLS": urls})


def fresh(cluster: Cluster, queue: str) -> None:
    """Delete ``queue``: each experiment counts from an empty one."""
    with pika.BlockingConnection(pika.URLParameters(cluster.running().url)) as connection:
        connection.channel().queue_delete(queue)


def leader_of(cluster: Cluster, queue: str) -> int:
    """The number (1 to 3) of the node that leads the quorum queue ``queue``."""
    asked = ["list_queues", "name", "leader", "members"]  # as the notes show it
    listing = cluster.ctl(cluster.running(), *asked, "--no-table-headers")
    [leader] = [line.split()[1] for line in listing.splitlines() if line.split()[:1] == [queue]]
    return [node.name for node in cluster.nodes].index(leader) + 1


def left_in(cluster: Cluster, queue: str) -> list[int]:
    """Take what is left in ``queue`` (the consumer stopped): the numbers of those messages."""
    found = []
    with pika.BlockingConnection(pika.URLParameters(cluster.running().url)) as connection:
        channel = connection.channel()
        while (got := channel.basic_get(queue, auto_ack=True))[0] is not None:
            found.append(int(got[2].decode().split()[-1]))
    return found


def shows_what_the_notes_show(test: str, *processes: ScriptProcess) -> None:
    """Each line that the notes show for ``test`` is one these processes printed."""
    [row] = [row for row in SHOWN if row.name == test]
    printed = [line for proc in processes for line in proc.lines]
    assert short_of(row, printed) == {}, "\n".join(printed[-40:])


def all_received(
    cluster: Cluster, consumer: ScriptProcess, confirmed: list[int], queue: str
) -> list[int]:
    """Once the consumer has had every confirmed message: it stopped (Ctrl+C), the number of
    each message it got, and of each left in ``queue`` (a duplicate not yet delivered)."""
    try:  # as long as the publisher is given: both wait for the same new leader
        wait_until(lambda: set(numbers(consumer, RECEIVED)) >= set(confirmed), 120, "every message")
    except TimedOut as exc:  # its own lines (not the messages) say where it stopped
        said = "\n".join(consumer.matching(r"^ \[[*!]\] "))
        raise TimedOut(f"{exc}; the consumer said:\n{said}") from None
    assert consumer.interrupt() == 0
    return numbers(consumer, RECEIVED) + left_in(cluster, queue)


def counted(confirmed: list[int], received: list[int]) -> dict[str, int]:
    return {
        "confirmed": len(confirmed),
        "delivered": len(set(received)),
        "duplicated": len(received) - len(set(received)),
        "lost": len(set(confirmed) - set(received)),
    }


@shown(
    "cluster",
    [
        "python cluster/consumer.py",
        "python cluster/publisher.py",
        "rabbitmqctl list_queues name leader members",
    ],
    [
        re.compile(r" \[\*\] Connected to \S+:\d+"),
        " [*] Waiting for messages. To exit press CTRL+C",
        re.compile(r" \[x\] Received Message \d+"),
        re.compile(r" \[x\] Confirmed Message \d+"),
        re.compile(r" \[!\] StreamLostError: .*: Message \d+ unconfirmed, sending it again"),
    ],
)
def test_killing_the_leader_loses_no_confirmed_message(cluster, record_property):
    fresh(cluster, "replicated_queue")
    consumer = chapter_script(cluster, "consumer.py")
    publisher = chapter_script(cluster, "publisher.py", str(COUNT))
    killed = None
    try:
        consumer.wait_for("Waiting for messages")
        publisher.wait_for(r"Confirmed Message 100$", timeout=60)
        # Declared through node 1, where both scripts are connected: node 1 leads it. Killed,
        # it takes both connections with it.
        killed = leader_of(cluster, "replicated_queue")
        assert killed == 1
        cluster.do(f"kill {killed}")
        assert publisher.wait(timeout=120) == 0, publisher.output
        confirmed = numbers(publisher, CONFIRMED)
        assert confirmed == list(range(1, COUNT + 1))
        # Another replica leads now, and every confirmed message reaches the consumer.
        assert leader_of(cluster, "replicated_queue") != killed
        received = all_received(cluster, consumer, confirmed, "replicated_queue")
        assert set(received) == set(confirmed)
    finally:
        publisher.stop()
        consumer.stop()
        if killed:
            cluster.do(f"start {killed}")
    shows_what_the_notes_show(
        "test_killing_the_leader_loses_no_confirmed_message", consumer, publisher
    )
    record_property("counted", f"leader (node {killed}) killed: {counted(confirmed, received)}")


def test_without_a_majority_nothing_is_confirmed_until_a_node_returns(cluster, record_property):
    fresh(cluster, "replicated_queue")
    consumer = chapter_script(cluster, "consumer.py")
    # More messages, and the nodes stopped early: stopping one takes seconds, and the
    # publisher must still have messages to send when the second has stopped.
    publisher = chapter_script(cluster, "publisher.py", str(3 * COUNT))
    stopped = []
    try:
        consumer.wait_for("Waiting for messages")
        publisher.wait_for(r"Confirmed Message 20$", timeout=60)
        node = cluster.nodes[0]
        assert publisher.matching(r"Connected to") == [f" [*] Connected to {address(node)}"]
        for number in (2, 3):  # node 1 alone: one replica of three
            cluster.do(f"stop {number}")
            stopped.append(number)
        before = numbers(publisher, CONFIRMED)
        # make doctor takes some seconds to see it (the management API's counts lag): nothing
        # is confirmed meanwhile (bar one message on its way), and the consumer gets nothing
        # that was not confirmed.
        wait_until(
            lambda: any(
                line.startswith("quorum queue 'replicated_queue'") and "1 of 3" in line
                for line in lines(doctor(node.url, node.management_url), "FAIL")
            ),
            60,
            "make doctor to fail the queue: 1 of 3 members online",
        )
        after = numbers(publisher, CONFIRMED)
        assert len(after) <= len(before) + 1 and len(after) < 3 * COUNT
        assert set(numbers(consumer, RECEIVED)) <= set(after)
        cluster.do("start 3")  # a majority again: two of three
        stopped.remove(3)
        assert publisher.wait(timeout=120) == 0, publisher.output
        confirmed = numbers(publisher, CONFIRMED)
        received = all_received(cluster, consumer, confirmed, "replicated_queue")
        assert set(received) == set(confirmed)
    finally:
        publisher.stop()
        consumer.stop()
        for number in stopped:
            cluster.do(f"start {number}")
    record_property(
        "counted",
        f"quorum lost at {len(before)} confirmed, {len(after)} while lost: "
        f"{counted(confirmed, received)}",
    )


@shown(
    "cluster",
    ["python cluster/publisher.py --classic"],
    [
        re.compile(
            r' \[!\] ChannelClosedByBroker: \(404\) "NOT_FOUND - .*classic_queue.*" '
            rf"at \S+ {re.escape(HINT)}"
        )
    ],
)
def test_a_classic_queue_is_out_of_reach_while_its_node_is_down(cluster, record_property):
    fresh(cluster, "classic_queue")
    # 3.10 knows at once that the queue's node is down; 4.3, its node's container killed,
    # times the operation out after about a minute (measured: 68 s).
    gone = (
        r"NOT_FOUND - (home node '.*' of durable queue 'classic_queue' .* is down"
        r"|failed to perform operation on queue 'classic_queue' .* due to timeout)"
    )
    started = [chapter_script(cluster, "publisher.py", str(COUNT), "--classic")]
    killed = False
    try:  # the publisher declares it through node 1: it lives there, and only there
        publisher = started[0]
        publisher.wait_for(r"Confirmed Message 100$", timeout=60)
        cluster.do("kill 1")
        killed = True
        # Through the other nodes, neither the publisher nor a consumer can reach it.
        started.append(chapter_script(cluster, "consumer.py", "--classic"))
        for proc in started:
            assert proc.wait(timeout=180) == 1
            assert re.search(gone, proc.stderr[-1]), proc.output
        confirmed = numbers(publisher, CONFIRMED)
        # Back with its node, from its disk: what was confirmed is all there.
        cluster.do("start 1")
        killed = False
        started.append(consumer := chapter_script(cluster, "consumer.py", "--classic"))
        received = all_received(cluster, consumer, confirmed, "classic_queue")
    finally:
        for proc in started:
            proc.stop()
        if killed:
            cluster.do("start 1")
    assert set(received) >= set(confirmed)
    assert set(received) <= set(confirmed) | {len(confirmed) + 1}  # and the one in flight, maybe
    shows_what_the_notes_show(
        "test_a_classic_queue_is_out_of_reach_while_its_node_is_down", *started
    )
    record_property("counted", f"classic queue's node killed: {counted(confirmed, received)}")


def api(node: Node) -> ManagementApi:
    return ManagementApi(node.management_url, "guest", "guest")


def stream_script(cluster: Cluster, script: str, *args: str) -> ScriptProcess:
    urls = ",".join(node.stream_url for node in cluster.nodes)
    return ScriptProcess(f"cluster/{script}", args, env={"RABBITMQ_STREAM_URLS": urls})


def reading_from(cluster: Cluster) -> int:
    """The number of the node whose replica the stream consumer reads from (the management
    API lists a new connection some seconds after it opens)."""

    def nodes() -> list[str]:
        return [
            c["node"]
            for c in api(cluster.running()).get("connections")
            if (c.get("client_properties") or {}).get("connection_name") == "rstream-consumer"
        ]

    [node] = wait_until(nodes, 30, "the stream consumer's connection in the management API")
    return [n.name for n in cluster.nodes].index(node) + 1


@shown(
    "cluster",
    ["python cluster/stream_consumer.py", "python cluster/stream_publisher.py"],
    [
        re.compile(r" \[\*\] Reading from offset 0 through \S+:\d+"),
        re.compile(r" \[x\] Received Message \d+ \(offset \d+\)"),
        re.compile(r" \[\*\] Connected through \S+:\d+"),
        re.compile(r" \[x\] Confirmed Message \d+"),
    ],
)
def test_a_stream_serves_its_consumer_through_a_node_kill(cluster, record_property):
    with contextlib.suppress(ManagementError):
        api(cluster.running()).delete("queues", "/", "replicated-stream")
    consumer = stream_script(cluster, "stream_consumer.py")
    publisher = None
    killed = None
    try:
        consumer.wait_for(r"Reading from offset 0 ")  # it has declared the stream
        publisher = stream_script(cluster, "stream_publisher.py", str(COUNT))
        publisher.wait_for(r"Confirmed Message 100$", timeout=60)
        killed = reading_from(cluster)
        cluster.do(f"kill {killed}")
        assert publisher.wait(timeout=120) == 0, publisher.output
        confirmed = numbers(publisher, CONFIRMED)
        assert confirmed == list(range(1, COUNT + 1))
        wait_until(lambda: set(numbers(consumer, RECEIVED)) >= set(confirmed), 60, "every message")

        # It read on through another node, from the offset after the last one it had.
        # (More than once, maybe: RabbitMQ also tells it when the stream's members change.)
        def read_on() -> list[int]:
            again = numbers(consumer, r"reading again from offset (\d+)")
            read = set(numbers(consumer, r"^ \[\*\] Reading from offset (\d+) through "))
            return again if set(again) <= read else []

        try:
            again = wait_until(read_on, 30, "the consumer to read on after each loss")
        except TimedOut as exc:  # its own lines (not the messages) say where it stopped
            said = "\n".join(consumer.matching(r"^ \[[*!]\] "))
            raise TimedOut(f"{exc}; node {killed} killed, the consumer said:\n{said}") from None
        assert consumer.interrupt() == 0
        offsets = numbers(consumer, r"\(offset (\d+)\)$")
        assert offsets == list(range(len(offsets)))  # each offset once, none skipped
        received = numbers(consumer, RECEIVED)
    finally:
        if publisher:
            publisher.stop()
        consumer.stop()
        if killed:
            cluster.do(f"start {killed}")
    assert set(received) == set(confirmed)
    shows_what_the_notes_show(
        "test_a_stream_serves_its_consumer_through_a_node_kill", consumer, publisher
    )
    record_property(
        "counted",
        f"stream: the consumer's node (node {killed}) killed, it read on from offset {again}: "
        f"{counted(confirmed, received)}",
    )


def test_ctrl_c_stops_the_three_nodes_and_their_epmd_and_removes_their_data(cluster):
    cluster = made(cluster)
    data = {
        p.info["environ"]["RABBITMQ_MNESIA_BASE"]
        for p in psutil.process_iter(["environ"])
        if p.pid in {q.pid for q in node_processes(cluster)}
        and "RABBITMQ_MNESIA_BASE" in (p.info["environ"] or {})
    }
    assert len(data) == 3
    assert cluster.command.interrupt(timeout=60) == 0
    assert cluster.command.stdout[-1] == "Interrupted. Stopping the cluster ..."
    wait_until(lambda: not node_processes(cluster), 30, "the nodes' processes to end")
    epmd_port = cluster.epmd_port
    assert not [
        c
        for c in psutil.net_connections("inet")
        if c.laddr and c.laddr.port == epmd_port and c.status == psutil.CONN_LISTEN
    ]
    assert [d for d in data if Path(d).exists()] == []
