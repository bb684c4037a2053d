"""The resilient worker chapter: chapter 2's worker broken by a real fault, and the resilient
worker under the same fault. The experiments its notes show are rows (tests/shown.py), run here;
the full broker restart is in test_restart.py, which shares one restart among the chapters."""

from __future__ import annotations

import re
import signal

import pytest
from conftest import Sandbox, new_sandbox
from doctor_runs import checked
from shown import (
    HINT,
    WHERE,
    Shown,
    check,
    printed,
    rows_of,
    run,
    shown,
    skip_unless_rabbitmqctl,
    start,
)
from test_versions import one_second_consumer_timeout  # noqa: F401 (a fixture)
from test_work_queues import DONE, send, tasks_taken, wait_for_depth

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.processes import ScriptProcess

NAIVE = "work_queues/worker.py"
WORKER = "resilient_worker/resilient_worker.py"
PUBLISHER = "resilient_worker/resilient_new_task.py"
HEARTBEAT = "heartbeat=2"  # pika reads it from the URL: a heartbeat timeout of 2 s
# Eight seconds of work: four heartbeat timeouts. RabbitMQ closes a connection that stayed
# silent for two (about 4 s here; the broker logs "missed heartbeats from client").
LONG_TASK = "Long task........"
CONNECTING_AGAIN = r"^ \[!\] .*; connecting again in \d+\.\d s$"
DONE_ALREADY = r"^ \[x\] Done already: acked without doing it again$"


def publish(box: Sandbox, task: str) -> None:
    """One task through the resilient publisher: it prints Sent once RabbitMQ confirmed it."""
    sender = box.run(PUBLISHER, task)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {task}"]), sender.output


def start_worker(box: Sandbox, script: str = WORKER) -> ScriptProcess:
    return box.start(script, ready=WAITING_MESSAGES)


def nothing_left(box: Sandbox) -> None:
    """The task was acked: the next worker is given the next task, and nothing before it (a
    task given back would be: a quorum queue delivers what was returned to it first)."""
    following = start_worker(box, NAIVE)
    send(box, "Next task")
    following.wait_for(DONE)
    assert tasks_taken(following) == ["Next task"]


# -- what the notes show: each fault, with the tutorial's worker and with the resilient one --

NAIVE_RUN = f"python {NAIVE}"
RESILIENT_RUN = f"python {WORKER}"
LONG_RUN = f"python work_queues/new_task.py '{LONG_TASK}'"
STOPPED_TASK = "Stopped task.."
WHERE_RE = re.escape(WHERE)
FINISHING_LINE = " [*] Finishing the task in hand first (CTRL+C again to give it back)"


@shown(
    "resilient_worker",
    [NAIVE_RUN, LONG_RUN, RESILIENT_RUN],
    [
        f" [x] Received {LONG_TASK}",
        " [x] Done",
        re.compile(rf" \[!\] StreamLostError: .* at {WHERE_RE}(\?{HEARTBEAT})? {re.escape(HINT)}"),
        f" [x] Received {LONG_TASK}",
        " [x] Done",
    ],
)
def a_task_of_four_heartbeats(sandbox, row, tmp_path):
    naive_run, long_run, resilient_run = row.commands
    other = new_sandbox(sandbox.broker, "heartbeats-resilient")
    try:
        naive = start(sandbox, naive_run, WAITING_MESSAGES, query=f"?{HEARTBEAT}")
        resilient = start(other, resilient_run, WAITING_MESSAGES, query=f"?{HEARTBEAT}")
        run(sandbox, long_run)
        run(other, long_run)

        # The tutorial's worker sleeps in its callback: pika answers no heartbeat meanwhile,
        # and RabbitMQ closes the connection. The work gets done; the ack after it fails.
        assert naive.wait(timeout=30) == 1
        assert naive.stdout[-2:] == [f" [x] Received {LONG_TASK}", " [x] Done"]
        wait_for_depth(sandbox, 1)  # the task is back in the queue, to be done all over again
        # make doctor finds it in the broker's log where it can read it, else says where to look.
        [said] = [line for line in checked(sandbox).stdout if "missed heartbeats" in line]
        if said.startswith("ok") and sandbox.broker.source != "local":  # the log is elsewhere
            assert "cannot read" in said
        else:  # a local broker's log is a file here, even when the tests reach it by its URL
            assert re.search(r"^note .*closed \d+ connection\(s\) for missed .* 2 s\)", said)

        # The resilient worker's I/O loop answers heartbeats while a thread does the work.
        resilient.wait_for(DONE)
        assert resilient.interrupt() == 0
        assert tasks_taken(resilient) == [LONG_TASK]
        assert resilient.matching(r"^ \[!\]") == []
        nothing_left(other)  # acked once, on the connection it came by
        return printed(naive, resilient)
    finally:
        other.remove()


@shown(
    "resilient_worker",
    [RESILIENT_RUN, f"python {PUBLISHER} '{STOPPED_TASK}'"],
    [f" [x] Received {STOPPED_TASK}", FINISHING_LINE, " [x] Done", " [*] Interrupted"],
)
def ctrl_c_in_the_middle_of_a_task(sandbox, row, tmp_path):
    worker = start(sandbox, row.commands[0], WAITING_MESSAGES)
    run(sandbox, row.commands[1])
    worker.wait_for(rf"^ \[x\] Received {STOPPED_TASK}")
    assert worker.interrupt() == 0
    assert worker.stdout[-3:] == [FINISHING_LINE, " [x] Done", " [*] Interrupted"]
    nothing_left(sandbox)
    return printed(worker)


