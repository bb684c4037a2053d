"""The inspector shows a broker's queues, exchanges and bindings, whatever its source."""

from __future__ import annotations

import json
import time

import pytest

from tutorial_tools import inspector
from tutorial_tools.broker import AttachedBroker, UrlBroker
from tutorial_tools.processes import run_script


@pytest.fixture
def bound_receiver(sandbox):
    """receive_logs_direct.py bound to 'info' and 'error', and two messages left on 'hello'."""
    sandbox.start("routing/receive_logs_direct.py", "info", "error", ready=r"Waiting for logs")
    sandbox.run("hello_world/send.py")
    sandbox.run("hello_world/send.py")
    return sandbox


def rows(tables, title_start):
    return next(t for t in tables if t.title.startswith(title_start)).rows


def eventually_shows_the_chapter_state(inspect, timeout: float = 30) -> None:
    """Message counts of quorum queues and of the HTTP API are refreshed every few seconds:
    wait for the state, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert_shows_the_chapter_state(inspect())
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def assert_shows_the_chapter_state(tables):
    assert ("hello", "2", "0") in rows(tables, "Queues")
    assert ("direct_logs", "direct") in rows(tables, "Exchanges")
    bindings = rows(tables, "Bindings")
    assert {key for source, _, key in bindings if source == "direct_logs"} == {"info", "error"}


def test_through_rabbitmqctl_of_the_broker_make_broker_keeps(bound_receiver, restartable, tmp_path):
    state = tmp_path / "broker.json"
    state.write_text(json.dumps(restartable.state()))
    attached = AttachedBroker.from_state_file(state)
    eventually_shows_the_chapter_state(lambda: inspector.inspect(attached, bound_receiver.vhost))


def test_through_the_management_api_of_a_broker_given_by_url(bound_receiver, broker):
    url_only = UrlBroker(bound_receiver.url, management_url=broker.management_url).start()
    eventually_shows_the_chapter_state(lambda: inspector.inspect(url_only, bound_receiver.vhost))


def test_command_line_prints_the_three_tables(bound_receiver, broker, tmp_path):
    proc = run_script(
        "tutorial_tools/inspector.py",
        url=bound_receiver.url,
        env={
            "RABBITMQ_MANAGEMENT_URL": broker.management_url,
            "TUTORIAL_BROKER_STATE": str(tmp_path / "none.json"),
        },
    )
    assert proc.process.returncode == 0, proc.output
    titles = [line for line in proc.stdout if line and not line.startswith((" ", "-"))]
    assert titles[0] == f"Queues in virtual host '{bound_receiver.vhost}'"
    assert "Exchanges" in titles and "Bindings" in titles


def test_command_line_with_no_broker_says_so_in_one_line(tmp_path):
    proc = run_script(
        "tutorial_tools/inspector.py",
        url="amqp://guest:guest@127.0.0.1:1/%2F",
        env={"TUTORIAL_BROKER_STATE": str(tmp_path / "none.json")},
    )
    assert proc.process.returncode == 1
    assert len(proc.stderr) == 1 and proc.stderr[0].startswith("inspector: ")
    assert "guest:guest" not in proc.stderr[0]
