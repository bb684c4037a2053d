"""The inspector shows a broker's queues, exchanges and bindings, through the management API."""

from __future__ import annotations

import pytest

from tutorial_tools import inspector
from tutorial_tools.processes import run_script
from tutorial_tools.url_broker import UrlBroker
from tutorial_tools.waiting import wait_until


@pytest.fixture
def bound_receiver(sandbox):
    """receive_logs_direct.py bound to 'info' and 'error', and two messages left on 'hello'."""
    sandbox.start("routing/receive_logs_direct.py", "info", "error", ready=r"Waiting for logs")
    sandbox.run("hello_world/send.py")
    sandbox.run("hello_world/send.py")
    return sandbox


def rows(tables, title_start):
    return next(t for t in tables if t.title.startswith(title_start)).rows


def shows_the_chapter_state(tables) -> bool:
    return (
        ("hello", "2", "0") in rows(tables, "Queues")
        and ("direct_logs", "direct") in rows(tables, "Exchanges")
        and {key for source, _, key in rows(tables, "Bindings") if source == "direct_logs"}
        == {"info", "error"}
    )


def test_shows_the_queues_exchanges_and_bindings_of_a_broker_given_by_url(bound_receiver, broker):
    api = UrlBroker(bound_receiver.url, management_url=broker.management_url).management
    # The API refreshes its message counts every few seconds: wait for the state.
    wait_until(
        lambda: shows_the_chapter_state(inspector.inspect(api, bound_receiver.vhost)),
        30,
        "the inspector to show two messages on 'hello' and the bindings of 'direct_logs'",
    )


def test_command_line_prints_the_three_tables(bound_receiver, broker):
    proc = run_script(
        "tutorial_tools/inspector.py",
        url=bound_receiver.url,
        env={"RABBITMQ_MANAGEMENT_URL": broker.management_url},
    )
    assert proc.process.returncode == 0, proc.output
    titles = [line for line in proc.stdout if line and not line.startswith((" ", "-"))]
    assert titles[0] == f"Queues in virtual host '{bound_receiver.vhost}'"
    assert "Exchanges" in titles and "Bindings" in titles


def test_command_line_with_no_broker_says_so_in_one_line():
    proc = run_script(
        "tutorial_tools/inspector.py",
        url="amqp://guest:guest@127.0.0.1:1/%2F",
        env={"RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:1"},
    )
    assert proc.process.returncode == 1
    assert len(proc.stderr) == 1 and proc.stderr[0].startswith("inspector: ")
    assert "RABBITMQ_MANAGEMENT_URL" in proc.stderr[0]
    assert "guest:guest" not in proc.stderr[0]
