"""What the two halves of make doctor share: the reporter of their lines (ok, note, or FAIL with
the fix), the exceptions that end a half early, what a port answers to a protocol's greeting, and
the rabbitmqctl commands their fixes name.

A module of its own rather than part of doctor.py: that one runs as __main__, and halves that
imported it back would get a second copy, whose Stop its run order would not catch.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from tutorial_tools.probes import greeting

TIMEOUT = 5.0  # seconds for a broker that does not answer, as in the chapter scripts


class Stop(Exception):
    """A check failed that the later checks need."""


class NoStreams(Exception):
    """Nothing serves streams where the stream chapters look by default: not a failure."""


@dataclass
class Line:
    status: str  # "ok", "note" or "FAIL"
    text: str

    def __str__(self) -> str:
        return f"{self.status:<5} {self.text}"


class Report:
    """Says each check's line as it comes, and remembers whether one failed (the exit status)."""

    def __init__(self, say: Callable[[Line], None]) -> None:
        self.say = say
        self.failed = False

    def ok(self, text: str) -> None:
        self.say(Line("ok", text))

    def note(self, text: str) -> None:
        self.say(Line("note", text))

    def fail(self, text: str) -> None:
        self.failed = True
        self.say(Line("FAIL", text))


def ctl(vhost: str, *args: str) -> str:
    """A rabbitmqctl command line for the virtual host, as a learner would type it."""
    command, *rest = args
    return " ".join(["rabbitmqctl", command, *(["-p", vhost] if vhost != "/" else []), *rest])


def grant_command(vhost: str, user: str) -> str:
    """The rabbitmqctl command that lets the user do everything on the virtual host, quoted."""
    return f'\'rabbitmqctl set_permissions -p {vhost} {user} ".*" ".*" ".*"\''


def listener_answer(
    report: Report, host: str, port: int, hello: bytes, *, variable: str, silent: str, ask: str
) -> bytes:
    """What host:port answers to ``hello`` (see probes.greeting). A FAIL and Stop where the host
    is unknown (``variable`` names it), where ``silent`` (the greeting) gets no answer within
    TIMEOUT (``ask``: which port it should be), or where the port cannot be reached.
    ConnectionRefusedError is left to the caller: what it means differs between the halves."""
    address = f"{host}:{port}"
    try:
        return greeting(host, port, hello, TIMEOUT)
    except ConnectionRefusedError:
        raise
    except socket.gaierror:
        report.fail(f"the host {host!r} is unknown: check {variable}")
        raise Stop from None
    except TimeoutError:
        report.fail(f"{address} did not answer {silent} within {TIMEOUT:g} s: {ask}")
        raise Stop from None
    except OSError as error:
        report.fail(f"cannot reach {address}: {error.strerror or error}")
        raise Stop from None
