"""Routing: the direct exchange 'direct_logs' delivers a log to the queues bound to its severity."""

from __future__ import annotations

import re

import pytest

from tutorial_tools.chapters import WAITING_LOGS
from tutorial_tools.processes import ScriptProcess

# Reaches every receiver below; it is sent last so that nothing else can still be on its way.
LAST = ("error", "the last message")


def start_receivers(sandbox, bindings: dict[str, tuple[str, ...]]) -> dict[str, ScriptProcess]:
    """Start one receiver per entry, bound to those severities; return once all are bound."""
    receivers = {
        name: sandbox.start("routing/receive_logs_direct.py", *severities)
        for name, severities in bindings.items()
    }
    for receiver in receivers.values():
        receiver.wait_for(WAITING_LOGS)
    return receivers


def emit(sandbox, severity: str, message: str) -> None:
    sender = sandbox.run("routing/emit_log_direct.py", severity, message)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {severity}:{message}"])


def emit_last(sandbox, receivers: dict[str, ScriptProcess], severity: str = LAST[0]) -> None:
    emit(sandbox, severity, LAST[1])
    for receiver in receivers.values():
        receiver.wait_for(f"^ \\[x\\] {re.escape(severity)}:{LAST[1]}$")


def logs(receiver: ScriptProcess) -> list[str]:
    """What a receiver printed, as severity:message, in order."""
    return [line.removeprefix(" [x] ") for line in receiver.matching(r"^ \[x\] ")]


SEVERITIES = [
    ("error", {"errors only", "all severities"}),
    ("warning", {"all severities"}),
    ("info", {"all severities"}),
    ("debug", set()),  # nobody bound to it: the exchange drops it
]


@pytest.mark.parametrize(
    "severity, reaches",
    SEVERITIES,
    ids=[f"{key} -> {' + '.join(sorted(to)) or 'dropped'}" for key, to in SEVERITIES],
)
def test_each_severity_reaches_exactly_the_receivers_bound_to_it(sandbox, severity, reaches):
    receivers = start_receivers(
        sandbox, {"errors only": ("error",), "all severities": ("info", "warning", "error")}
    )

    emit(sandbox, severity, "a log")
    emit_last(sandbox, receivers)

    assert {name: logs(receiver) for name, receiver in receivers.items()} == {
        name: [f"{severity}:a log"] * (name in reaches) + ["error:the last message"]
        for name in receivers
    }


def test_two_queues_bound_with_the_same_key_both_get_the_message(sandbox):
    receivers = start_receivers(sandbox, {"first": ("warning",), "second": ("warning",)})

    emit(sandbox, "warning", "Disk 90% full")
    emit_last(sandbox, receivers, severity="warning")

    assert [logs(receiver) for receiver in receivers.values()] == [
        ["warning:Disk 90% full", "warning:the last message"]
    ] * 2
