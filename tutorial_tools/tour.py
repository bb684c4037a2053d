"""The guided tour: every chapter's terminals, side by side, checked against the notes.

    python -m tutorial_tools.tour              every chapter, in order
    python -m tutorial_tools.tour topics       one chapter
    python -m tutorial_tools.tour --list       the chapters
    python -m tutorial_tools.tour --step       press Enter between steps (for a workshop)
    python -m tutorial_tools.tour --tmux rpc   open the chapter as real terminals in tmux

It uses the broker at RABBITMQ_URL (and RABBITMQ_STREAM_URL) if set, else starts a throwaway one
(see broker.py) and removes it at the end. Exit status 0 when everything arrived where the notes
say, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tutorial_tools.chapters import CHAPTERS, SENDER, Chapter, Step, Terminal, chapter
from tutorial_tools.lifecycle import run_with_broker
from tutorial_tools.probes import rabbitmq_version
from tutorial_tools.processes import ScriptError, ScriptProcess
from tutorial_tools.sources import SOURCES, Broker
from tutorial_tools.tour_display import Display
from tutorial_tools.tour_tmux import open_in_tmux
from tutorial_tools.waiting import TimedOut, wait_until

ARRIVAL_TIMEOUT = 30.0


# -- running one chapter -----------------------------------------------------------------


@dataclass
class Outcome:
    chapter: Chapter
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def run_chapter(
    chap: Chapter,
    url: str,
    display: Display | None = None,
    before_step: Callable[[int, Step], None] | None = None,
    timeout: float = ARRIVAL_TIMEOUT,
    stream_url: str | None = None,
) -> Outcome:
    """Run a chapter's terminals and steps against the broker at ``url`` (``stream_url`` for the
    stream chapters); report mismatches."""
    display = display or Display(stream=io.StringIO())  # quiet: only the outcome matters
    outcome = Outcome(chap)
    started = time.monotonic()
    terminals: dict[str, ScriptProcess] = {}
    display.open_terminals([SENDER, *(t.name for t in chap.terminals)])
    try:
        for term in chap.terminals:
            display.line(term.name, f"$ {term.command}")
            proc = ScriptProcess(
                term.script,
                term.args,
                url=url,
                stream_url=stream_url,
                label=term.name,
                on_line=lambda p, s: display.line(p.label, s),
            )
            terminals[term.name] = proc
            if chap.client != "rstream":
                # One at a time: RabbitMQ 3.10.8 can fail two consumers that declare a new
                # quorum queue at the same moment. The stream scripts wait out a new stream's
                # leader election, so they start together, as a learner may start them.
                proc.wait_for(term.ready, ARRIVAL_TIMEOUT)
        for term in chap.terminals:
            terminals[term.name].wait_for(term.ready, ARRIVAL_TIMEOUT)
        for number, step in enumerate(chap.steps, 1):
            if before_step:
                before_step(number, step)
            _run_step(step, url, stream_url, terminals, display, outcome, timeout)
        for term in chap.terminals:
            _wait_until_idle(term, terminals[term.name], timeout, outcome)
        _check_nothing_else_arrived(chap, terminals, outcome)
    except ScriptError as exc:
        outcome.problems.append(str(exc).splitlines()[0])
    finally:
        for term in chap.terminals:
            if term.name in terminals:
                _press_ctrl_c(term, terminals[term.name], display, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


def _run_step(
    step: Step,
    url: str,
    stream_url: str | None,
    terminals: dict[str, ScriptProcess],
    display: Display,
    outcome: Outcome,
    timeout: float,
) -> None:
    display.line(SENDER, f"$ {step.command}")
    sender = ScriptProcess(
        step.script,
        step.args,
        url=url,
        stream_url=stream_url,
        label=SENDER,
        on_line=lambda p, s: display.line(SENDER, s),
    )
    try:
        code = sender.wait(ARRIVAL_TIMEOUT)
    finally:
        sender.stop()
    if code != 0:
        outcome.problems.append(f"'{step.command}' exited with {code}")
    for expect in step.expect:
        pattern = expect.pattern
        if SENDER in expect.where and len(sender.matching(pattern)) != 1:
            outcome.problems.append(f"'{step.command}' did not print {expect.line!r}")
        places = [terminals[name] for name in expect.where if name != SENDER]
        if expect.one_of:
            if not _wait_any(places, pattern, timeout):
                outcome.problems.append(
                    f"{expect.line!r} reached none of {', '.join(expect.where)}"
                )
        else:
            for proc in places:
                try:
                    proc.wait_for(pattern, timeout)
                except ScriptError:
                    outcome.problems.append(f"{expect.line!r} did not reach {proc.label}")


def _wait_any(places: list[ScriptProcess], pattern: str, timeout: float) -> bool:
    try:
        return wait_until(lambda: any(p.matching(pattern) for p in places), timeout, pattern)
    except TimedOut:
        return False


def _wait_until_idle(term: Terminal, proc: ScriptProcess, timeout: float, outcome: Outcome) -> None:
    """A worker is idle once it has finished every message it took."""
    if term.finished is None:
        return
    taken = len(proc.matching(term.message))
    try:
        if taken:
            proc.wait_for(term.finished, timeout, count=taken)
    except ScriptError:
        outcome.problems.append(f"{term.name} did not finish the {taken} messages it took")


def _check_nothing_else_arrived(
    chap: Chapter, terminals: dict[str, ScriptProcess], outcome: Outcome
) -> None:
    """Every message line is one the steps expect in that terminal, and each arrived once
    (a one_of line: once across all of its terminals)."""
    expected = [expect for step in chap.steps for expect in step.expect]
    for term in chap.terminals:
        listed = [expect.pattern for expect in expected if term.name in expect.where]
        got = terminals[term.name].matching(term.message)
        outcome.problems.extend(
            f"{term.name} printed unexpected {line!r}"
            for line in got
            if not any(re.match(pattern, line) for pattern in listed)
        )
    for expect in expected:
        counts = {
            name: len(terminals[name].matching(expect.pattern))
            for name in expect.where
            if name != SENDER
        }
        if expect.one_of and sum(counts.values()) > 1:
            outcome.problems.append(
                f"{expect.line!r} reached {', '.join(expect.where)} more than once"
            )
        elif not expect.one_of:
            outcome.problems.extend(
                f"{expect.line!r} reached {name} more than once"
                for name, n in counts.items()
                if n > 1
            )


def _press_ctrl_c(term: Terminal, proc: ScriptProcess, display: Display, outcome: Outcome) -> None:
    display.line(term.name, "^C")
    try:
        code = proc.interrupt(timeout=15)
        if code != 0:
            outcome.problems.append(f"{term.name} exited with {code} on Ctrl+C")
    except ScriptError:
        outcome.problems.append(f"{term.name} did not stop on Ctrl+C")
    finally:
        proc.stop()


# -- the whole tour ----------------------------------------------------------------------


def tour(
    chapters: list[Chapter],
    url: str,
    display: Display,
    step_by_step: bool = False,
    timeout: float = ARRIVAL_TIMEOUT,
    stream_url: str | None = None,
    version: tuple[int, int] | None = None,
) -> bool:
    """Run ``chapters``; skip, in one line, those that need a newer RabbitMQ than ``version``
    (None: unknown, so run them: their scripts say what they need)."""
    all_ok = True
    started = time.monotonic()
    course = list(CHAPTERS) if all(c in CHAPTERS for c in chapters) else chapters
    for chap in chapters:
        # Numbered as in the course, also when only one chapter runs.
        index, total = course.index(chap) + 1, len(course)
        display.say()
        display.say(f"== Chapter {index} of {total}: {chap.title} ({chap.slug}/README.md) ==", "1")
        if version is not None and version < chap.since:
            have = ".".join(map(str, version))
            display.say(f"SKIP {chap.slug}: {chap.needs}; this broker is RabbitMQ {have}", "1;33")
            continue

        def before_step(number: int, step: Step, chap: Chapter = chap) -> None:
            display.say(f"-- step {number} of {len(chap.steps)}: {step.says}", "2")
            if step_by_step:
                display.say("   press Enter to run it")
                if not sys.stdin.readline():
                    raise KeyboardInterrupt  # end of input: nobody is left to press Enter

        outcome = run_chapter(chap, url, display, before_step, timeout, stream_url)
        if outcome.ok:
            display.say(f"OK   {chap.slug}: {chap.showed} ({outcome.seconds:.1f} s)", "1;32")
        else:
            all_ok = False
            display.say(f"FAIL {chap.slug}: what arrived does not match the notes:", "1;31")
            for problem in outcome.problems:
                display.say(f"     - {problem}", "31")
    verdict = (
        "every message arrived where the notes say" if all_ok else "some chapters did not match"
    )
    display.say()
    display.say(
        f"Tour finished in {time.monotonic() - started:.1f} s: {verdict}.",
        "1;32" if all_ok else "1;31",
    )
    return all_ok


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.tour",
        description="Run the chapters' scripts side by side and check that every message arrives "
        "where the notes say.",
    )
    parser.add_argument("chapter", nargs="?", help="run only this chapter (see --list)")
    parser.add_argument("--list", action="store_true", help="list the chapters and exit")
    parser.add_argument("--step", action="store_true", help="wait for Enter before each step")
    parser.add_argument(
        "--tmux", action="store_true", help="open the chapter in tmux, one pane per terminal"
    )
    parser.add_argument("--no-attach", action="store_true", help="with --tmux: do not attach")
    parser.add_argument(
        "--session", help="with --tmux: the session's name (default rabbitmq-CHAPTER)"
    )
    parser.add_argument("--plain", action="store_true", help="prefixed lines instead of columns")
    parser.add_argument("--source", choices=SOURCES, help="broker source")
    parser.add_argument(
        "--timeout",
        type=float,
        default=ARRIVAL_TIMEOUT,
        help=f"seconds to wait for each line the notes promise (default {ARRIVAL_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)

    if args.list:
        width = max(len(chap.slug) for chap in CHAPTERS)
        for index, chap in enumerate(CHAPTERS, 1):
            print(f"{index}. {chap.slug:<{width}} {chap.title}")
        return 0
    try:
        chapters = [chapter(args.chapter)] if args.chapter else list(CHAPTERS)
    except KeyError:
        names = ", ".join(c.slug for c in CHAPTERS)
        print(f"tour: no chapter {args.chapter!r}; the chapters are: {names}", file=sys.stderr)
        return 2
    if args.tmux and len(chapters) != 1:
        print("tour: --tmux opens one chapter: name it, e.g. --tmux topics", file=sys.stderr)
        return 2

    display = Display(columns=False if args.plain else None)

    def show(broker: Broker) -> int:
        if args.tmux:
            session = args.session or f"rabbitmq-{chapters[0].slug}"
            return open_in_tmux(
                chapters[0], broker.url, session, not args.no_attach, broker.stream_url
            )
        version = rabbitmq_version(broker.url)
        ok = tour(
            chapters, broker.url, display, args.step, args.timeout, broker.stream_url, version
        )
        return 0 if ok else 1

    return run_with_broker("tour", show, args.source, say=display.say)


if __name__ == "__main__":
    sys.exit(main())
