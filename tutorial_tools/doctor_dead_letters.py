"""make doctor on dead letters: where each chapter queue sends what it lets go of, and what
waits in the parking lot.

A dead-letter policy outlives the experiment that set it: left on `task_queue`, it changes what
chapter 2's scripts see (a delivery limit, a delay before a task comes back), and nothing in
the scripts shows it. The management API lists the policies.
"""

from __future__ import annotations

import re

from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.doctor_report import Report, ctl
from tutorial_tools.management import ManagementApi, ManagementError

# The settings that decide what becomes of a message its queue lets go of, as a policy names
# them (a queue argument has the same name after "x-").
SETTINGS = (
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "delayed-retry-type",
    "delayed-retry-min",
    "delayed-retry-max",
)
PARKING_LOT = "parking_lot"  # dead_letters/: tasks no worker could do, for a person to look at


def policy_for(queue: str, policies: list[dict]) -> dict | None:
    """The policy RabbitMQ applies to ``queue``: of those whose pattern it matches, the one of
    the highest priority. (Read from the policies themselves: the queue's own report of its
    policy trails by several seconds.)"""
    kinds = ("queues", "all", "quorum_queues", "classic_queues")
    found = [p for p in policies if p["apply-to"] in kinds and re.search(p["pattern"], queue)]
    return max(found, key=lambda p: p["priority"], default=None)


def check_dead_letters(report: Report, api: ManagementApi, vhost: str) -> None:
    """A note for each chapter queue that a policy gives dead-letter settings. (Settings in a
    queue's own arguments are the chapter's: Declarations checks those.)"""
    try:
        policies = api.get("policies", vhost) or []
    except ManagementError:
        return  # no management API: nothing to read the policies from
    for name in sorted({name for chapter in CHAPTERS for name, _ in chapter.queues}):
        policy = policy_for(name, policies)
        definition = policy["definition"] if policy else {}
        said = ", ".join(f"{key} {definition[key]!r}" for key in SETTINGS if key in definition)
        if said:
            report.note(
                f"queue {name!r} has dead-letter settings from policy {policy['name']!r}: "
                f"{said}; to remove them, '{ctl(vhost, 'clear_policy', policy['name'])}'"
            )


def parking_lot_note(ready: int) -> str:
    return (
        f"queue {PARKING_LOT!r} (dead_letters) holds {ready} task(s) that no worker could do: "
        "'python dead_letters/parking_lot.py' shows why, '--move' sends them back to task_queue"
    )
