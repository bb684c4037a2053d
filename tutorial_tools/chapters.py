"""What each chapter runs and what must arrive where: described once, for the tour and the tests.

A chapter starts its receiving scripts (each stands for a terminal a learner opens), then runs its
sending scripts one after another with the arguments the notes use. Each step says which lines
must then appear in which terminal. A terminal not named for a line must not print it.

The last step of every chapter reaches every receiver. Queues deliver in order, so once that last
message has arrived everywhere, anything that was going to arrive has: a line that is still
missing, or that came where it should not, is a real mismatch, not a slow broker.

The types are in chapter_types.py; the chapters in a module per track, chapters_pika.py
(1 to 7), chapters_stream.py (8 and 9) and chapters_amqp10.py (the AMQP 1.0 track). A new
chapter goes into its track's module (a new track into a module of its own) and into CHAPTERS
below, in the order of the course. Import them all from here.
"""

from __future__ import annotations

from tutorial_tools.chapter_types import (
    AWAITING_RPC,
    QUORUM,
    SENDER,
    WAITING_LOGS,
    WAITING_MESSAGES,
    WAITING_STREAM,
    Arguments,
    Chapter,
    Expect,
    Step,
    Terminal,
)
from tutorial_tools.chapters_amqp10 import AMQP10
from tutorial_tools.chapters_pika import (
    CONFIRM_STRATEGIES,
    DEAD_LETTERS,
    HELLO_WORLD,
    PUBLISH_SUBSCRIBE,
    PUBLISHER_CONFIRMS,
    RESILIENT_WORKER,
    ROUTING,
    RPC,
    TOPICS,
    WORK_QUEUES,
    ConfirmStrategy,
    route,
)
from tutorial_tools.chapters_stream import STREAM_HELLO_WORLD, STREAM_OFFSET_TRACKING

__all__ = [
    "AMQP10",
    "AWAITING_RPC",
    "CHAPTERS",
    "CONFIRM_STRATEGIES",
    "DEAD_LETTERS",
    "HELLO_WORLD",
    "PUBLISHER_CONFIRMS",
    "PUBLISH_SUBSCRIBE",
    "QUORUM",
    "RECEIVERS",
    "RECEIVERS_THAT_GIVE_UP",
    "RECONNECTING",
    "RESILIENT_WORKER",
    "ROUTING",
    "RPC",
    "SCRIPTS",
    "SENDER",
    "STREAM_HELLO_WORLD",
    "STREAM_OFFSET_TRACKING",
    "STREAM_SCRIPTS",
    "TOPICS",
    "WAITING_LOGS",
    "WAITING_MESSAGES",
    "WAITING_STREAM",
    "WORK_QUEUES",
    "Arguments",
    "Chapter",
    "ConfirmStrategy",
    "Expect",
    "Step",
    "Terminal",
    "chapter",
    "route",
]

CHAPTERS: tuple[Chapter, ...] = (
    HELLO_WORLD,
    WORK_QUEUES,
    RESILIENT_WORKER,
    DEAD_LETTERS,
    PUBLISH_SUBSCRIBE,
    ROUTING,
    TOPICS,
    RPC,
    PUBLISHER_CONFIRMS,
    STREAM_HELLO_WORLD,
    STREAM_OFFSET_TRACKING,
    AMQP10,
)


def _first_runs(client: str) -> dict[str, Terminal | Step]:
    found: dict[str, Terminal | Step] = {}
    for chap in CHAPTERS:
        if chap.client == client:
            for part in (*chap.terminals, *chap.steps):
                found.setdefault(part.script, part)
    return found


# Every pika chapter script once, with the arguments its chapter first runs it with: a
# terminal (a script that waits, with the line it prints once it does) or a step (one that
# ends). The stream scripts, on rstream, fail and stop in ways of their own: STREAM_SCRIPTS.
# The notes run one script the tour does not: here with its first run, so that the tests of
# every script's failures take it too.
OUTSIDE_THE_TOUR = (
    Terminal("poison worker", "dead_letters/poison_worker.py", ready=WAITING_MESSAGES),
)
SCRIPTS = {**_first_runs("pika"), **{term.script: term for term in OUTSIDE_THE_TOUR}}
RECEIVERS = {script: part for script, part in SCRIPTS.items() if isinstance(part, Terminal)}
# Those that end, saying why in one line, when their broker or their queue goes away. The
# resilient worker connects again instead: that is its chapter.
RECONNECTING = ("resilient_worker/resilient_worker.py",)
RECEIVERS_THAT_GIVE_UP = {s: term for s, term in RECEIVERS.items() if s not in RECONNECTING}
STREAM_SCRIPTS = _first_runs("rstream")


def chapter(slug: str) -> Chapter:
    for candidate in CHAPTERS:
        if candidate.slug == slug:
            return candidate
    raise KeyError(slug)
