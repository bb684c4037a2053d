"""make bench's AMQP 1.0 section: publishing with outcomes (the amqp10/ track) against pika
with publisher confirms, on the same broker, to the same kind of queue.

Each run publishes N persistent messages of 20 bytes to a fresh quorum queue, three ways, one
after the other (so that a slower minute on a shared machine hits each alike):

- pika, each message confirmed before the next is sent (publish_individually.py's way);
- AMQP 1.0, each message's outcome awaited before the next (amqp10/hello_world/send.py's way);
- AMQP 1.0, from 8 threads on one publisher link, so that 8 outcomes are awaited at a time.

RabbitMQ speaks AMQP 1.0 from 4.0 on: before, the section says so in one line.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections.abc import Callable

import pika

from tutorial_tools.bench_queues import BenchError
from tutorial_tools.probes import amqp10_connection, rabbitmq_version

THREADS = 8
BODY = b"x" * 20


def pika_confirmed(url: str, queue: str, messages: int) -> float:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        started = time.perf_counter()
        for _ in range(messages):
            channel.basic_publish("", queue, BODY, persistent)  # returns once confirmed
        elapsed = time.perf_counter() - started
        channel.queue_delete(queue)
    return messages / elapsed


def amqp10_outcomes(url: str, queue: str, messages: int, threads: int) -> float:
    from rabbitmq_amqp_python_client import Header, Message, OutcomeState

    connection = amqp10_connection(url)
    try:
        management = connection.management()
        management.queue(queue).quorum().queue().declare()
        publisher = connection.publisher_builder().queue(queue).build()
        refused: list[str] = []

        def publish(count: int) -> None:
            for _ in range(count):
                outcome = publisher.publish(Message(BODY, header=Header(durable=True))).outcome
                if outcome.state != OutcomeState.ACCEPTED:
                    refused.append(outcome.state.value)

        shares = [messages // threads + (n < messages % threads) for n in range(threads)]
        workers = [threading.Thread(target=publish, args=(share,)) for share in shares]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        if refused:
            raise BenchError(f"{len(refused)} messages were not accepted: {refused[0]}")
        management.queue(queue).delete()
    finally:
        connection.close()
    return messages / elapsed


def measure_amqp10(url: str, runs: int, messages: int, say: Callable[[str], None]) -> dict:
    version = rabbitmq_version(url)
    if version is None or version < (4, 0):
        have = "an unknown version" if version is None else ".".join(map(str, version))
        return {"skipped": f"RabbitMQ {have} does not speak AMQP 1.0 (4.0 or newer does)"}
    results: list[dict[str, float]] = []
    for run in range(1, runs + 1):
        say(f"  AMQP 1.0 against pika, run {run} of {runs}: {messages:,} messages each way")
        queue = f"bench-amqp10-{secrets.token_hex(3)}"
        results.append(
            {
                "pika": pika_confirmed(url, queue, messages),
                "amqp10": amqp10_outcomes(url, queue, messages, 1),
                "amqp10_threads": amqp10_outcomes(url, queue, messages, THREADS),
            }
        )
    return {name: statistics.median(run[name] for run in results) for name in results[0]}


def amqp10_table(results: dict, messages: int) -> str:
    """The heading and table of AMQP 1.0 against pika, or the line that says why not."""
    if "skipped" in results:
        return f"AMQP 1.0 against AMQP 0-9-1: skipped: {results['skipped']}."
    pika_rate = results["pika"]
    rows = [
        ("pika: confirm each message, one at a time (`publish_individually.py`)", pika_rate),
        ("AMQP 1.0: wait for each outcome, one at a time (`amqp10/`)", results["amqp10"]),
        (
            f"AMQP 1.0: {THREADS} threads on one link, each waiting for its outcomes",
            results["amqp10_threads"],
        ),
    ]
    return "\n".join(
        [
            f"AMQP 1.0 against AMQP 0-9-1 on the same broker: {messages:,} persistent messages "
            "to a quorum queue per run:",
            "",
            "| Publishing, each message settled by the broker | Median | vs. pika |",
            "|---|--:|--:|",
            *(f"| {what} | {rate:,.0f} msg/s | {rate / pika_rate:.2f}x |" for what, rate in rows),
        ]
    )
