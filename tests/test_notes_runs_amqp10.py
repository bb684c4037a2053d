"""What the AMQP 1.0 track's notes (amqp10/README.md) show besides the tour, run as they show it
(the rows of tests/shown.py)."""

from __future__ import annotations

import pytest
from shown import HINT, WHERE, Shown, check, printed, rows_of, run, shown, start
from test_amqp10 import SINCE_4_0

from tutorial_tools.chapters import WAITING_MESSAGES

BEFORE_4_0 = (pytest.mark.rabbitmq(before=(4, 0), otherwise="it speaks AMQP 1.0 (the other rows)"),)


@shown(
    "amqp10",
    ["python amqp10/hello_world/send.py"],
    [f" [!] AMQP 1.0 chapters need RabbitMQ 4.0 or newer at {WHERE} {HINT}"],
    marks=BEFORE_4_0,
)
def on_3_10(sandbox, row, tmp_path):
    (send,) = row.commands
    proc = run(sandbox, send)
    assert proc.process.returncode == 1
    return printed(proc)


@shown(
    "amqp10",
    ["python amqp10/work_queues/worker.py", "python amqp10/work_queues/new_task.py First task."],
    [
        " [*] Waiting for messages. To exit press CTRL+C",
        " [x] Received First task.",
        " [x] Done",
        " [x] Sent First task.",
    ],
    marks=(SINCE_4_0,),
)
def run_it(sandbox, row, tmp_path):
    work, send = row.commands
    worker = start(sandbox, work, ready=WAITING_MESSAGES)
    sender = run(sandbox, send)
    worker.wait_for(r"^ \[x\] Done$")
    assert worker.interrupt() == 0
    return printed(worker, sender)


@shown(
    "amqp10",
    ["python amqp10/rpc/rpc_amqp10.py"],
    [f" [!] Direct Reply-To over AMQP 1.0 needs RabbitMQ 4.2 or newer at {WHERE} {HINT}"],
    marks=(
        pytest.mark.rabbitmq(
            since=(4, 0), before=(4, 2), otherwise="it has Direct Reply-To (the next row)"
        ),
    ),
)
def direct_reply_to_before_4_2(sandbox, row, tmp_path):
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    return printed(proc)


@shown(
    "amqp10",
    ["python amqp10/rpc/rpc_amqp10.py"],
    [
        " [x] Awaiting RPC requests",
        " [x] Requesting ping (message-id 1)",
        " [.] ping (message-id 1)",
        " [.] Got pong (correlation-id 1)",
    ],
    marks=(
        pytest.mark.rabbitmq(since=(4, 2), otherwise="no Direct Reply-To over AMQP 1.0 before 4.2"),
    ),
)
def direct_reply_to(sandbox, row, tmp_path):
    proc = start(sandbox, row.commands[0])
    proc.wait_for(r"^ \[\.\] Got pong \(correlation-id 1\)$")
    assert proc.interrupt() == 0
    return printed(proc)


@pytest.mark.parametrize("row", rows_of(__name__))
def test_what_the_notes_show_is_what_the_scripts_print(sandbox, tmp_path, row: Shown):
    check(sandbox, tmp_path, row)
