"""The bench's stream rows: a stream written and read with rstream, against a quorum queue
with pika, in the same runs. How: bench.py."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Callable

import pika
from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, Producer

from tutorial_tools.addresses import StreamAddress
from tutorial_tools.bench_queues import QUORUM, BenchError, run_publisher
from tutorial_tools.waiting import wait_until

STREAM_BATCH = 1000  # messages per send_batch call
CONSUME_QUEUE = "bench_consume"
ASYNC_PUBLISHER = "publisher_confirms/publish_async.py"


def bodies(messages: int) -> list[bytes]:
    return [f"stream-message{i:06d}".encode() for i in range(messages)]  # 20 bytes each


async def stream_publish(client: dict, stream: str, messages: int, batched: bool) -> float:
    """Append ``messages`` to a new stream; messages per second until the last is confirmed.

    ``batched``: send_batch, 1,000 a call, as a program that cares for throughput does; else
    send(), as the stream tutorial does, which only buffers: rstream flushes every 0.5 s.
    """
    confirmed, failed = 0, 0
    all_confirmed = asyncio.Event()

    def on_confirm(status) -> None:
        nonlocal confirmed, failed
        confirmed += status.is_confirmed
        failed += not status.is_confirmed
        if confirmed + failed == messages:
            all_confirmed.set()

    payload = bodies(messages)
    async with Producer(**client) as producer:
        await producer.create_stream(stream)
        # Not timed: rstream's first message to a stream opens a connection to its leader.
        await producer.send_wait(stream, b"warm-up")
        started = time.perf_counter()
        if batched:
            for first in range(0, messages, STREAM_BATCH):
                batch = payload[first : first + STREAM_BATCH]
                await producer.send_batch(stream, batch, on_publish_confirm=on_confirm)
        else:
            for body in payload:
                await producer.send(stream, body, on_publish_confirm=on_confirm)
        await asyncio.wait_for(all_confirmed.wait(), 120)  # a deadline, should some be missing
        elapsed = time.perf_counter() - started
    if failed:
        raise BenchError(f"RabbitMQ refused {failed:,} of {messages:,} messages to {stream}")
    return messages / elapsed


async def stream_consume(client: dict, stream: str, messages: int) -> float:
    """Read a stream of ``messages`` (and the warm-up message) from its first offset;
    messages per second from the first delivered to the last."""
    arrivals: list[float] = []
    all_received = asyncio.Event()

    def on_message(msg, context) -> None:
        arrivals.append(time.perf_counter())
        if len(arrivals) == messages + 1:
            all_received.set()

    async with Consumer(**client) as consumer:
        await consumer.subscribe(
            stream,
            on_message,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await asyncio.wait_for(all_received.wait(), 120)  # a deadline
    return messages / (arrivals[-1] - arrivals[0])  # the warm-up message came first


async def delete_stream(client: dict, stream: str) -> None:
    async with Producer(**client) as producer:
        await producer.delete_stream(stream)


def quorum_consume(url: str, messages: int) -> float:
    """Fill a quorum queue with ``messages`` persistent messages, then consume them all with
    auto-ack; messages per second from the first delivered to the last."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(CONSUME_QUEUE, durable=True, arguments=QUORUM)
        channel.queue_purge(CONSUME_QUEUE)
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        for body in bodies(messages):
            channel.basic_publish("", CONSUME_QUEUE, body, persistent)

        def ready() -> int:
            return channel.queue_declare(CONSUME_QUEUE, passive=True).method.message_count

        wait_until(lambda: ready() == messages, 60, f"{messages:,} messages in {CONSUME_QUEUE}")
        arrivals: list[float] = []

        def on_message(ch, method, properties, body) -> None:
            arrivals.append(time.perf_counter())
            if len(arrivals) == messages:
                ch.stop_consuming()

        channel.basic_consume(CONSUME_QUEUE, on_message, auto_ack=True)
        connection.call_later(120, channel.stop_consuming)  # a deadline, should some be missing
        channel.start_consuming()
    if len(arrivals) != messages:
        raise BenchError(
            f"consumed {len(arrivals):,} of {messages:,} messages from {CONSUME_QUEUE}"
        )
    return (messages - 1) / (arrivals[-1] - arrivals[0])


def measure_streams(
    url: str, stream_url: str, runs: int, messages: int, say: Callable[[str], None]
) -> dict:
    rates: dict[str, list[float]] = {
        "quorum_publish": [],
        "publish": [],
        "send": [],
        "consume": [],
        "quorum_consume": [],
    }
    client = StreamAddress.parse(stream_url).client_args()  # rstream's Producer and Consumer
    for run in range(1, runs + 1):
        say(f"  streams against a quorum queue, run {run} of {runs}: {messages:,} messages each")
        # Interleaved, so that a slower minute on a shared machine hits both sides alike.
        rates["quorum_publish"].append(run_publisher(ASYNC_PUBLISHER, url, messages))
        stream = f"bench-stream-{run}-{secrets.token_hex(2)}"
        rates["publish"].append(asyncio.run(stream_publish(client, stream, messages, True)))
        rates["consume"].append(asyncio.run(stream_consume(client, stream, messages)))
        asyncio.run(delete_stream(client, stream))
        buffered = f"{stream}-send"
        rates["send"].append(asyncio.run(stream_publish(client, buffered, messages, False)))
        asyncio.run(delete_stream(client, buffered))
        rates["quorum_consume"].append(quorum_consume(url, messages))
    return {name: statistics.median(values) for name, values in rates.items()}
