"""Every script fails well, part 2: stopping, being stopped, and being held up by RabbitMQ.

Ctrl+C and SIGTERM end a waiting script quietly; a worker stopped or killed mid-task leaves
the task to another worker; a receiver whose broker goes away, or whose consumer the broker
cancels, says so in one line; a publisher blocked by a resource alarm gives up and says why.
"""

from __future__ import annotations

import itertools
import queue
import re
import signal
import time

import pika
import pytest

from tutorial_tools.chapters import RECEIVERS, RECEIVERS_THAT_GIVE_UP, RECONNECTING
from tutorial_tools.processes import ScriptProcess
from tutorial_tools.waiting import TimedOut, wait_until

QUORUM = {"x-queue-type": "quorum"}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "SIGTERM"])
@pytest.mark.parametrize("script", RECEIVERS)
def test_a_waiting_receiver_stops_with_one_line_and_exit_0(sandbox, script, signum):
    proc = sandbox.start(script, *RECEIVERS[script].args, ready=RECEIVERS[script].ready)
    assert proc.send(signum) == 0
    assert proc.stdout[1:] == [" [*] Interrupted"]
    assert proc.stderr == []


def declare_task_queue(sandbox) -> None:
    with sandbox.connection() as connection:
        connection.channel().queue_declare("task_queue", durable=True, arguments=QUORUM)


def test_a_worker_stopped_mid_task_leaves_the_task_to_the_next_worker(sandbox):
    first = sandbox.start("work_queues/worker.py", ready="Waiting for messages")
    sandbox.run("work_queues/new_task.py", "Slow", "task...")
    first.wait_for(r"Received Slow task\.\.\.$")
    assert first.interrupt() == 0
    assert first.stdout[-1] == " [*] Interrupted"
    assert " [x] Done" not in first.stdout
    assert first.stderr == []
    # Never acknowledged, so the broker put the task back in the queue...
    wait_until(lambda: sandbox.message_count("task_queue") == 1, 10, "the task back in the queue")
    # ...and the next worker gets it, marked as delivered once before.
    second = sandbox.start("work_queues/worker.py")
    second.wait_for(r"^ \[x\] Received Slow task\.\.\. \(redelivered\)$")


TASKS = [f"Task {i:02}." for i in range(1, 13)]  # one second of work each
KILLS = 3


def task_in(line: str) -> str | None:
    """'Task 07.' from ' [x] Received Task 07. (redelivered)'; None for any other line."""
    found = re.fullmatch(r" \[x\] Received (.*?)( \(redelivered\))?", line)
    return found[1] if found else None


def tasks_done(workers: list[ScriptProcess]) -> set[str]:
    """The tasks finished: a ' [x] Done' right after their ' [x] Received', in one worker."""
    return {
        task_in(received)
        for worker in workers
        for received, after in itertools.pairwise(list(worker.stdout))
        if task_in(received) and after == " [x] Done"
    }


def busy(worker: ScriptProcess) -> bool:
    return task_in(worker.stdout[-1]) is not None


def what_they_did(sandbox, workers: list[ScriptProcess], killed: list[ScriptProcess]) -> str:
    """For a failure: each worker's lines and state, and what the queue holds."""
    said = []
    for n, worker in enumerate(workers, 1):
        code = worker.process.poll()
        state = "killed" if worker in killed else "running" if code is None else f"exit {code}"
        said.append(f"worker {n} ({state}):\n" + "\n".join(f"    {x}" for x in worker.lines))
    found = sandbox.declared("task_queue")
    said.append(f"task_queue: {found.message_count} ready, {found.consumer_count} consumers")
    return "\n".join(said)


def test_many_tasks_survive_workers_killed_one_after_another(sandbox):
    declare_task_queue(sandbox)
    with sandbox.connection() as connection:
        channel = connection.channel()
        # With confirms, each publish returns once the quorum queue has the task. Without,
        # closing the connection right after may drop the last ones on a busy machine: a
        # fresh clone's `make test` once found 7 of the 12 missing, the queue empty.
        channel.confirm_delivery()
        for task in TASKS:
            channel.basic_publish(
                "",
                "task_queue",
                task,
                pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )

    printed: queue.Queue[tuple[ScriptProcess, str]] = queue.Queue()

    def start_worker() -> ScriptProcess:
        return sandbox.start(
            "work_queues/worker.py",
            on_line=lambda worker, line: printed.put((worker, line)),
            ready="Waiting for messages",
        )

    workers = [start_worker() for _ in range(3)]
    killed: list[ScriptProcess] = []
    deadline = time.monotonic() + 60  # a deadline for a loaded machine; about 6 s when quiet
    received = 0
    # Kill the worker that has just received the 1st, the 4th and the 7th task handed out (new
    # or given back), starting a new worker each time; then let them all finish.
    while tasks_done(workers) != set(TASKS):
        try:
            worker, line = printed.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(
                f"after 60 s, never done: {sorted(set(TASKS) - tasks_done(workers))}\n"
                + what_they_did(sandbox, workers, killed)
            )
        if task_in(line) is None:
            continue
        received += 1
        due = len(killed) < KILLS and received > 3 * len(killed)
        if due and worker.lines[-1] == line:  # still busy with it: not acknowledged
            worker.kill()
            killed.append(worker)
            workers.append(start_worker())

    assert len(killed) == KILLS
    redelivered = {line for w in workers for line in w.stdout if line.endswith("(redelivered)")}
    for worker in killed:
        if busy(worker):  # killed before it was done: another worker got the task again
            assert f" [x] Received {task_in(worker.stdout[-1])} (redelivered)" in redelivered

    # Every task gets acknowledged: the queue ends with none ready and none unacknowledged.
    # A worker prints ' [x] Done' before its ack: one stopped or killed right after that leaves
    # its task to be done again; so wait for the broker's count (the management API's, which
    # lags by up to its statistics interval), not for the workers' lines, before stopping them.
    def all_acked() -> bool:
        found = sandbox.broker.management.get("queues", sandbox.vhost, "task_queue")
        return found.get("messages") == 0

    try:
        wait_until(all_acked, 30, "every task acknowledged")
    except TimedOut as error:
        pytest.fail(f"{error}\n" + what_they_did(sandbox, workers, killed))
    for worker in [worker for worker in workers if worker not in killed]:
        assert worker.interrupt() == 0
    assert sandbox.message_count("task_queue") == 0


