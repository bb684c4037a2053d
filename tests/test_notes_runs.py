"""What the notes of chapters 1 to 7 show besides the tour, run as they show it (the rows of
tests/shown.py); and, at the end, claims of the notes about the broker itself, checked with pika
directly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pika
import pytest
from shown import (
    HINT,
    WHERE,
    Shown,
    check,
    messages,
    printed,
    rows_of,
    run,
    shown,
    skip_unless_rabbitmqctl,
    start,
    where_nothing_listens,
    words,
)

from tutorial_tools.addresses import amqp_url
from tutorial_tools.chapters import AWAITING_RPC, WAITING_LOGS, WAITING_MESSAGES
from tutorial_tools.management import ManagementError
from tutorial_tools.processes import ROOT, run_script
from tutorial_tools.waiting import wait_until

# -- 1. Hello World ------------------------------------------------------------------------

SENT = " [x] Sent 'Hello World!'"
RECEIVED = " [x] Received Hello World!"
WAITING_FOR_MESSAGES = " [*] Waiting for messages. To exit press CTRL+C"
WAITING_FOR_LOGS = " [*] Waiting for logs. To exit press CTRL+C"


@shown(
    "hello_world",
    ["python hello_world/send.py", "python hello_world/receive.py"],
    [SENT, SENT, WAITING_FOR_MESSAGES, RECEIVED, RECEIVED],
)
def send_before_anyone_listens(sandbox, row, tmp_path):
    send, receive = row.commands
    senders = [run(sandbox, send), run(sandbox, send)]
    receiver = start(sandbox, receive, ready=WAITING_MESSAGES)
    receiver.wait_for(r"^ \[x\] Received ", count=2)
    assert receiver.interrupt() == 0
    return printed(*senders, receiver)


@shown(
    "hello_world",
    ["python hello_world/send.py"],
    [
        # errno 111 on Linux, as the notes show it; 61 on macOS
        re.compile(
            r" \[!\] AMQPConnectionError: \(AMQPConnectorSocketConnectError: "
            r"ConnectionRefusedError\((111|61), 'Connection refused'\),\) "
            r"at \S+ \(run 'make doctor' to diagnose\)"
        )
    ],
)
def no_broker(sandbox, row, tmp_path):
    (send,) = row.commands
    return printed(where_nothing_listens(send, amqp_url))


def quorum_refused_by_classic(queue: str) -> re.Pattern:
    """The line a script prints when its quorum declaration meets a classic queue of that name:
    RabbitMQ 4.0 and later name the classic type, 3.10 says the argument was missing
    (tests/test_versions.py checks which version says which)."""
    return re.compile(
        re.escape(
            ' [!] ChannelClosedByBroker: (406) "PRECONDITION_FAILED - inequivalent arg '
            f"'x-queue-type' for queue '{queue}' in vhost '/': received "
        )
        + "('quorum' but current is 'classic'"
        + "|the value 'quorum' of type 'longstr' but current is none)"
        + re.escape(f"\" at {WHERE} (run 'make doctor' to diagnose)")
    )


def declare_classic(sandbox, queue: str) -> None:
    """A durable classic queue, as tutorial code from before quorum queues declares it."""
    with sandbox.connection() as connection:
        connection.channel().queue_declare(queue, durable=True)


@shown(
    "hello_world",
    ["python hello_world/send.py"],
    [quorum_refused_by_classic("hello")],
)
def a_hello_queue_declared_differently(sandbox, row, tmp_path):
    declare_classic(sandbox, "hello")
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    return printed(proc)


@shown(
    "hello_world",
    ["python hello_world/send.py", "make doctor"],
    [f" [!] RabbitMQ is blocking publishers: a resource alarm at {WHERE} {HINT}"],
)
def sending_does_not_work(sandbox, row, tmp_path):
    """The official page's "Sending doesn't work!": too little free disk for the broker."""
    skip_unless_rabbitmqctl(sandbox)
    sandbox.rabbitmqctl("set_disk_free_limit", "100000GB")  # more than any disk has free
    try:
        # It gives up after 30 s, or after as many as the URL says: 3 here.
        sender = start(sandbox, row.commands[0], query="?blocked_connection_timeout=3")
        doctor = run_script("tutorial_tools/doctor.py", url=sandbox.url, timeout=60)
        assert sender.wait(timeout=60) == 1
    finally:
        sandbox.rabbitmqctl("set_disk_free_limit", "50MB")  # RabbitMQ's default
    assert SENT not in sender.lines
    assert doctor.matching(r"^FAIL  RabbitMQ is blocking publishers \(low on disk\)"), doctor.output
    return printed(sender)


