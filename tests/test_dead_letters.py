"""The dead letters chapter: where a task goes that no worker can do, on each version.

The experiments its notes show are rows (tests/shown.py), run here with the real scripts; the
claims about the broker alone (what a nack counts, what a dead letter's headers say, what a
policy 4.3 alone knows) are checked with pika and the management API.
"""

from __future__ import annotations

import re

import pytest
from shown import (
    Shown,
    check,
    printed,
    rows_of,
    run,
    shown,
    skip_unless_rabbitmqctl,
    start,
    words,
)
from test_versions import rabbit_env
from test_work_queues import DONE, send, tasks_taken, wait_for_depth

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.chapters_pika import DEAD_LETTERS as DEAD_LETTERS_CHAPTER
from tutorial_tools.chapters_pika import POISON
from tutorial_tools.management import ManagementError

WORKER = "python dead_letters/poison_worker.py"
REQUEUE = f"{WORKER} --requeue"
RETRY = "python dead_letters/retry_worker.py"
SEND_POISON = f"python work_queues/new_task.py '{POISON}'"
PARKED = "python dead_letters/parking_lot.py"
FAILED = " [!] Failed: ValueError('cannot do a poison task'); "
RECEIVED_POISON = rf"^ \[x\] Received {POISON}"
DEFAULT_LIMIT = 20  # RabbitMQ 4.0 and later: a quorum queue's delivery limit, unless set


def parked(reason: str) -> str:
    return f" [x] Parked {POISON} (x-first-death-reason: {reason}, from task_queue)"


def policy(definition: str, queue: str = "task_queue", name: str = "dead-letters") -> str:
    return f"rabbitmqctl set_policy {name} '^{queue}$' '{definition}' --apply-to queues"


TO_THE_PARKING_LOT = '"dead-letter-exchange":"","dead-letter-routing-key":"parking_lot"'
DEAD_LETTERS = policy(f"{{{TO_THE_PARKING_LOT}}}")
LIMITED = policy(f'{{{TO_THE_PARKING_LOT},"delivery-limit":5}}')
DELAYED = policy(
    f'{{{TO_THE_PARKING_LOT},"delivery-limit":2,'
    '"delayed-retry-type":"failed","delayed-retry-min":1000,"delayed-retry-max":4000}'
)
AT_LEAST_ONCE = policy(
    f'{{{TO_THE_PARKING_LOT},"dead-letter-strategy":"at-least-once","overflow":"reject-publish"}}'
)
FULL_AT_ONE = policy('{"max-length":1,"overflow":"reject-publish"}', "parking_lot", "parking-lot")


def rabbitmqctl(sandbox, command: str) -> str:
    """A rabbitmqctl command as the notes show it, run in the test's virtual host."""
    rabbitmqctl, *args = words(command)
    assert rabbitmqctl == "rabbitmqctl", command
    return sandbox.rabbitmqctl(*args, "-p", sandbox.vhost)


def version(sandbox) -> tuple[int, int]:
    major, minor = sandbox.broker.management.get("overview")["rabbitmq_version"].split(".")[:2]
    return int(major), int(minor)


def get_all(sandbox, queue: str) -> list[tuple[bytes, dict]]:
    """Take every message ready in ``queue`` (acked): their bodies and headers."""
    taken = []
    with sandbox.connection() as connection:
        channel = connection.channel()
        while (got := channel.basic_get(queue, auto_ack=True))[0]:
            taken.append((got[2], got[1].headers or {}))
    return taken


# -- 1. the poison task, given back ----------------------------------------------------------


@shown(
    "dead_letters",
    [REQUEUE, SEND_POISON, "python work_queues/new_task.py 'Next task.'"],
    [f" [x] Received {POISON}", FAILED + "given back"],
)
def a_poison_task_given_back(sandbox, row, tmp_path):
    worker = start(sandbox, row.commands[0], WAITING_MESSAGES)
    run(sandbox, row.commands[1])
    run(sandbox, row.commands[2])
    worker.wait_for(DONE)  # the task behind it is done: a poison task does not block others
    if version(sandbox) >= (4, 0):
        # Delivered, and given back 20 times: the 21st failure drops it, without a word.
        wait_for_depth(sandbox, 0)
        assert worker.interrupt() == 0
        assert tasks_taken(worker).count(POISON) == DEFAULT_LIMIT + 1
    else:
        # No limit: it comes back at once, for ever (past three times 4.0's limit here).
        worker.wait_for(RECEIVED_POISON, count=3 * DEFAULT_LIMIT)
        assert worker.interrupt() == 0
        wait_for_depth(sandbox, 1)  # and is still there
    assert tasks_taken(worker).count("Next task.") == 1
    return printed(worker)


