"""Publish/Subscribe: emit_log.py broadcasts on the fanout exchange 'logs' to every receiver."""

from __future__ import annotations

import re

import pytest

from tutorial_tools.chapters import WAITING_LOGS
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.waiting import wait_until


def start_receivers(sandbox, count: int) -> list[ScriptProcess]:
    """Start ``count`` receivers side by side; return once each has its queue bound."""
    receivers = [sandbox.start("publish_subscribe/receive_logs.py") for _ in range(count)]
    for receiver in receivers:
        receiver.wait_for(WAITING_LOGS)
    return receivers


def emit(sandbox, message: str) -> None:
    sender = sandbox.run("publish_subscribe/emit_log.py", message)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {message}"])


def wait_for_log(receivers: list[ScriptProcess], message: str) -> None:
    for receiver in receivers:
        receiver.wait_for(f"^ \\[x\\] {re.escape(message)}$")


def logs(receiver: ScriptProcess) -> list[str]:
    """The messages a receiver printed, in order."""
    return [line.removeprefix(" [x] ") for line in receiver.matching(r"^ \[x\] ")]


def test_every_running_receiver_gets_every_message(sandbox):
    receivers = start_receivers(sandbox, 3)
    messages = ["info: Starting up", "warning: Disk 90% full", "error: Disk full"]

    for message in messages:
        emit(sandbox, message)
    # Each queue delivers in order: once the last message is in, no other is still coming.
    wait_for_log(receivers, messages[-1])

    assert [logs(receiver) for receiver in receivers] == [messages] * 3


def test_a_receiver_started_after_a_message_was_sent_does_not_get_it(sandbox):
    (early,) = start_receivers(sandbox, 1)
    emit(sandbox, "info: before the second receiver")
    wait_for_log([early], "info: before the second receiver")

    (late,) = start_receivers(sandbox, 1)
    emit(sandbox, "info: after it started")
    wait_for_log([early, late], "info: after it started")

    assert logs(early) == ["info: before the second receiver", "info: after it started"]
    # Had the first message been kept for it, it would have arrived before the second.
    assert logs(late) == ["info: after it started"]


@pytest.mark.parametrize(
    "stop", [ScriptProcess.interrupt, ScriptProcess.kill], ids=["Ctrl+C", "SIGKILL"]
)
def test_a_receivers_server_named_exclusive_queue_disappears_when_it_exits(sandbox, stop):
    (receiver,) = start_receivers(sandbox, 1)
    (queue,) = sandbox.queue_names()
    assert queue.startswith("amq.gen-")  # named by the broker

    stop(receiver)

    wait_until(lambda: sandbox.queue_names() == set(), 10, f"queue {queue} to be deleted")
