"""What the stream tests ask RabbitMQ directly, through rstream: where a consumer's offset is
stored, what a stream holds, whether a stream answers yet.

Only for claims about the broker; what a learner sees is read from the scripts themselves.
"""

from __future__ import annotations

import asyncio

from rstream import (
    AMQPMessage,
    Consumer,
    ConsumerOffsetSpecification,
    OffsetNotFound,
    OffsetType,
    Producer,
    amqp_decoder,
)

from tutorial_tools.addresses import StreamAddress

DEADLINE = 20.0  # seconds for anything asked of the broker here


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def stored_offset(stream_url: str, stream: str, subscriber: str) -> int | None:
    """The offset RabbitMQ keeps for ``subscriber`` on ``stream``; None if none is stored."""

    async def query() -> int | None:
        async with Consumer(**StreamAddress.parse(stream_url).client_args()) as consumer:
            try:
                return await consumer.query_offset(stream, subscriber)
            except OffsetNotFound:
                return None

    return _run(query())


def answers(stream_url: str, stream: str) -> bool:
    """True once ``stream`` exists and answers (after a restart it takes a moment to recover)."""

    async def probe() -> bool:
        async with Consumer(**StreamAddress.parse(stream_url).client_args()) as consumer:
            try:
                await consumer.query_offset(stream, "readiness-probe")
            except OffsetNotFound:
                pass  # the stream answered: it has no offset under that name
            return True

    try:
        return _run(probe())
    except Exception:
        return False


def create(stream_url: str, stream: str, arguments: dict) -> None:
    """Create ``stream`` with the given arguments (as a script of another version might)."""

    async def declare() -> None:
        async with Producer(**StreamAddress.parse(stream_url).client_args()) as producer:
            await producer.create_stream(stream, arguments=arguments)

    _run(declare())


def append(stream_url: str, stream: str, bodies: list[bytes]) -> None:
    """Append AMQP 1.0 messages as offset_tracking_send.py writes them, each once confirmed."""

    async def publish() -> None:
        async with Producer(**StreamAddress.parse(stream_url).client_args()) as producer:
            for body in bodies:
                await producer.send_wait(stream, AMQPMessage(body=body))

    _run(publish())


def first_offset(stream_url: str, stream: str) -> int:
    """The offset of the oldest message ``stream`` still holds."""
    return read(stream_url, stream, until=lambda messages: True)[0][0]


def up_to_marker(number: int):
    """For read(): until the ``number``-th marker message."""
    return lambda messages: sum(body.startswith(b"marker") for _, body in messages) == number


def read(stream_url: str, stream: str, until) -> list[tuple[int, bytes]]:
    """(offset, body) of the messages from the start of ``stream`` on, in order, until
    ``until(messages so far)`` is true (see up_to_marker)."""

    async def consume() -> list[tuple[int, bytes]]:
        messages: list[tuple[int, bytes]] = []
        done = asyncio.Event()

        async def on_message(msg, context) -> None:
            if not done.is_set():
                messages.append((context.offset, msg.body))
                if until(messages):
                    done.set()

        async with Consumer(**StreamAddress.parse(stream_url).client_args()) as consumer:
            await consumer.subscribe(
                stream,
                on_message,
                decoder=amqp_decoder,
                offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
            )
            await done.wait()
        return messages

    return _run(consume())