HINT = "(run 'make doctor' to diagnose)"


def consumed_queue(sandbox, script: str) -> str:
    """The queue a running receiver consumes: its named queue, or its server-named one."""
    named = {"hello_world/receive.py": "hello", "rpc/rpc_server.py": "rpc_queue"}
    for worker in ("work_queues/worker.py", "resilient_worker/resilient_worker.py"):
        named[worker] = "task_queue"
    for worker in ("dead_letters/poison_worker.py", "dead_letters/retry_worker.py"):
        named[worker] = "task_queue"
    if script in named:
        return named[script]
    (queue,) = sandbox.queue_names()  # the receiver's exclusive amq.gen-... queue
    return queue


@pytest.mark.parametrize("script", RECEIVERS_THAT_GIVE_UP)
def test_a_consumer_whose_queue_is_deleted_says_it_was_cancelled_and_exits_1(sandbox, script):
    proc = sandbox.start(script, *RECEIVERS[script].args, ready=RECEIVERS[script].ready)
    queue = consumed_queue(sandbox, script)
    if queue.startswith("amq.gen-"):  # exclusive: only rabbitmqctl may delete it
        if sandbox.broker.source == "url":
            pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
        sandbox.rabbitmqctl("delete_queue", "-p", sandbox.vhost, queue)
    else:
        sandbox.broker.management.delete("queues", sandbox.vhost, queue)
    assert proc.wait() == 1
    [line] = proc.stderr
    assert line.startswith(" [!] RabbitMQ cancelled the consumer: "), line
    assert "Traceback" not in proc.output


@pytest.mark.parametrize("script", RECONNECTING)
def test_a_resilient_consumer_whose_queue_is_deleted_says_so_and_consumes_from_a_new_one(
    sandbox, script
):
    proc = sandbox.start(script, *RECEIVERS[script].args, ready=RECEIVERS[script].ready)
    sandbox.broker.management.delete("queues", sandbox.vhost, consumed_queue(sandbox, script))
    proc.wait_for(RECEIVERS[script].ready, count=2)  # it declared the queue again
    [line] = proc.matching(r"^ \[!\] ")
    assert re.fullmatch(
        r" \[!\] RabbitMQ ended the consumer: queue deleted, or a task timed out\?; "
        r"connecting again in \d+\.\d s",
        line,
    )
    sandbox.run("resilient_worker/resilient_new_task.py", "After the deletion")
    proc.wait_for(r"^ \[x\] Done$")
    assert proc.interrupt() == 0


# Every script that publishes, with its arguments, and the line it prints once the broker has
# taken its messages (which it must not print while a resource alarm blocks it).
PUBLISHERS = {
    "hello_world/send.py": ((), " [x] Sent"),
    "work_queues/new_task.py": (("Blocked task.",), " [x] Sent"),
    "publish_subscribe/emit_log.py": ((), " [x] Sent"),
    "routing/emit_log_direct.py": ((), " [x] Sent"),
    "topics/emit_log_topic.py": ((), " [x] Sent"),
    "rpc/rpc_client.py": (("5", "--timeout", "60"), " [.] Got"),
    "publisher_confirms/publish_individually.py": (("10",), " [x] 10 of 10"),
    "publisher_confirms/publish_in_batches.py": (("10",), " [x] 10 of 10"),
    "publisher_confirms/publish_async.py": (("10",), " [x] 10 of 10"),
}


def test_publishers_blocked_by_a_resource_alarm_give_up_and_say_so(sandbox):
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    # The scripts wait 30 s for an alarm to clear, or as long as the URL says: 3 s here.
    url = sandbox.url + "?blocked_connection_timeout=3"
    sandbox.rabbitmqctl("set_vm_memory_high_watermark", "0.00001")  # a memory alarm, at once
    try:
        running = {
            script: sandbox.start(script, *args, env={"RABBITMQ_URL": url})
            for script, (args, _) in PUBLISHERS.items()
        }
        ended = {script: proc.wait(timeout=90) for script, proc in running.items()}
    finally:
        sandbox.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
    assert ended == dict.fromkeys(PUBLISHERS, 1)
    where = url.rpartition("@")[2]
    for script, proc in running.items():
        [line] = proc.stderr
        alarm = f" [!] RabbitMQ is blocking publishers: a resource alarm at {where} {HINT}"
        assert line == alarm, script
        assert not proc.matching(f"^{re.escape(PUBLISHERS[script][1])}"), script
