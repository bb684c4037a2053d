"""The resilient worker chapter: chapter 2's worker broken by a real fault, and the resilient
worker under the same fault, side by side. (The broker restart is in test_restart.py, which
shares one restart among the chapters.)"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest
from conftest import Sandbox, sandbox_for
from test_versions import one_second_consumer_timeout  # noqa: F401 (a fixture)
from test_work_queues import DONE, send, tasks_taken, wait_for_depth

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.sources import Broker

NAIVE = "work_queues/worker.py"
WORKER = "resilient_worker/resilient_worker.py"
PUBLISHER = "resilient_worker/resilient_new_task.py"
HEARTBEAT = "heartbeat=2"  # pika reads it from the URL: a heartbeat timeout of 2 s
# Eight seconds of work: four heartbeat timeouts. RabbitMQ closes a connection that stayed
# silent for two (about 4 s here; the broker logs "missed heartbeats from client").
LONG_TASK = "Long task........"
STOPPING = r"^ \[\*\] Stopping: finishing the task in hand"
CONNECTING_AGAIN = r"^ \[!\] .*; connecting again in \d+\.\d s$"
DONE_ALREADY = r"^ \[x\] Done already: acked without doing it again$"


@pytest.fixture
def other_sandbox(broker: Broker, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A second virtual host, where the resilient worker meets the fault that the tutorial's
    worker meets in the first one, at the same time."""
    yield from sandbox_for(broker, f"{request.node.name}-resilient")


def with_heartbeat(box: Sandbox) -> str:
    return f"{box.url}?{HEARTBEAT}"


def publish(box: Sandbox, task: str) -> None:
    """One task through the resilient publisher: it prints Sent once RabbitMQ confirmed it."""
    sender = box.run(PUBLISHER, task)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {task}"]), sender.output


def start_worker(box: Sandbox, script: str = WORKER, url: str | None = None) -> ScriptProcess:
    return box.start(script, ready=WAITING_MESSAGES, env={"RABBITMQ_URL": url or box.url})


def nothing_left(box: Sandbox) -> None:
    """The task was acked: the next worker is given the next task, and nothing before it (a
    task given back would be: a quorum queue delivers what was returned to it first)."""
    following = start_worker(box, NAIVE)
    send(box, "Next task")
    following.wait_for(DONE)
    assert tasks_taken(following) == ["Next task"]


# -- a task longer than the heartbeat timeout -----------------------------------------------


def test_a_task_of_four_heartbeats_costs_the_tutorials_worker_its_connection_not_the_resilient_one(
    sandbox, other_sandbox
):
    naive = start_worker(sandbox, NAIVE, with_heartbeat(sandbox))
    resilient = start_worker(other_sandbox, WORKER, with_heartbeat(other_sandbox))
    send(sandbox, LONG_TASK)
    send(other_sandbox, LONG_TASK)

    # The tutorial's worker sleeps in its callback: pika answers no heartbeat meanwhile, and
    # RabbitMQ closes the connection. The work gets done; the ack that follows it fails.
    assert naive.wait(timeout=30) == 1
    assert naive.stdout[-2:] == [f" [x] Received {LONG_TASK}", " [x] Done"]
    [line] = naive.stderr
    assert re.fullmatch(r" \[!\] StreamLostError: .*", line), line
    wait_for_depth(sandbox, 1)  # the task is back in the queue, to be done all over again

    # The resilient worker's I/O loop answers heartbeats while a thread does the work.
    resilient.wait_for(DONE)
    assert resilient.interrupt() == 0
    assert tasks_taken(resilient) == [LONG_TASK]
    assert resilient.matching(r"^ \[!\]") == []
    nothing_left(other_sandbox)  # acked once, on the connection it came by


# -- Ctrl+C or SIGTERM in the middle of a task ----------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "SIGTERM"])
def test_stopped_in_the_middle_of_a_task_the_resilient_worker_finishes_and_acks_it(sandbox, signum):
    worker = start_worker(sandbox)
    publish(sandbox, "Stopped task...")
    worker.wait_for(r"^ \[x\] Received Stopped task")
    assert worker.send(signum) == 0
    assert worker.stdout[-3:] == [
        " [*] Stopping: finishing the task in hand, if any (CTRL+C again to give it back)",
        " [x] Done",
        " [*] Interrupted",
    ]
    nothing_left(sandbox)


def test_ctrl_c_twice_gives_the_task_in_hand_back(sandbox):
    worker = start_worker(sandbox)
    publish(sandbox, "Given back task..........")
    worker.wait_for(r"^ \[x\] Received Given back task")
    worker.process.send_signal(signal.SIGINT)
    worker.wait_for(STOPPING)
    assert worker.interrupt() == 0
    assert worker.matching(DONE) == []
    assert worker.stdout[-1] == " [*] Interrupted"
    wait_for_depth(sandbox, 1)  # unacknowledged when the connection closed: back in the queue


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
    assert tasks_taken(worker) == [SLOW_TASK, f"{SLOW_TASK} (redelivered)"]
    assert len(worker.matching(DONE)) == 1
    return worker


@pytest.mark.rabbitmq(since=(4, 3), otherwise="the channel is closed instead (test_before_4_3_...)")
@pytest.mark.usefixtures("one_second_consumer_timeout")
def test_on_4_3_a_task_past_the_consumer_timeout_is_taken_again_and_acked_not_redone(sandbox):
    worker = outlast_the_consumer_timeout(sandbox)
    [why] = worker.matching(CONNECTING_AGAIN)
    assert why.startswith(
        " [!] RabbitMQ cancelled the consumer: a task outlasted the consumer timeout?;"
    )


@pytest.mark.rabbitmq(
    before=(4, 3), otherwise="the consumer is cancelled instead (test_on_4_3_...)"
)
@pytest.mark.usefixtures("one_second_consumer_timeout")
def test_before_4_3_a_task_past_the_consumer_timeout_is_taken_again_and_acked_not_redone(sandbox):
    worker = outlast_the_consumer_timeout(sandbox)
    [why] = worker.matching(CONNECTING_AGAIN)
    assert "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out" in why
