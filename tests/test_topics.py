"""Topics: the topic exchange 'topic_logs' matches a dotted routing key against binding patterns.

In a binding key, * stands for exactly one word and # for zero or more words. As in the notes:
Q1 is bound to *.orange.*, Q2 to *.*.rabbit and lazy.#.
"""

from __future__ import annotations

import re

import pytest

from tutorial_tools.chapters import WAITING_LOGS
from tutorial_tools.processes import ScriptProcess

Q1 = ("*.orange.*",)
Q2 = ("*.*.rabbit", "lazy.#")

# Reaches Q1 and Q2 (and #); it is sent last so that nothing else can still be on its way.
LAST = "quick.orange.rabbit"

ROUTES = [
    # routing key, the queues it reaches, why
    ("quick.orange.rabbit", {"Q1", "Q2"}, "matches a key of each"),
    ("lazy.orange.elephant", {"Q1", "Q2"}, "matches a key of each"),
    ("quick.orange.fox", {"Q1"}, "matches *.orange.* only"),
    ("lazy.brown.fox", {"Q2"}, "matches lazy.# only"),
    ("lazy.pink.rabbit", {"Q2"}, "matches both of Q2's keys, delivered once"),
    ("lazy", {"Q2"}, "# matches zero words too"),
    ("lazy.orange.new.rabbit", {"Q2"}, "lazy.# takes any number of words"),
    ("quick.brown.fox", set(), "matches no key"),
    ("orange", set(), "too few words for *.orange.*"),
    ("quick.orange.new.rabbit", set(), "too many words for either * pattern"),
]


def start_receivers(sandbox, bindings: dict[str, tuple[str, ...]]) -> dict[str, ScriptProcess]:
    """Start one receiver per entry, bound to those patterns; return once all are bound."""
    receivers = {
        name: sandbox.start("topics/receive_logs_topic.py", *patterns)
        for name, patterns in bindings.items()
    }
    for receiver in receivers.values():
        receiver.wait_for(WAITING_LOGS)
    return receivers


def emit(sandbox, routing_key: str, message: str) -> None:
    sender = sandbox.run("topics/emit_log_topic.py", routing_key, message)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {routing_key}:{message}"])


def emit_last(sandbox, receivers: dict[str, ScriptProcess]) -> None:
    emit(sandbox, LAST, "the last message")
    for receiver in receivers.values():
        receiver.wait_for(f"^ \\[x\\] {re.escape(LAST)}:the last message$")


def logs(receiver: ScriptProcess) -> list[str]:
    """What a receiver printed, as routing_key:message, in order."""
    return [line.removeprefix(" [x] ") for line in receiver.matching(r"^ \[x\] ")]


@pytest.mark.parametrize(
    "routing_key, reaches",
    [(key, reaches) for key, reaches, _ in ROUTES],
    ids=[f"{key} -> {' + '.join(sorted(to)) or 'no queue'} ({why})" for key, to, why in ROUTES],
)
def test_a_routing_key_reaches_the_queues_whose_patterns_match_it_once(
    sandbox, routing_key, reaches
):
    receivers = start_receivers(sandbox, {"Q1": Q1, "Q2": Q2})

    emit(sandbox, routing_key, "a log")
    emit_last(sandbox, receivers)

    assert {name: logs(receiver) for name, receiver in receivers.items()} == {
        name: [f"{routing_key}:a log"] * (name in reaches) + [f"{LAST}:the last message"]
        for name in receivers
    }


def test_a_receiver_bound_to_hash_gets_everything(sandbox):
    receivers = start_receivers(sandbox, {"#": ("#",)})

    for routing_key, _, _ in ROUTES:
        emit(sandbox, routing_key, "a log")
    emit_last(sandbox, receivers)

    assert logs(receivers["#"]) == [
        *(f"{routing_key}:a log" for routing_key, _, _ in ROUTES),
        f"{LAST}:the last message",
    ]
