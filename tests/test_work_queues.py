"""Work queues: tasks on 'task_queue' shared by workers, each acked after its work (1 s a dot)."""

from __future__ import annotations

import pika
import pytest

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.waiting import wait_until

RECEIVED = r"^ \[x\] Received "
DONE = r"^ \[x\] Done$"
TIMEOUT = 20.0


def start_workers(sandbox, count: int = 2) -> list[ScriptProcess]:
    """Start ``count`` workers, each once the one before is consuming.

    One after the other: RabbitMQ 3.10 can fail a consumer on a quorum queue that another
    connection is declaring at the same moment (INTERNAL_ERROR), which is not what we test.
    """
    return [sandbox.start("work_queues/worker.py", ready=WAITING_MESSAGES) for _ in range(count)]


def send(sandbox, task: str) -> None:
    sender = sandbox.run("work_queues/new_task.py", task)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {task}"])


def tasks_taken(worker: ScriptProcess) -> list[str]:
    """The tasks a worker received, in order, as it printed them."""
    return [line.removeprefix(" [x] Received ") for line in worker.matching(RECEIVED)]


def wait_until_done(workers: list[ScriptProcess], count: int) -> None:
    wait_until(
        lambda: sum(len(worker.matching(DONE)) for worker in workers) >= count,
        TIMEOUT,
        f"{count} tasks done",
    )


def first_to_receive(workers: list[ScriptProcess]) -> ScriptProcess:
    return wait_until(
        lambda: next((worker for worker in workers if worker.matching(RECEIVED)), None),
        TIMEOUT,
        "a worker to receive the task",
    )


def wait_for_depth(sandbox, depth: int, queue: str = "task_queue") -> None:
    """Wait until ``queue`` holds ``depth`` ready messages (a count can lag a publish)."""

    def depth_reached() -> bool:
        try:
            return sandbox.message_count(queue) == depth
        except pika.exceptions.AMQPError:
            return False  # not there yet, e.g. while a restarted broker recovers its queues

    wait_until(depth_reached, TIMEOUT, f"{depth} ready in {queue!r}")


def test_tasks_are_spread_round_robin_over_two_workers(sandbox):
    workers = start_workers(sandbox)

    for task in ("Task 1.", "Task 2.", "Task 3.", "Task 4."):
        send(sandbox, task)
    wait_until_done(workers, 4)

    # Two each, alternating: one worker took the 1st and 3rd, the other the 2nd and 4th.
    assert sorted(tasks_taken(worker) for worker in workers) == [
        ["Task 1.", "Task 3."],
        ["Task 2.", "Task 4."],
    ]


def test_with_a_slow_task_in_flight_new_quick_tasks_all_go_to_the_idle_worker(sandbox):
    workers = start_workers(sandbox)
    slow = "Slow task" + "." * 60  # a minute of work: still in flight however slow the machine
    send(sandbox, slow)
    busy = first_to_receive(workers)
    (idle,) = (worker for worker in workers if worker is not busy)

    quick = ["Quick task 1", "Quick task 2", "Quick task 3"]  # no dots: no work, done at once
    for task in quick:
        send(sandbox, task)
    idle.wait_for(DONE, count=len(quick))
    assert busy.matching(DONE) == [], "the slow task ended before the quick ones were sent"

    # Prefetch 1: the busy worker holds one unacked task and is given no other until it acks.
    assert tasks_taken(busy) == [slow]
    assert tasks_taken(idle) == quick
    assert busy.interrupt() == 0  # its task goes back to the queue, unacknowledged


def test_a_worker_killed_in_the_middle_of_a_task_loses_nothing(sandbox):
    workers = start_workers(sandbox)
    send(sandbox, "Doomed task..")
    victim = first_to_receive(workers)
    (survivor,) = (worker for worker in workers if worker is not victim)

    assert victim.kill() == -9  # SIGKILL mid-task: no ack, no goodbye
    survivor.wait_for(DONE)

    # RabbitMQ requeued the unacked task and marked it redelivered; the other worker did it.
    assert victim.matching(DONE) == []
    assert tasks_taken(survivor) == ["Doomed task.. (redelivered)"]


@pytest.mark.parametrize(
    "durable, arguments",
    [
        pytest.param(True, {"x-queue-type": "classic"}, id="as a classic queue"),
        pytest.param(True, None, id="without x-queue-type"),
        pytest.param(False, {"x-queue-type": "quorum"}, id="not durable"),
        pytest.param(
            True, {"x-queue-type": "quorum", "x-max-length": 10}, id="with a length limit"
        ),
    ],
)
def test_declaring_task_queue_with_other_arguments_fails_and_leaves_it_untouched(
    sandbox, durable, arguments
):
    send(sandbox, "Waiting task")
    wait_for_depth(sandbox, 1)

    with sandbox.connection() as connection:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            channel.queue_declare("task_queue", durable=durable, arguments=arguments)

    assert closed.value.reply_code == 406
    assert closed.value.reply_text.startswith("PRECONDITION_FAILED")
    # Untouched: still a quorum queue, its task still waiting.
    assert sandbox.broker.management.get("queues", sandbox.vhost, "task_queue")["type"] == "quorum"
    assert sandbox.message_count("task_queue") == 1
