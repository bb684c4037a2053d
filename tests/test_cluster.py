"""make cluster: three local RabbitMQ nodes, clustered, on loopback, gone after Ctrl+C.

The command runs once for the module, as a learner runs it (python -m tutorial_tools.cluster);
the tests read what it printed and ask the nodes. It starts local rabbitmq-server processes, so
it runs where the tests' own broker is a local one (CI's 3.10 run); elsewhere it is skipped.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pika
import psutil
import pytest
from doctor_runs import doctor, lines

from tutorial_tools.processes import ScriptProcess
from tutorial_tools.sources import choose_source
from tutorial_tools.waiting import wait_until

pytestmark = pytest.mark.cluster  # make test-cluster
READY = r"^Press Ctrl\+C to stop the cluster and remove it\.$"


@dataclass
class Node:
    name: str
    url: str
    stream_url: str
    management_url: str


@dataclass
class Cluster:
    command: ScriptProcess
    nodes: list[Node]
    rabbitmqctl: list[str]  # node 1's, as the alias the command prints

    @property
    def epmd_port(self) -> int:
        return int(self.rabbitmqctl[1].split("=")[1])  # ERL_EPMD_PORT=NNNN in the alias

    def ctl(self, node: Node, *args: str) -> str:
        """rabbitmqctl against ``node``, as the printed alias with that node's name."""
        env, argv = self.rabbitmqctl[1], self.rabbitmqctl[2:]
        argv = [*argv[:-1], node.name]
        result = subprocess.run(
            ["env", env, *argv, *args], capture_output=True, text=True, timeout=60, check=True
        )
        return result.stdout


def parsed(command: ScriptProcess) -> Cluster:
    text = "\n".join(command.stdout)
    nodes = [
        Node(*found)
        for found in re.findall(
            r"^Node \d: (\S+)\n    AMQP +(\S+)\n    streams +(\S+)\n    UI +(\S+)", text, re.M
        )
    ]
    [alias] = re.findall(r"^    alias rabbitmqctl='(.*)'$", text, re.M)
    return Cluster(command, nodes, shlex.split(alias))


@pytest.fixture(scope="module")
def cluster():
    # Asked of the choice, without starting the tests' own broker on this worker.
    if choose_source() != "local":
        pytest.skip("make cluster starts local rabbitmq-server nodes: tested with the local source")
    command = ScriptProcess("tutorial_tools/cluster.py", label="make cluster")
    try:
        command.wait_for(READY, timeout=180)
        yield parsed(command)
    finally:
        command.stop()


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
    assert sorted(re.findall(r"[\w.-]+@localhost", line)) == sorted(n.name for n in cluster.nodes)


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
        r"quorum queue 'task_queue': leader \S+@localhost, 3 of 3 members online", replicas
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


def test_ctrl_c_stops_the_three_nodes_and_their_epmd_and_removes_their_data(cluster):
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