# -- 2. dead-lettered by a policy, to the parking lot ----------------------------------------


@shown(
    "dead_letters",
    [DEAD_LETTERS, WORKER, SEND_POISON, PARKED],
    [
        f" [x] Received {POISON}",
        FAILED + "rejected",
        parked("rejected"),
        " [*] 1 task(s) in the parking lot",
    ],
)
def rejected_into_the_parking_lot(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    rabbitmqctl(sandbox, row.commands[0])
    worker = start(sandbox, row.commands[1], WAITING_MESSAGES)
    run(sandbox, row.commands[2])
    worker.wait_for(re.escape(FAILED + "rejected"))
    wait_for_depth(sandbox, 1, "parking_lot")  # dead-lettered after the reject, not with it
    assert worker.interrupt() == 0
    run(sandbox, row.commands[3])
    lister = run(sandbox, row.commands[3])  # the first look left the task where it was
    [(body, headers)] = get_all(sandbox, "parking_lot")
    assert body.decode() == POISON
    [death] = headers["x-death"]  # one entry per queue and reason, with a count
    assert (death["queue"], death["reason"], death["count"]) == ("task_queue", "rejected", 1)
    return printed(worker, lister)


@shown(
    "dead_letters",
    [LIMITED, REQUEUE, SEND_POISON, PARKED],
    [FAILED + "given back", parked("delivery_limit"), " [*] 1 task(s) in the parking lot"],
)
def given_back_until_the_delivery_limit(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    rabbitmqctl(sandbox, row.commands[0])
    worker = start(sandbox, row.commands[1], WAITING_MESSAGES)
    run(sandbox, row.commands[2])
    wait_for_depth(sandbox, 1, "parking_lot")
    assert worker.interrupt() == 0
    assert tasks_taken(worker) == [POISON] * 6  # delivered once, given back 5 times
    return printed(worker, run(sandbox, row.commands[3]))


MOVE = f"{PARKED} --move"


@shown(
    "dead_letters",
    [MOVE, "python work_queues/worker.py"],
    [f" [x] Moved {POISON} back to task_queue", " [*] 1 task(s) moved back", " [x] Done"],
)
def moved_back_and_done(sandbox, row, tmp_path):
    park_a_poison_task(sandbox)
    mover = run(sandbox, row.commands[0])
    worker = start(sandbox, row.commands[1], WAITING_MESSAGES)  # chapter 2's does any task
    worker.wait_for(DONE)
    assert tasks_taken(worker) == [POISON]
    assert sandbox.message_count("parking_lot") == 0
    return printed(mover, worker)


def park_a_poison_task(sandbox) -> None:
    """A poison task rejected into the parking lot, by a policy set through the management API
    (which a RABBITMQ_URL broker has too)."""
    sandbox.set_policy(
        "dead-letters",
        "task_queue",
        {"dead-letter-exchange": "", "dead-letter-routing-key": "parking_lot"},
    )
    worker = sandbox.start("dead_letters/poison_worker.py", ready=WAITING_MESSAGES)
    send(sandbox, POISON)
    worker.wait_for(re.escape(FAILED + "rejected"))
    wait_for_depth(sandbox, 1, "parking_lot")
    assert worker.interrupt() == 0


def test_a_task_moved_back_starts_without_its_history(sandbox):
    park_a_poison_task(sandbox)
    assert run(sandbox, MOVE).stdout[-1] == " [*] 1 task(s) moved back"
    [(body, headers)] = get_all(sandbox, "task_queue")
    assert body.decode() == POISON
    assert [key for key in headers if key.startswith(("x-death", "x-first", "x-last"))] == []


# -- at-least-once dead-lettering: a full parking lot ---------------------------------------


UNLIMITED = "rabbitmqctl clear_policy parking-lot"


@shown(
    "dead_letters",
    [AT_LEAST_ONCE, FULL_AT_ONE, WORKER, *[SEND_POISON] * 3, PARKED, UNLIMITED, PARKED],
    [
        FAILED + "rejected",
        " [*] 1 task(s) in the parking lot",
        *[parked("rejected")] * 3,
        " [*] 3 task(s) in the parking lot",
    ],
)
def at_least_once_into_a_full_parking_lot(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    # RabbitMQ offers a kept-back dead letter to its target again every 180 s: every second
    # here. A queue's dead-letter worker reads it as it starts, when the policy applies.
    with rabbit_env(sandbox.broker, dead_letter_worker_publisher_confirm_timeout=1000):
        rabbitmqctl(sandbox, row.commands[0])
        rabbitmqctl(sandbox, row.commands[1])
        worker = reject_three_poison_tasks(sandbox, row.commands[2], row.commands[3])
        # The two the parking lot refused wait in task_queue, for it alone: not as tasks.
        assert sandbox.message_count("task_queue") == 0
        full = run(sandbox, row.commands[6])
        rabbitmqctl(sandbox, row.commands[7])
        wait_for_depth(sandbox, 3, "parking_lot")  # the two kept back came when there was room
    return printed(worker, full, run(sandbox, row.commands[8]))


def reject_three_poison_tasks(sandbox, command: str = WORKER, sending: str = SEND_POISON):
    worker = start(sandbox, command, WAITING_MESSAGES)
    for _ in range(3):
        run(sandbox, sending)
    worker.wait_for(re.escape(FAILED + "rejected"), count=3)
    wait_for_depth(sandbox, 1, "parking_lot")  # room for one
    return worker


def test_at_most_once_drops_the_dead_letters_a_full_parking_lot_refuses(sandbox):
    # The row above without "dead-letter-strategy": the default, at-most-once. The policies
    # through the management API, which a RABBITMQ_URL broker has too.
    to_the_parking_lot = {"dead-letter-exchange": "", "dead-letter-routing-key": "parking_lot"}
    sandbox.set_policy("dead-letters", "task_queue", to_the_parking_lot)
    sandbox.set_policy(
        "parking-lot", "parking_lot", {"max-length": 1, "overflow": "reject-publish"}
    )
    worker = reject_three_poison_tasks(sandbox)
    # With one task at a time (prefetch 1), the queue hands the worker a task sent after the
    # three only once it has taken the third reject: by then, all three were dead-lettered.
    send(sandbox, "Fence")
    worker.wait_for(DONE)
    sandbox.broker.management.delete("policies", sandbox.vhost, "parking-lot")
    # A fourth, dead-lettered now that there is room: it arrives, and the two refused do not.
    send(sandbox, POISON)
    worker.wait_for(re.escape(FAILED + "rejected"), count=4)
    wait_for_depth(sandbox, 2, "parking_lot")
    assert worker.interrupt() == 0
    assert sandbox.message_count("task_queue") == 0


# -- 3. retries with a delay -----------------------------------------------------------------

RETRY_LINES = [
    f" [x] Received {POISON}",
    FAILED + "trying again in 2 s",
    f" [x] Received {POISON} (attempt 2 of 3)",
    f" [x] Received {POISON} (attempt 3 of 3)",
    FAILED + "parked after 3 attempts",
]


@shown(
    "dead_letters",
    [RETRY, SEND_POISON, PARKED],
    [
        *RETRY_LINES,
        f" [x] Parked {POISON} (x-attempts: 3, last error: ValueError('cannot do a poison task'))",
    ],
)
def retried_then_parked(sandbox, row, tmp_path):
    worker = start(sandbox, row.commands[0], WAITING_MESSAGES)
    run(sandbox, row.commands[1])
    worker.wait_for(re.escape(FAILED + "parked"))
    assert worker.interrupt() == 0
    return printed(worker, run(sandbox, row.commands[2]))


@shown(
    "dead_letters",
    [DELAYED, REQUEUE, SEND_POISON, PARKED],
    [FAILED + "given back", parked("delivery_limit")],
    marks=(
        pytest.mark.rabbitmq(since=(4, 3), otherwise="no delayed retry: the policy is refused"),
    ),
)
def delayed_retries_on_4_3(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    rabbitmqctl(sandbox, row.commands[0])
    # The poison task first, then one the worker can do: without a delay, a task given back
    # comes before it (the first row). With it, the quick task is done while the other waits.
    run(sandbox, row.commands[2])
    send(sandbox, "Quick task")
    worker = start(sandbox, row.commands[1], WAITING_MESSAGES)
    wait_for_depth(sandbox, 1, "parking_lot")
    assert worker.interrupt() == 0
    assert tasks_taken(worker) == [POISON, "Quick task", POISON, POISON]
    return printed(worker, run(sandbox, row.commands[3]))


@pytest.mark.parametrize("row", rows_of(__name__))
def test_what_the_notes_show_is_what_the_scripts_print(sandbox, tmp_path, row: Shown):
    check(sandbox, tmp_path, row)


def test_a_task_back_from_the_wait_says_so_in_its_headers_and_comes_after_later_ones(sandbox):
    """What retry_worker.py's wait does, without the worker: a task put in task_queue_wait
    comes back to task_queue once its time is up, behind a task sent after it, with an x-death
    entry that says where it waited and why it left."""
    [(name, arguments)] = [q for q in DEAD_LETTERS_CHAPTER.queues if q[0] == "task_queue_wait"]
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_declare(name, durable=True, arguments=dict(arguments))
        channel.confirm_delivery()
        channel.basic_publish("", name, POISON)
        channel.basic_publish("", "task_queue", "Sent after it")
    wait_for_depth(sandbox, 2)
    [(first, _), (second, headers)] = get_all(sandbox, "task_queue")
    assert (first, second) == (b"Sent after it", POISON.encode())
    [death] = headers["x-death"]
    assert (death["queue"], death["reason"], death["count"]) == (name, "expired", 1)
    assert headers["x-first-death-reason"] == "expired"


def counted_returns(sandbox, settle: str, most: int) -> int:
    """Take a task again and again, giving it back each time with ``settle`` ("nack" or
    "reject", both with requeue): how many times it was there to take, at most ``most``."""
    with sandbox.connection() as connection:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        channel.basic_publish("", "task_queue", POISON)
        taken = 0
        # One channel: each give-back reaches the queue before the basic_get after it.
        while taken < most and (method := channel.basic_get("task_queue")[0]):
            taken += 1
            if settle == "nack":
                channel.basic_nack(method.delivery_tag, requeue=True)
            else:
                channel.basic_reject(method.delivery_tag, requeue=True)
    return taken


@pytest.mark.rabbitmq(since=(4, 3), otherwise="every return counts (the 'before 4.3' test)")
@pytest.mark.parametrize("settle, count", [("reject", DEFAULT_LIMIT + 1), ("nack", 60)])
def test_on_4_3_only_a_reject_counts_towards_the_delivery_limit_not_a_nack(sandbox, settle, count):
    # A reject is a failed delivery; a nack with requeue is "not now": given back, not counted.
    assert counted_returns(sandbox, settle, most=60) == count


@pytest.mark.rabbitmq(since=(4, 0), before=(4, 3), otherwise="not on 4.0: 3.10 or 4.3 tests")
@pytest.mark.parametrize("settle", ["reject", "nack"])
def test_on_4_0_a_nack_counts_towards_the_delivery_limit_as_a_reject_does(sandbox, settle):
    assert counted_returns(sandbox, settle, most=60) == DEFAULT_LIMIT + 1


@pytest.mark.rabbitmq(before=(4, 0), otherwise="a default delivery limit of 20 (the 4.x tests)")
@pytest.mark.parametrize("settle", ["reject", "nack"])
def test_before_4_0_nothing_limits_the_deliveries(sandbox, settle):
    assert counted_returns(sandbox, settle, most=60) == 60


@pytest.mark.rabbitmq(before=(4, 3), otherwise="4.3 knows delayed retries (the notes' row)")
def test_before_4_3_a_delayed_retry_policy_is_refused(sandbox):
    with pytest.raises(ManagementError) as refused:
        sandbox.set_policy("dead-letters", "task_queue", {"delayed-retry-type": "failed"})
    assert "are not recognised policy settings" in str(refused.value)
