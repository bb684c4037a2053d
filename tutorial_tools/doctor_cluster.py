"""make doctor on a cluster (make cluster, or yours): its nodes, running or not, any network
partition, and where each chapter quorum queue's replicas are.

On a single node there is nothing to say, and nothing is said. On a cluster, a quorum queue
keeps working while a majority of its members run; a node that is down is worth knowing, a
partition is a problem.
"""

from __future__ import annotations

from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.doctor_report import Report
from tutorial_tools.management import ManagementApi, ManagementError


def check_cluster(report: Report, api: ManagementApi, vhost: str) -> None:
    try:
        nodes = api.get("nodes") or []
    except ManagementError:
        return  # without the management API, the doctor does not see the other nodes
    if len(nodes) < 2:
        return
    names = [node["name"] for node in nodes]
    down = [node["name"] for node in nodes if not node.get("running")]
    if down:
        report.note(
            f"cluster of {len(nodes)} nodes, {len(down)} not running: {', '.join(down)}; its "
            "quorum queues work on while a majority of their members run: start it again"
        )
    else:
        report.ok(f"cluster of {len(nodes)} nodes, all running: {', '.join(names)}")
    for node in nodes:
        if node.get("partitions"):
            report.fail(
                f"node {node['name']} is cut off from {', '.join(node['partitions'])}: a network "
                "partition (https://www.rabbitmq.com/docs/partitions says how to recover)"
            )
    check_replicas(report, api, vhost)


def check_replicas(report: Report, api: ManagementApi, vhost: str) -> None:
    """For each chapter quorum queue that exists: its leader, and its members online."""
    # The cluster chapter's queue too: cluster/ is not in the tour (it needs make cluster).
    names = {name for chapter in CHAPTERS for name, arguments in chapter.queues}
    names.add("replicated_queue")
    try:
        queues = [q for q in api.get("queues", vhost) if q["name"] in names]
    except ManagementError:
        return
    for queue in sorted(queues, key=lambda q: q["name"]):
        if queue.get("type") != "quorum" or not queue.get("members"):
            continue
        members, online = queue["members"], queue.get("online") or []
        line = (
            f"quorum queue {queue['name']!r}: leader {queue.get('leader')}, "
            f"{len(online)} of {len(members)} members online"
        )
        if len(online) * 2 > len(members):
            report.ok(line)
        else:
            report.fail(f"{line}: no majority, so it takes and gives nothing until one is back")
