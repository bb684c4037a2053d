"""The types a chapter is described with: the terminals it opens, the steps it runs and the
lines each step promises where. What they mean together: chapters.py."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

WAITING_MESSAGES = r"^ \[\*\] Waiting for messages\. To exit press CTRL\+C$"
WAITING_LOGS = r"^ \[\*\] Waiting for logs\. To exit press CTRL\+C$"
AWAITING_RPC = r"^ \[x\] Awaiting RPC requests$"
WAITING_STREAM = r"^Press control \+ C to close$"  # as the official stream receive.py
SENDER = "sender"  # in an Expect, the terminal of the step's own script


@dataclass(frozen=True)
class Terminal:
    """A receiving script a learner keeps open in a terminal of its own."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    ready: str = WAITING_LOGS  # printed once it is declared, bound and consuming
    message: str = r"^ \[x\] "  # the lines that report a message that arrived
    finished: str | None = None  # printed when the work for a message is done

    @property
    def command(self) -> str:
        return shlex.join(["python", self.script, *self.args])


@dataclass(frozen=True)
class Expect:
    """``line`` is printed once in each of ``where`` (``one_of``: in exactly one of them).

    With ``regex``, ``line`` is a regular expression for the whole line: for what differs from
    run to run, such as the offsets in a stream.
    """

    line: str
    where: tuple[str, ...] = ()
    one_of: bool = False
    regex: bool = False

    @property
    def pattern(self) -> str:
        return f"^(?:{self.line})$" if self.regex else f"^{re.escape(self.line)}$"


@dataclass(frozen=True)
class Step:
    """One run of a sending script, and what it must cause."""

    script: str
    args: tuple[str, ...] = ()
    expect: tuple[Expect, ...] = ()
    says: str = ""  # one line for the tour: what this step shows

    @property
    def command(self) -> str:
        return shlex.join(["python", self.script, *self.args])


QUORUM = (("x-queue-type", "quorum"),)
Arguments = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Chapter:
    slug: str  # the folder
    title: str
    terminals: tuple[Terminal, ...]
    steps: tuple[Step, ...]
    showed: str  # one line for the tour: what the chapter showed
    # What its scripts declare, as they declare it (`make doctor` compares a broker's with it):
    # named queues, all durable, with their arguments; exchanges with their types; streams
    # with their arguments, as the stream protocol takes them.
    queues: tuple[tuple[str, Arguments], ...] = ()
    exchanges: tuple[tuple[str, str], ...] = ()
    streams: tuple[tuple[str, Arguments], ...] = ()
    # The client its scripts use: "pika" (AMQP 0-9-1, RABBITMQ_URL), "rstream" (the RabbitMQ
    # Stream protocol, RABBITMQ_STREAM_URL) or "amqp10" (AMQP 1.0, RABBITMQ_URL).
    client: str = "pika"
    # The oldest RabbitMQ its scripts run on, and why: the tour skips the chapter, in one line,
    # on an older broker (the scripts themselves say so too).
    since: tuple[int, int] = (0, 0)
    needs: str = ""

    def promised(self, *steps: Step) -> dict[str, list[str]]:
        """The message lines each terminal must print for ``steps``, in order."""
        return {
            term.name: [e.line for step in steps for e in step.expect if term.name in e.where]
            for term in self.terminals
        }
