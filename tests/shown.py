"""What the notes show besides the tour, as rows to run: the machinery of the rows.

The tour runs each chapter's main example (tutorial_tools/chapters.py). The notes show more: a
message sent before anyone listens, a worker stopped mid-task, a queue left by older code, a
receiver writing to a file... Each of those is a row of SHOWN: the commands as the notes print
them after `$ `, and the lines the notes say they print. tests/test_notes_runs.py (chapters 1 to
7) and tests/test_notes_runs_streams.py (8 and 9) define the rows and run each against the
broker, finding each of its lines in what the scripts printed. tests/test_notes.py, which needs
no broker, checks the other half: every command and every ` [x] `, ` [.] `, ` [*] ` or ` [!] `
line in a notes block is the tour's or a row's.

The notes show the default virtual host, '/'; the rows run in a virtual host of their own, so
its name is read as '/' in what the scripts print.
"""

from __future__ import annotations

import collections
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from dead_ends import dead_ends

from tutorial_tools.addresses import DEFAULT_STREAM_URL, DEFAULT_URL
from tutorial_tools.processes import ScriptProcess, run_script

Line = str | re.Pattern  # a line as printed, or a pattern for one with a part that varies
HINT = "(run 'make doctor' to diagnose)"
# Where a script's error line says it looked, with the URLs the notes assume (none set).
WHERE = DEFAULT_URL.rpartition("@")[2]
STREAM_WHERE = DEFAULT_STREAM_URL.rpartition("@")[2]


@dataclass(frozen=True)
class Shown:
    """An experiment a chapter's notes show: its commands, and the lines it prints."""

    chapter: str  # the folder whose README.md shows it
    name: str
    commands: tuple[str, ...]  # each as the notes show it after "$ "
    lines: tuple[Line, ...]  # each printed at least as often as it is listed
    run: Callable[..., list[str]] = field(repr=False)  # (sandbox, row, tmp_path): all printed
    marks: tuple = ()


SHOWN: list[Shown] = []


def shown(chapter: str, commands: list[str], lines: list[Line], marks: tuple = ()):
    """Register the function below as the way to run what a chapter's notes show."""

    def register(run):
        SHOWN.append(Shown(chapter, run.__name__, tuple(commands), tuple(lines), run, marks))
        return run

    return register


def words(command: str) -> list[str]:
    """A command's words as the shell reads them; a word that starts with # starts a comment."""
    return shlex.split(command, comments=True)


def script_and_args(command: str) -> tuple[str, list[str]]:
    python, script, *args = words(command)
    assert python == "python", command
    return script, args


def start(sandbox, command: str, ready: str | None = None, query: str = "") -> ScriptProcess:
    """Start a command the notes run in a terminal of its own, as a learner would (``query``:
    settings to add to its RABBITMQ_URL)."""
    script, args = script_and_args(command)
    return sandbox.start(script, *args, ready=ready, env={"RABBITMQ_URL": sandbox.url + query})


def run(sandbox, command: str, timeout: float = 30) -> ScriptProcess:
    """Run a command the notes show to its end."""
    script, args = script_and_args(command)
    return sandbox.run(script, *args, timeout=timeout)


def printed(*processes: ScriptProcess) -> list[str]:
    return [line for proc in processes for line in proc.lines]


def messages(proc: ScriptProcess) -> list[str]:
    """The messages a receiver printed, in order."""
    return proc.matching(r"^ \[x\] ")


def skip_unless_rabbitmqctl(sandbox) -> None:
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")


def count(line: Line, lines: list[str]) -> int:
    if isinstance(line, re.Pattern):
        return sum(1 for candidate in lines if line.fullmatch(candidate))
    return lines.count(line)


def as_the_notes_show(sandbox, line: str) -> str:
    """A line printed against the test's virtual host, as against the broker the scripts reach
    with no RABBITMQ_URL set (the notes show that)."""
    for url, where in ((sandbox.url, WHERE), (sandbox.stream_url or "", STREAM_WHERE)):
        line = re.sub(rf" at {re.escape(url.rpartition('@')[2])}(\?\S*)? ", f" at {where} ", line)
    return line.replace(f"vhost '{sandbox.vhost}'", "vhost '/'")


def rows_of(module: str) -> list:
    """The rows a test module defines, as its test's parameters."""
    return [
        pytest.param(row, marks=row.marks, id=f"{row.chapter}: {row.name}")
        for row in SHOWN
        if row.run.__module__ == module
    ]


def check(sandbox, tmp_path, row: Shown) -> None:
    """Run the row; each line it lists must be among what the scripts printed."""
    output = [as_the_notes_show(sandbox, line) for line in row.run(sandbox, row, tmp_path)]
    assert short_of(row, output) == {}, "printed:\n" + "\n".join(output)


def short_of(row: Shown, output: list[str]) -> dict[Line, int]:
    """The lines of ``row`` that ``output`` has fewer of than the row lists, with how many."""
    wanted = collections.Counter(row.lines)
    return {line: n for line, n in wanted.items() if count(line, output) < n}


def where_nothing_listens(command: str, url_for: Callable[[str, int, str], str]) -> ScriptProcess:
    """Run a command the notes show with its broker's URL (``url_for(host, port, vhost)``: an
    AMQP or a stream URL) at a loopback port where nothing listens; it must fail."""
    script, args = script_and_args(command)
    with dead_ends() as port:
        url = url_for("127.0.0.1", port["refused"], "/")
        key = "stream_url" if url.startswith("rabbitmq-stream://") else "url"
        proc = run_script(script, args, **{key: url})
    assert proc.process.returncode == 1
    return proc