@shown(
    "resilient_worker",
    [RESILIENT_RUN, f"python {PUBLISHER} 'Given back task..........'"],
    [FINISHING_LINE, " [*] Interrupted"],
)
def ctrl_c_twice(sandbox, row, tmp_path):
    worker = start(sandbox, row.commands[0], WAITING_MESSAGES)
    run(sandbox, row.commands[1])
    worker.wait_for(r"^ \[x\] Received Given back task")
    worker.process.send_signal(signal.SIGINT)
    worker.wait_for(f"^{re.escape(FINISHING_LINE)}$")
    assert worker.interrupt() == 0
    assert worker.matching(DONE) == []
    assert worker.stdout[-1] == " [*] Interrupted"
    wait_for_depth(sandbox, 1)  # unacknowledged when the connection closed: back in the queue
    return printed(worker)


RESTART_TASK = "Restart task.........."  # ten seconds: in hand while RabbitMQ stops, loaded
FORCED = (
    ' [!] ConnectionClosedByBroker: (320) "CONNECTION_FORCED - broker forced connection '
    "closure with reason 'shutdown'\"; connecting again in "
)


@shown(
    "resilient_worker",
    [RESILIENT_RUN, f"python {PUBLISHER}", "rabbitmqctl stop_app", "rabbitmqctl start_app"],
    [
        " [*] Type a task per line, Enter to send it. To exit press CTRL+D",
        f" [x] Sent {RESTART_TASK}",
        f" [x] Received {RESTART_TASK}",
        " [x] Done",
        " [!] The connection is gone: no ack; RabbitMQ gives the task again",
        re.compile(re.escape(FORCED) + r"\d+\.\d s"),
        re.compile(r" \[!\] AMQPConnectionError: .*; connecting again in \d+\.\d s"),
        re.compile(r" \[!\] .*; sending 'Typed while it is down' again in \d+\.\d s"),
        f" [x] Received {RESTART_TASK}",  # again
        " [x] Done already: acked without doing it again",
        " [x] Sent Typed while it is down",
        " [x] Received Typed while it is down",
    ],
)
def rabbitmq_stops_and_starts_under_the_resilient_pair(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    worker = start(sandbox, row.commands[0], WAITING_MESSAGES)
    publisher = start_publisher(sandbox)
    publisher.type_line(RESTART_TASK)
    worker.wait_for(rf"^ \[x\] Received {re.escape(RESTART_TASK)}$")
    sandbox.rabbitmqctl("stop_app")
    try:
        worker.wait_for(CONNECTING_AGAIN, count=2)  # lost, and refused while RabbitMQ is down
        publisher.type_line("Typed while it is down")
        publisher.wait_for(r"; sending 'Typed while it is down' again in ")
    finally:
        sandbox.rabbitmqctl("start_app")
    worker.wait_for(r"^ \[x\] Received Typed while it is down$", timeout=60)
    worker.wait_for(DONE, count=2)
    publisher.process.stdin.close()
    assert publisher.wait() == 0
    assert worker.interrupt() == 0
    assert tasks_taken(worker).count(RESTART_TASK) == 2
    assert len(worker.matching(DONE_ALREADY)) == 1  # received twice, done once
    nothing_left(sandbox)
    return printed(worker, publisher)


def start_publisher(box: Sandbox) -> ScriptProcess:
    """The resilient publisher reading tasks from its terminal, as typed."""
    return box.start(PUBLISHER, keyboard=True, ready=r"^ \[\*\] Type a task")


@pytest.mark.parametrize("row", rows_of(__name__))
def test_what_the_notes_show_is_what_the_scripts_print(sandbox, tmp_path, row: Shown):
    check(sandbox, tmp_path, row)


def test_sigterm_in_the_middle_of_a_task_finishes_and_acks_it_like_ctrl_c(sandbox):
    worker = start_worker(sandbox)
    publish(sandbox, STOPPED_TASK)
    worker.wait_for(rf"^ \[x\] Received {STOPPED_TASK}")
    assert worker.terminate() == 0
    assert worker.stdout[-3:] == [FINISHING_LINE, " [x] Done", " [*] Interrupted"]
    nothing_left(sandbox)


def test_a_typo_in_the_url_fails_at_once_in_one_line_rather_than_retrying(sandbox, port):
    worker = sandbox.start(WORKER, env={"RABBITMQ_URL": f"amqp://127.0.0.1:{port['refused']}/%2F"})
    assert worker.wait(timeout=30) == 1
    assert worker.stdout == []
    [line] = worker.stderr
    assert "ConnectionRefusedError" in line and line.endswith("(run 'make doctor' to diagnose)")


# -- a task that outlasts the consumer timeout ----------------------------------------------

SLOW_TASK = "Slow task......"  # six seconds of work against a one-second consumer timeout


def outlast_the_consumer_timeout(sandbox) -> ScriptProcess:
    worker = start_worker(sandbox)
    publish(sandbox, SLOW_TASK)
    worker.wait_for(DONE_ALREADY, timeout=60)
    assert worker.interrupt() == 0
    nothing_left(sandbox)
    # Timed out, finished anyway, taken again, and acked then without doing it twice.
    assert tasks_taken(worker) == [SLOW_TASK, SLOW_TASK]
    assert len(worker.matching(DONE)) == 1
    return worker


@pytest.mark.usefixtures("one_second_consumer_timeout")
def test_a_task_past_the_consumer_timeout_is_taken_again_and_acked_not_redone(sandbox):
    # Before 4.3 RabbitMQ closes the channel; on 4.3 it cancels the consumer (test_versions.py
    # shows both with chapter 2's worker). Either ends the consumer, which is what this says.
    worker = outlast_the_consumer_timeout(sandbox)
    [why] = worker.matching(CONNECTING_AGAIN)
    assert why.startswith(" [!] RabbitMQ ended the consumer: queue deleted, or a task timed out?;")
