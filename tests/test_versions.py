"""What differs between the RabbitMQ versions CI runs (3.10, 4.0, 4.3), each on its version.

Each difference is a short section of the notes (hello_world/README.md, work_queues/README.md).
A test runs on the versions it speaks of and is skipped, saying why, on the others; CI runs the
suite once per version, so every test here runs somewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pika
import pytest

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.sources import Broker
from tutorial_tools.waiting import wait_until

RECEIVED = r"^ \[x\] Received "
TIMEOUT = 20.0


@dataclass(frozen=True)
class TransientQueues:
    """What the broker does with non-durable, non-exclusive queues (a deprecated feature)."""

    phase: str  # its default: permitted_by_default, denied_by_default... ("none" on 3.10)
    permitted: bool  # after the configuration has had its say


def transient_queues(broker: Broker) -> TransientQueues:
    """Asked of the broker itself, not found out by declaring one. RabbitMQ 3.10 has no
    deprecated features at all: it permits them."""
    answer = broker.rabbitmqctl(
        "eval",
        "case code:which(rabbit_deprecated_features) of non_existing -> {none, true}; _ -> "
        "{rabbit_deprecated_features:get_phase(transient_nonexcl_queues), "
        "rabbit_deprecated_features:is_permitted(transient_nonexcl_queues)} end.",
    )
    # The last line: asking whether it is permitted may log the refusal's text first.
    phase, permitted = answer.strip().splitlines()[-1].strip("{}").split(",")
    return TransientQueues(phase, permitted == "true")


@pytest.fixture(scope="session")
def transient(broker: Broker) -> TransientQueues:
    if broker.source == "url":
        pytest.skip("a RABBITMQ_URL broker cannot be asked for its deprecated features")
    return transient_queues(broker)


def send(sandbox, task: str) -> None:
    sender = sandbox.run("work_queues/new_task.py", task)
    assert (sender.process.returncode, sender.stdout) == (0, [f" [x] Sent {task}"])


def wait_for_depth(sandbox, depth: int) -> None:
    wait_until(
        lambda: sandbox.message_count("task_queue") == depth,
        TIMEOUT,
        f"{depth} tasks ready in 'task_queue'",
    )


def test_the_broker_is_the_one_ci_asked_for(broker, rabbitmq_version):
    """CI names the broker each run must get, so that no test in this file is skipped by mistake."""
    expected = os.environ.get("TUTORIAL_EXPECT_RABBITMQ")
    if not expected:
        pytest.skip("TUTORIAL_EXPECT_RABBITMQ is not set (CI sets it, e.g. to '4.3 strict')")
    version, *flags = expected.split()
    assert "{}.{}".format(*rabbitmq_version) == version
    if broker.source != "url":
        assert transient_queues(broker).permitted == ("strict" not in flags)


# -- Hello World: the old tutorials' queue_declare('hello') on a strict broker ------------


def test_a_strict_broker_refuses_the_old_hello_declaration_and_closes_the_connection(
    sandbox, transient, broker_build, record_property
):
    if transient.permitted:
        pytest.skip(
            f"{broker_build} permits non-durable, non-exclusive queues ({transient.phase}): so do "
            "3.10, 4.0 to 4.2 and Debian's 4.3 package by default; upstream 4.3 refuses them, "
            "and CI's 4.3 broker is configured to"
        )
    record_property("ran on", f"{broker_build}, transient_nonexcl_queues {transient.phase}")
    connection = sandbox.connection()
    declaring, bystander = connection.channel(), connection.channel()
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            declaring.queue_declare("hello")  # as the tutorial read before quorum queues
    finally:
        if connection.is_open:
            connection.close()

    assert closed.value.reply_code == 541
    first, why = closed.value.reply_text.splitlines()[:2]
    assert first == "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated."
    # Refused by default (upstream 4.3), or by configuration where the default permits it.
    assert (
        why
        == {
            "denied_by_default": "By default, this feature is not permitted anymore.",
            "permitted_by_default": "Its use is not permitted per the configuration (overriding "
            "the default, which is permitted):",
        }[transient.phase]
    )
    # Not a channel error: the whole connection is gone, with every channel on it.
    assert connection.is_closed and bystander.is_closed
    assert "hello" not in sandbox.queue_names()


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(
            "received the value 'quorum' of type 'longstr' but current is none",
            marks=pytest.mark.rabbitmq(
                before=(4, 0), otherwise="the types are named (the '4.0 and later' case)"
            ),
            id="3.10",
        ),
        pytest.param(
            "received 'quorum' but current is 'classic'",
            marks=pytest.mark.rabbitmq(
                since=(4, 0), otherwise="the argument is said missing (the '3.10' case)"
            ),
            id="4.0 and later",
        ),
    ],
)
def test_a_quorum_declaration_meeting_an_older_classic_hello_is_refused_in_the_versions_words(
    sandbox, ending
):
    with sandbox.connection() as connection:
        connection.channel().queue_declare("hello", durable=True)  # classic, as older code has it

    sender = sandbox.run("hello_world/send.py")

    assert sender.process.returncode == 1
    assert sender.stderr == [
        ' [!] ChannelClosedByBroker: (406) "PRECONDITION_FAILED - inequivalent arg '
        f"'x-queue-type' for queue 'hello' in vhost '{sandbox.vhost}': {ending}\" "
        f"at {sandbox.url.rpartition('@')[2]} (run 'make doctor' to diagnose)"
    ]


# -- Work queues: a task that kills every worker that takes it ------------------------------

DEADLY_TASK = "Deadly task.........."  # ten seconds of work: its worker is killed long before


def ready_after_each_kill(sandbox, most: int) -> list[int]:
    """Give the task to worker.py and SIGKILL the worker as it prints ' [x] Received', again
    and again: the tasks ready in 'task_queue' after each kill, until none is or ``most`` kills.

    The count is read once the killed worker's consumer is gone, in the same answer from the
    queue: by then the broker has either put the task back (1) or dropped it (0).
    """

    def once_the_consumer_is_gone() -> tuple[int] | None:
        queue = sandbox.declared("task_queue")
        return None if queue.consumer_count else (queue.message_count,)

    counts: list[int] = []
    while len(counts) < most and 0 not in counts:
        worker = sandbox.start("work_queues/worker.py")
        worker.wait_for(RECEIVED)
        assert worker.kill() == -9
        (ready,) = wait_until(once_the_consumer_is_gone, TIMEOUT, "the killed worker's consumer")
        counts.append(ready)
    return counts


def route_dead_letters_to(sandbox, queue: str) -> None:
    """A policy that dead-letters what 'task_queue' drops into ``queue`` (declared here)."""
    with sandbox.connection() as connection:
        connection.channel().queue_declare(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
    sandbox.set_policy(
        "dead-tasks", "task_queue", {"dead-letter-exchange": "", "dead-letter-routing-key": queue}
    )


@pytest.mark.rabbitmq(since=(4, 0), otherwise="no default delivery limit (test_before_4_0_...)")
@pytest.mark.parametrize("dead_letters", [False, True], ids=["dropped", "dead-lettered"])
def test_since_4_0_a_task_that_kills_every_worker_goes_after_20_redeliveries(sandbox, dead_letters):
    if dead_letters:
        route_dead_letters_to(sandbox, "dead_tasks")
    send(sandbox, DEADLY_TASK)

    # The first delivery and 20 redeliveries come back; the 21st delivery does not.
    assert ready_after_each_kill(sandbox, most=30) == [1] * 20 + [0]

    if dead_letters:
        with sandbox.connection() as connection:
            _, properties, body = connection.channel().basic_get("dead_tasks", auto_ack=True)
        assert body.decode() == DEADLY_TASK
        assert properties.headers["x-first-death-reason"] == "delivery_limit"
        assert properties.headers["x-delivery-count"] == 21


@pytest.mark.rabbitmq(
    before=(4, 0), otherwise="the task goes after 20 redeliveries (test_since_4_0_...)"
)
def test_before_4_0_a_task_that_kills_every_worker_is_delivered_again_and_again(sandbox):
    send(sandbox, DEADLY_TASK)

    # Past the point where 4.0 drops it, the task is still put back every time.
    assert ready_after_each_kill(sandbox, most=25) == [1] * 25


# -- Work queues: a worker that keeps its task past the consumer timeout --------------------

SLOW_TASK = "Slow task......"  # six seconds of work against a one-second consumer timeout
CANCELLED = r"^ \[!\] RabbitMQ cancelled the consumer"
CHANNEL_CLOSED = (
    r"^ \[!\] .*PRECONDITION_FAILED - delivery acknowledgement on channel \d+ timed out"
)


@contextlib.contextmanager
def rabbit_env(broker: Broker, **values: int) -> Iterator[None]:
    """RabbitMQ's application environment set to ``values`` on ``broker`` for the block, with
    rabbitmqctl eval, and put back as it was afterwards (a key that was unset, unset again)."""
    found = broker.rabbitmqctl(
        "eval",
        f"Found = [{{K, application:get_env(rabbit, K)}} || K <- [{', '.join(values)}]], "
        + "".join(f"application:set_env(rabbit, {key}, {value}), " for key, value in values.items())
        + "Found.",
    )
    try:
        yield
    finally:
        broker.rabbitmqctl(
            "eval",
            f"[case V of {{ok, X}} -> application:set_env(rabbit, K, X); "
            f"undefined -> application:unset_env(rabbit, K) end || {{K, V}} <- {found.strip()}], "
            "ok.",
        )


@pytest.fixture
def one_second_consumer_timeout(broker: Broker):
    """A consumer timeout of 1 s on the test's broker, for the length of the test.

    Set in the broker's application environment with rabbitmqctl eval: the only way that works
    on all three versions without a restart. 3.10 has no per-queue timeout (the
    `consumer-timeout` policy came in 3.12), and before 4.3 the channel looks for late acks
    only on its tick, once a minute, which only the environment can shorten. The values found
    are put back afterwards. Each pytest worker has a broker of its own and runs one test at
    a time, so no other test sees the change; a RABBITMQ_URL broker may be shared: skipped.
    """
    if broker.source == "url":
        pytest.skip("changes the broker's settings: only on a broker of the tests' own")
    with rabbit_env(broker, consumer_timeout=1000, channel_tick_interval=250):
        yield


def keep_a_task_past_the_timeout(sandbox):
    worker = sandbox.start("work_queues/worker.py", ready=WAITING_MESSAGES)
    send(sandbox, SLOW_TASK)
    assert worker.wait(timeout=30) == 1
    # The work was done, but its ack came too late: the broker put the task back for another.
    assert worker.stdout[-2:] == [f" [x] Received {SLOW_TASK}", " [x] Done"]
    wait_for_depth(sandbox, 1)
    return worker


@pytest.mark.rabbitmq(since=(4, 3), otherwise="the channel is closed instead (test_before_4_3_...)")
def test_on_4_3_a_worker_past_the_consumer_timeout_is_cancelled_and_exits(
    sandbox, one_second_consumer_timeout
):
    worker = keep_a_task_past_the_timeout(sandbox)
    assert len(worker.stderr) == 1
    assert worker.matching(CANCELLED) == worker.stderr


@pytest.mark.rabbitmq(
    before=(4, 3), otherwise="the consumer is cancelled instead (test_on_4_3_...)"
)
def test_before_4_3_a_worker_past_the_consumer_timeout_loses_its_channel_and_exits(
    sandbox, one_second_consumer_timeout
):
    worker = keep_a_task_past_the_timeout(sandbox)
    assert len(worker.stderr) == 1
    assert worker.matching(CHANNEL_CLOSED) == worker.stderr


@pytest.mark.rabbitmq(
    since=(4, 3), otherwise="every queue type's consumers are timed out (the channel is closed)"
)
def test_on_4_3_only_a_quorum_queue_times_its_consumer_out_not_a_classic_one(
    sandbox, one_second_consumer_timeout
):
    with sandbox.connection() as connection:
        cancelled: list[str] = []
        held: list[str] = []  # the queues whose message the consumer holds, unacknowledged
        channels = {}
        for queue, kind in (("quorum_tasks", "quorum"), ("classic_tasks", "classic")):
            channel = connection.channel()
            channel.queue_declare(queue, durable=True, arguments={"x-queue-type": kind})
            channel.basic_publish("", queue, b"kept, never acknowledged")
            channel.basic_qos(prefetch_count=1)
            channel.add_on_cancel_callback(lambda frame, kind=kind: cancelled.append(kind))
            channel.basic_consume(queue, lambda *_, kind=kind: held.append(kind))  # never acks
            channels[kind] = channel
        # Once the quorum queue has cancelled its consumer, the timeout has passed for both.
        wait_until(
            lambda: connection.process_data_events(time_limit=0.1) or cancelled,
            TIMEOUT,
            "the quorum queue's consumer to be cancelled",
        )
        assert sorted(held) == ["classic", "quorum"]
        assert cancelled == ["quorum"]
        assert channels["classic"].is_open and channels["classic"].consumer_tags