@shown(
    "hello_world",
    ["sudo rabbitmqctl stop_app", "sudo rabbitmqctl reset", "sudo rabbitmqctl start_app"],
    [],
    marks=(pytest.mark.restart,),
)
def start_over_on_a_broker_installed_from_a_package(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    assert run(sandbox, "python hello_world/send.py").process.returncode == 0
    for command in row.commands:
        assert command.startswith("sudo rabbitmqctl "), command
        sandbox.rabbitmqctl(*words(command.removeprefix("sudo rabbitmqctl ")))
    # Empty again: the virtual host, with its queue 'hello' and the message in it, is gone.
    assert sandbox.vhost not in sandbox.rabbitmqctl("list_vhosts", "--quiet").split()
    sandbox.broker.add_vhost(sandbox.vhost)
    assert sandbox.queue_names() == set()
    return []


# -- 2. Work queues ------------------------------------------------------------------------


@shown(
    "work_queues",
    ["python work_queues/worker.py", "python work_queues/new_task.py 'Second task..'"],
    [
        " [x] Received Second task..",
        " [*] Interrupted",
        " [x] Received Second task.. (redelivered)",
        " [x] Done",
    ],
)
def stop_a_worker_mid_task(sandbox, row, tmp_path):
    worker, new_task = row.commands
    workers = [start(sandbox, worker, ready=WAITING_MESSAGES) for _ in range(2)]
    run(sandbox, new_task)
    victim = wait_until(
        lambda: next((w for w in workers if w.matching(r"Received Second")), None), 20, "a worker"
    )
    (survivor,) = (w for w in workers if w is not victim)
    assert victim.interrupt() == 0  # Ctrl+C within the task's two seconds: no ack
    survivor.wait_for(r"^ \[x\] Done$")
    assert victim.matching(r"^ \[x\] Done$") == []
    return printed(victim, survivor)


@shown(
    "work_queues",
    ["python work_queues/new_task.py 'First task.'"],
    [quorum_refused_by_classic("task_queue")],
)
def a_task_queue_from_older_code(sandbox, row, tmp_path):
    declare_classic(sandbox, "task_queue")
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    return printed(proc)


# -- 3. Publish/Subscribe ------------------------------------------------------------------


@shown(
    "publish_subscribe",
    [
        "python publish_subscribe/emit_log.py 'info: Hello World!'",
        "python publish_subscribe/receive_logs.py",
    ],
    [" [x] Sent info: Hello World!", WAITING_FOR_LOGS],
)
def send_first_listen_later(sandbox, row, tmp_path):
    emit, receive = row.commands
    sender = run(sandbox, emit)
    receiver = start(sandbox, receive, ready=WAITING_LOGS)
    # A message sent now arrives; had the first one been kept, it would have come before it.
    with sandbox.connection() as connection:
        connection.channel().basic_publish("logs", "", "a later message")
    receiver.wait_for(r"^ \[x\] a later message$")
    assert messages(receiver) == [" [x] a later message"]
    return printed(sender, receiver)


@shown(
    "publish_subscribe",
    ["python publish_subscribe/emit_log.py 'info: Hello World!'"],
    [
        " [!] ChannelClosedByBroker: (406) \"PRECONDITION_FAILED - inequivalent arg 'type' for "
        "exchange 'logs' in vhost '/': received 'fanout' but current is 'direct'\" at "
        f"{WHERE} {HINT}"
    ],
)
def an_exchange_declared_differently(sandbox, row, tmp_path):
    with sandbox.connection() as connection:
        connection.channel().exchange_declare("logs", exchange_type="direct")
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    return printed(proc)


# -- 4. Routing ----------------------------------------------------------------------------

COLOURS = [
    # routing key, message, the receivers it reaches (Q1: orange black; Q2: black green)
    ("orange", "bound by Q1 only", ("Q1",)),
    ("green", "bound by Q2 only", ("Q2",)),
    ("purple", "bound by nobody", ()),
    ("black", "bound by both", ("Q1", "Q2")),  # last: it reaches everyone
]


@shown(
    "routing",
    [
        "python routing/receive_logs_direct.py orange black",
        "python routing/receive_logs_direct.py black green",
        *(f"python routing/emit_log_direct.py {key} '{text}'" for key, text, _ in COLOURS),
    ],
    [
        *(f" [x] Sent {key}:{text}" for key, text, _ in COLOURS),
        *(f" [x] {key}:{text}" for key, text, reach in COLOURS for _ in reach),
    ],
)
def two_queues_bound_with_the_same_key(sandbox, row, tmp_path):
    return two_receivers_and_their_share(sandbox, row, COLOURS)


def two_receivers_and_their_share(sandbox, row, table) -> list[str]:
    """Start receivers Q1 and Q2, emit every row of ``table`` (key, text, the receivers it
    reaches) and check that each receiver printed exactly its share, in order. The table's last
    row reaches both receivers, so once both have printed it nothing else is on its way."""
    q1, q2, *emits = row.commands
    receivers = {"Q1": start(sandbox, q1), "Q2": start(sandbox, q2)}
    for receiver in receivers.values():
        receiver.wait_for(WAITING_LOGS)
    senders = [run(sandbox, emit) for emit in emits]
    last_key, last_text, _ = table[-1]
    for receiver in receivers.values():
        receiver.wait_for("^" + re.escape(f" [x] {last_key}:{last_text}") + "$")
    assert {name: messages(proc) for name, proc in receivers.items()} == {
        name: [f" [x] {key}:{text}" for key, text, reach in table if name in reach]
        for name in receivers
    }
    return printed(*senders, *receivers.values())


def shell(command: str, cwd: Path, url: str, **kw) -> subprocess.Popen:
    """A command line run by bash, as typed in a terminal, with the project's python first."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["RABBITMQ_URL"] = url
    return subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, text=True, **kw)


@shown(
    "routing",
    [
        "python -u routing/receive_logs_direct.py error > errors.log",
        "python routing/emit_log_direct.py error 'Run. Run. Or it will explode.'",
        "cat errors.log",
    ],
    [WAITING_FOR_LOGS, " [x] error:Run. Run. Or it will explode."],
)
def save_the_errors_to_a_file(sandbox, row, here):
    receive, emit, show = row.commands
    (here / "routing").symlink_to(ROOT / "routing")  # as from the repository root
    # The same receiver without -u: its lines wait in Python's buffer, not in the file.
    buffered = receive.replace("python -u", "python").replace("errors.log", "buffered.log")
    receivers = [
        shell(command, here, sandbox.url, start_new_session=True) for command in (receive, buffered)
    ]
    try:
        wait_until(lambda: "Waiting" in text(here / "errors.log"), 20, "the -u receiver")
        # The buffered receiver says nothing until it exits: wait for its binding instead.
        wait_until(lambda: queues_bound(sandbox, "error") == 2, 20, "the buffered receiver")
        sender = run(sandbox, emit)
        wait_until(lambda: "explode" in text(here / "errors.log"), 20, "the error line")
        assert text(here / "buffered.log") == ""
        cat = shell(show, here, sandbox.url, stdout=subprocess.PIPE)
        shown_lines = cat.communicate(timeout=10)[0].splitlines()
    finally:
        for receiver in receivers:
            os.killpg(receiver.pid, signal.SIGINT)  # Ctrl+C reaches the terminal's processes
            receiver.wait(timeout=20)
    # Once the receiver has exited, its buffer has reached the file too.
    assert "explode" in (here / "buffered.log").read_text()
    return [*sender.lines, *shown_lines]


def text(path: Path) -> str:
    """What a command has written to ``path`` so far ("" before the shell has created it)."""
    return path.read_text() if path.exists() else ""


def queues_bound(sandbox, key: str) -> int:
    """How many queues are bound to 'direct_logs' with ``key``."""
    try:
        bindings = sandbox.broker.management.get(
            "exchanges", sandbox.vhost, "direct_logs", "bindings", "source"
        )
    except ManagementError:
        return 0  # not declared yet
    return sum(1 for binding in bindings if binding["routing_key"] == key)


@shown(
    "routing",
    ["python routing/receive_logs_direct.py"],
    ["Usage: receive_logs_direct.py [info] [warning] [error]"],
)
def forget_the_severities(sandbox, row, tmp_path):
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    return printed(proc)


# -- 5. Topics -----------------------------------------------------------------------------

WITHOUT_HASH = [
    # routing key, message, which of Q1 (*.orange.*) and Q2 (*.*.rabbit, lazy.#) it reaches
    ("lazy.orange.elephant", "matches a key of each", ("Q1", "Q2")),
    ("quick.brown.fox", "matches no key", ()),
    ("lazy", "lazy.# matches zero words too", ("Q2",)),
    ("quick.orange.rabbit", "matches both", ("Q1", "Q2")),  # last: it reaches everyone
]


@shown(
    "topics",
    [
        "python topics/receive_logs_topic.py '*.orange.*'",
        "python topics/receive_logs_topic.py '*.*.rabbit' 'lazy.#'",
        *(f"python topics/emit_log_topic.py {key} '{text}'" for key, text, _ in WITHOUT_HASH),
    ],
    [
        *(f" [x] Sent {key}:{text}" for key, text, _ in WITHOUT_HASH),
        *(f" [x] {key}:{text}" for key, text, reach in WITHOUT_HASH for _ in reach),
    ],
)
def without_the_receiver_of_everything(sandbox, row, tmp_path):
    return two_receivers_and_their_share(sandbox, row, WITHOUT_HASH)


@shown(
    "topics",
    ["python topics/receive_logs_topic.py #"],
    ["Usage: receive_logs_topic.py [binding_key]..."],
)
def forget_the_quotes_in_bash(sandbox, row, tmp_path):
    proc = run(sandbox, row.commands[0])  # bash reads the unquoted # as a comment
    assert proc.process.returncode == 1
    return printed(proc)


# -- 6. RPC --------------------------------------------------------------------------------

TOO_LARGE = "n=40 is too large: this server computes fib(n) for n <= 35"


@shown(
    "rpc",
    ["python rpc/rpc_server.py", "python rpc/rpc_client.py 40"],
    [" [x] Requesting fib(40)", f" [!] Server error: {TOO_LARGE}", f" [!] {TOO_LARGE}"],
)
def ask_too_much(sandbox, row, tmp_path):
    server_command, client_command = row.commands
    server = start(sandbox, server_command, ready=AWAITING_RPC)
    client = run(sandbox, client_command)
    assert client.process.returncode == 1
    server.wait_for(re.escape(TOO_LARGE))
    return printed(client, server)


@shown(
    "rpc",
    ["python rpc/rpc_client.py abc"],
    [
        "usage: rpc_client.py [-h] [--timeout SECONDS] [N]",
        "rpc_client.py: error: argument N: invalid int value: 'abc'",
    ],
)
def not_a_number(sandbox, row, tmp_path):
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 2  # argparse's usage error, before connecting
    return printed(proc)


@shown(
    "rpc",
    ["python rpc/rpc_server.py", "python rpc/rpc_client.py"],
    [
        " [x] Requesting fib(30)",
        " [!] No answer within 10 s: is rpc_server.py running?",
        " [x] Awaiting RPC requests",
        " [.] fib(30)",
    ],
)
def no_server(sandbox, row, tmp_path):
    server_command, client_command = row.commands
    # A server ran once, so 'rpc_queue' exists; then it stopped.
    assert start(sandbox, server_command, ready=AWAITING_RPC).interrupt() == 0
    client = run(sandbox, client_command)
    assert client.process.returncode == 1
    # The request waited in 'rpc_queue': the next server takes it, and its reply goes nowhere.
    server = start(sandbox, server_command, ready=AWAITING_RPC)
    server.wait_for(r"^ \[\.\] fib\(30\)$")
    return printed(client, server)


# -- Every row, run --------------------------------------------------------------------


@pytest.mark.parametrize("row", rows_of(__name__))
def test_what_the_notes_show_is_what_the_scripts_print(sandbox, tmp_path, row: Shown):
    check(sandbox, tmp_path, row)


# -- Claims about the broker itself --------------------------------------------------------


def test_publishing_to_an_exchange_that_does_not_exist_closes_the_channel(sandbox):
    # Why emit_log.py declares 'logs' too (chapter 3).
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.basic_publish("logs", "", "nobody declared logs")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            channel.queue_declare("", exclusive=True)  # the next call sees the channel closed
    assert closed.value.reply_code == 404
    assert closed.value.reply_text == f"NOT_FOUND - no exchange 'logs' in vhost '{sandbox.vhost}'"


def test_an_ack_on_another_channel_than_the_delivery_closes_that_channel(sandbox):
    # Chapter 2: a delivery tag means something only on the channel that received it.
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True, arguments={"x-queue-type": "quorum"})
        channel.basic_publish("", "task_queue", "a task")
        method = wait_until(lambda: channel.basic_get("task_queue")[0], 10, "the task")
        other = connection.channel()
        other.basic_ack(method.delivery_tag)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            other.queue_declare("task_queue", passive=True)
        channel.basic_ack(method.delivery_tag)  # on its own channel it is fine
    assert closed.value.reply_code == 406
    assert closed.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"


def test_a_forgotten_ack_with_prefetch_1_stalls_the_worker_after_one_task(sandbox):
    # Chapter 2: the worker gets one task, never acks it, and is given nothing more.
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True, arguments={"x-queue-type": "quorum"})
        for n in range(3):
            channel.basic_publish("", "task_queue", f"task {n}")
        channel.basic_qos(prefetch_count=1)
        taken = []
        channel.basic_consume("task_queue", lambda ch, method, props, body: taken.append(body))
        connection.process_data_events(time_limit=3)
        assert taken == [b"task 0"]
        # The other two wait in the queue, ready, for a worker with room for them.
        wait_until(lambda: sandbox.message_count("task_queue") == 2, 10, "2 tasks ready")
