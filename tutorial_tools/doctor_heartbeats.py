"""make doctor on heartbeats: connections RabbitMQ closed because a client stopped answering.

A pika BlockingConnection answers heartbeats only while its I/O loop runs. A worker whose
callback works for longer than about two heartbeat timeouts (the tutorial's worker sleeping
through a long task) misses them, and RabbitMQ closes its connection, logging "missed heartbeats
from client". Nothing of it is left in the connection list: the broker's log is where it shows.
The management API names each node's log files; where one is a file on this machine (a broker
started by `make broker`, a local rabbitmq-server) the doctor reads its tail, otherwise it says
where to look.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tutorial_tools.doctor_report import Report
from tutorial_tools.management import ManagementApi, ManagementError

MISSED = re.compile(r"^(\S+ \S+) .*missed heartbeats from client, timeout: (\d+)s")
CLOSING = re.compile(r"closing AMQP connection \S+ \(([^)]*)\)")
TAIL = 4_000_000  # the last 4 MB of a log: quick to read
RECENT = timedelta(hours=1)  # older closures are history: the script may have been fixed since
FIX = (
    "a script kept its connection's I/O loop from running for two heartbeat timeouts, as "
    "a long task in a pika callback does: run the work in a thread of its own and ack through "
    "add_callback_threadsafe (see resilient_worker/), or raise the heartbeat timeout"
)


def missed_heartbeats(log: Path) -> list[str]:
    """For each connection the log says was closed for missed heartbeats in the last hour: its
    addresses and timeout, as "127.0.0.1:43168 -> 127.0.0.1:5672, timeout 2 s". (Each line of
    the log starts with its time: "2026-12-02 14:07:51.998741+00:00 [error] ...".)"""
    since = datetime.now(timezone.utc) - RECENT
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - TAIL))
        text = file.read().decode("utf-8", errors="replace")
    found, peer = [], "?"
    for line in text.splitlines():
        if closing := CLOSING.search(line):
            peer = closing[1]
        missed = MISSED.search(line)
        if missed and datetime.fromisoformat(missed[1]) >= since:
            found.append(f"{peer}, timeout {missed[2]} s")
    return found


def check_heartbeats(report: Report, api: ManagementApi) -> None:
    try:
        nodes = api.get("nodes")
    except ManagementError:
        return  # without the management API, the doctor does not know where the log is
    for node in nodes:
        logs = [Path(name) for name in node.get("log_files", []) if Path(name).is_file()]
        if not logs:
            where = ", ".join(node.get("log_files", [])) or "its log files not named"
            report.ok(
                f"node {node['name']} logs where the doctor cannot read ({where}): a connection "
                "it closed for missed heartbeats shows there as 'missed heartbeats from client' "
                "('docker compose logs rabbitmq | grep -B1 missed' for the compose file)"
            )
            continue
        closed = [entry for log in logs for entry in missed_heartbeats(log)]
        if closed:
            report.note(
                f"node {node['name']} closed {len(closed)} connection(s) for missed heartbeats "
                f"in the last hour (the last: {closed[-1]}): {FIX}"
            )
        else:
            report.ok(f"node {node['name']} closed no connection for missed heartbeats lately")
