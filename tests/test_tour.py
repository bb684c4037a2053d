"""The guided tour: runs the chapters as described, fails on a mismatch, leaves nothing behind."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tutorial_tools import tour
from tutorial_tools.chapters import CHAPTERS, PUBLISH_SUBSCRIBE, ROUTING, SENDER, Expect, chapter
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.waiting import TimedOut, wait_until


@pytest.mark.parametrize("chap", CHAPTERS, ids=lambda c: c.slug)
def test_every_message_arrives_where_the_chapter_says_and_the_broker_holds_what_it_declares(
    sandbox, chap, request
):
    if chap.client == "rstream":
        request.getfixturevalue("streams")  # skipped where the broker serves no streams
    version = request.getfixturevalue("rabbitmq_version")
    if version < chap.since:
        pytest.skip(f"on RabbitMQ {version[0]}.{version[1]}: {chap.needs}")
    outcome = tour.run_chapter(chap, sandbox.url, stream_url=sandbox.stream_url)
    assert outcome.problems == []
    # What make doctor expects of each chapter (chapters.py) is what the broker now holds.
    found = sandbox.broker.management.get("queues", sandbox.vhost)
    queues = {
        q["name"]: (q["durable"], q["arguments"])
        for q in found
        if not q["exclusive"] and q["type"] != "stream"
    }
    # A stream is a queue of type stream; what the stream protocol calls max-length-bytes,
    # the queue's arguments call x-max-length-bytes.
    streams = {q["name"]: q["arguments"] for q in found if q["type"] == "stream"}
    assert streams == {
        name: {"x-queue-type": "stream", **{f"x-{key}": value for key, value in arguments}}
        for name, arguments in chap.streams
    }
    exchanges = {
        e["name"]: e["type"]
        for e in sandbox.broker.management.get("exchanges", sandbox.vhost)
        if e["name"] and not e["name"].startswith("amq.")
    }
    assert queues == {name: (True, dict(arguments)) for name, arguments in chap.queues}
    assert exchanges == dict(chap.exchanges)


def test_the_last_step_of_every_chapter_reaches_every_terminal():
    # What makes the "nothing else arrived" check sound: see chapters.py's docstring.
    for chap in CHAPTERS:
        reached = {name for expect in chap.steps[-1].expect for name in expect.where}
        assert {t.name for t in chap.terminals} <= reached, chap.slug


def broken_routing():
    """Routing, with the notes wrongly promising that 'debug' reaches the error queue."""
    debug = ROUTING.steps[2]
    wrong = dataclasses.replace(
        debug,
        expect=(Expect(" [x] debug:Nobody is bound to debug", ("errors only",)), *debug.expect[1:]),
    )
    return dataclasses.replace(ROUTING, steps=(*ROUTING.steps[:2], wrong, *ROUTING.steps[3:]))


def test_a_mismatch_is_shown_plainly_and_makes_the_tour_exit_non_zero(sandbox, monkeypatch, capsys):
    monkeypatch.setattr(tour, "chapter", lambda slug: broken_routing())
    monkeypatch.setenv("RABBITMQ_URL", sandbox.url)
    code = tour.main(["routing", "--source", "url", "--plain", "--timeout", "3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL routing" in out
    assert "' [x] debug:Nobody is bound to debug' did not reach errors only" in out


def test_an_unexpected_arrival_is_a_mismatch_too(sandbox):
    # The notes say 'info' reaches only "all severities"; pretend they forgot that terminal.
    info = ROUTING.steps[0]
    forgetful = dataclasses.replace(info, expect=(Expect(info.expect[1].line, (SENDER,)),))
    chap = dataclasses.replace(ROUTING, steps=(forgetful, *ROUTING.steps[1:]))
    outcome = tour.run_chapter(chap, sandbox.url)
    assert outcome.problems == ["all severities printed unexpected ' [x] info:Starting up'"]


def test_a_line_promised_to_one_of_several_terminals_must_not_reach_two(sandbox):
    # Fanout gives every receiver a copy: notes claiming "one of them" would be wrong.
    steps = tuple(
        dataclasses.replace(
            step,
            expect=tuple(dataclasses.replace(e, one_of=e.where != (SENDER,)) for e in step.expect),
        )
        for step in PUBLISH_SUBSCRIBE.steps
    )
    outcome = tour.run_chapter(dataclasses.replace(PUBLISH_SUBSCRIBE, steps=steps), sandbox.url)
    assert outcome.problems == [
        f"' [x] {message}' reached receiver 1, receiver 2 more than once"
        for message in ("info: Hello World!", "warning: disk 90% full")
    ]


def test_plain_output_when_not_a_terminal_labels_every_line_and_has_no_colour(sandbox):
    proc = ScriptProcess(
        "tutorial_tools/tour.py", ["hello_world", "--source", "url"], url=sandbox.url
    )
    assert proc.wait(timeout=60) == 0
    assert "[receive]  [x] Received Hello World!" in proc.stdout
    assert "[sender]  [x] Sent 'Hello World!'" in proc.stdout
    assert any(
        line.startswith(f"== Chapter 1 of {len(CHAPTERS)}: Hello World") for line in proc.stdout
    )
    assert "\033[" not in proc.output


@pytest.mark.rabbitmq(before=(4, 0), otherwise="it runs the AMQP 1.0 chapter (the test above)")
def test_on_a_broker_older_than_4_0_the_amqp10_chapter_is_one_skip_line_not_a_failure(sandbox):
    proc = ScriptProcess("tutorial_tools/tour.py", ["amqp10", "--source", "url"], url=sandbox.url)
    assert proc.wait(timeout=60) == 0
    assert proc.matching(r"^SKIP amqp10: ") == [
        "SKIP amqp10: AMQP 1.0 chapters need RabbitMQ 4.0 or newer; this broker is RabbitMQ 3.10"
    ]
    assert proc.matching(r"amqp10/work_queues/") == []  # no script started


def test_step_by_step_waits_for_enter_before_each_step(sandbox):
    proc = ScriptProcess(
        "tutorial_tools/tour.py",
        ["hello_world", "--step", "--source", "url"],
        url=sandbox.url,
        keyboard=True,
    )
    try:
        proc.wait_for(r"^   press Enter to run it$")
        assert proc.matching(r"hello_world/send\.py") == []  # nothing sent before Enter
        proc.type_line()
        proc.wait_for(r"^\[receive\]  \[x\] Received Hello World!$")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.stop()


def test_columns_on_a_terminal_respect_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    display = tour.Display(stream=out, columns=True)
    display.width = 30
    display.names = ["sender", "receive"]
    display.line("receive", " [x] Received Hello World!")
    display.say("OK", "1;32")
    assert out.getvalue() == " " * 30 + " [x] Received Hello World!\nOK\n"


def test_list_names_every_chapter_in_order(capsys):
    assert tour.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [c.slug for c in CHAPTERS]


def test_an_unknown_chapter_is_a_usage_error(capsys):
    assert tour.main(["rabbits"]) == 2
    assert "no chapter 'rabbits'" in capsys.readouterr().err


def processes_using(url: str) -> list[int]:
    """Processes whose environment points at this test's virtual host."""
    found = []
    needle = f"RABBITMQ_URL={url}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_ctrl_c_in_the_middle_leaves_nothing_running(sandbox):
    proc = ScriptProcess(
        "tutorial_tools/tour.py",
        ["work_queues", "--source", "url"],
        url=sandbox.url,
    )
    proc.wait_for(r"Received Second task", timeout=60)  # both workers are busy now
    assert proc.interrupt(timeout=30) == 130
    assert "Traceback" not in proc.output
    assert [pid for pid in processes_using(sandbox.url) if pid != proc.process.pid] == []


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_tmux_mode_opens_one_running_pane_per_terminal(sandbox):
    session = f"test-{os.getpid()}-topics"
    tmux = ["tmux", "-L", session]  # a server of its own: never touches the user's sessions
    proc = ScriptProcess(
        "tutorial_tools/tour.py",
        ["topics", "--tmux", "--no-attach", "--session", session, "--source", "url"],
        url=sandbox.url,
        env={"TUTORIAL_TMUX_SOCKET": session},
    )
    try:
        proc.wait_for(rf"tmux session '{session}' is ready", timeout=60)

        def pane(title: str) -> str:
            panes = subprocess.run(
                [*tmux, "list-panes", "-t", session, "-F", "#{pane_id} #{pane_title}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            pane_id = next(p.split()[0] for p in panes if p.split(" ", 1)[1] == title)
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", pane_id],
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        for term in chapter("topics").terminals:
            wait_for_pane(lambda t=term.name: pane(t), "Waiting for logs")
        # The first step is typed in the sender pane: the learner presses Enter.
        wait_for_pane(lambda: pane(SENDER), "emit_log_topic.py quick.orange.fox")
        subprocess.run([*tmux, "send-keys", "-t", f"{session}:topics.0", "Enter"], check=True)
        wait_for_pane(lambda: pane("Q1 *.orange.*"), "[x] quick.orange.fox:matches Q1 only")
        wait_for_pane(lambda: pane("Q3 #"), "[x] quick.orange.fox:matches Q1 only")
        # A key Q2 does match, typed as a learner would: once it is there, Q2 has everything.
        last = "python topics/emit_log_topic.py quick.orange.rabbit 'matches both'"
        subprocess.run([*tmux, "send-keys", "-t", f"{session}:topics.0", last, "Enter"], check=True)
        wait_for_pane(lambda: pane("Q2 *.*.rabbit lazy.#"), "[x] quick.orange.rabbit:matches both")
        assert "quick.orange.fox" not in pane("Q2 *.*.rabbit lazy.#")
        # Ending the session ends the tour's wait: it stops, leaving nothing running.
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        assert proc.wait(timeout=30) == 0
        assert [pid for pid in processes_using(sandbox.url) if pid != proc.process.pid] == []
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        proc.stop()


def wait_for_pane(capture, text: str, timeout: float = 30) -> None:
    try:
        wait_until(lambda: text in capture(), timeout, f"{text!r} on the pane")
    except TimedOut as exc:
        raise TimedOut(f"{exc}; it shows:\n{capture()}") from None
