"""Offset tracking, receiving side: read up to a marker; the next run resumes after it."""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Consumer, ConsumerOffsetSpecification, OffsetNotFound, OffsetType, amqp_decoder

STREAM_NAME = "stream-offset-tracking-python"
# Retention: RabbitMQ keeps about the newest 2 GB of the stream and deletes older messages.
STREAM_RETENTION = 2_000_000_000
# The consumer's name: RabbitMQ stores the offset it reached under this name, in the stream.
SUBSCRIBER = "subscriber_1"


async def main(broker: dict) -> None:
    first_offset, last_offset, processed = -1, -1, 0  # offsets of the first and last processed
    stopped_by = []  # what stopped consuming before a marker: "Ctrl+C", or RabbitMQ's reason

    def stop(why: str) -> None:
        stopped_by.append(why)
        consumer.stop()  # consumer.run() below returns

    # RabbitMQ ends the subscription if the connection is lost or the stream deleted.
    consumer = Consumer(**broker, on_close_handler=lambda info: stop(info.reason))
    try:
        await consumer.create_stream(
            STREAM_NAME, exists_ok=True, arguments={"max-length-bytes": STREAM_RETENTION}
        )
        # Ctrl+C (and SIGTERM, which the tail turns into one) stops consuming: run() returns.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop, "Ctrl+C")
        print("Started consuming: Press control +C to close")
        try:  # where did this consumer get to last time?
            stored_offset = await consumer.query_offset(STREAM_NAME, SUBSCRIBER)
        except OffsetNotFound:
            print("Offset not previously stored.")
            stored_offset = -1

        async def on_message(msg, message_context):
            nonlocal first_offset, last_offset, processed
            offset = message_context.offset  # the message's place in the stream: 0, 1, 2, ...
            if first_offset == -1:
                print("First message received.")
                first_offset = offset
            processed += 1
            last_offset = offset  # processed: a later run need not see it again
            # Store the offset every 10 messages (each store is a write: real consumers store
            # every few hundred or thousand messages).
            if processed % 10 == 0:
                await consumer.store_offset(STREAM_NAME, SUBSCRIBER, offset)
            if msg.body.startswith(b"marker"):
                consumer.stop()  # the end of the wave: run() below returns

        # Start right after the stored offset; with none stored, at 0, the start of the stream.
        await consumer.subscribe(
            STREAM_NAME,
            on_message,
            decoder=amqp_decoder,
            subscriber_name=SUBSCRIBER,
            offset_specification=ConsumerOffsetSpecification(OffsetType.OFFSET, stored_offset + 1),
        )
        await consumer.run()  # until the marker, or until stop()
    finally:
        if stopped_by and stopped_by[0] != "Ctrl+C":  # RabbitMQ ended it: nothing to store
            sys.exit(f" [!] Subscription ended: {stopped_by[0]} (run 'make doctor' to diagnose)")
        if last_offset != -1:  # store the last offset processed: the next run skips all of them
            await consumer.store_offset(STREAM_NAME, SUBSCRIBER, last_offset)
            print(f"Done consuming, first offset {first_offset}, last offset {last_offset}.")
        await consumer.close()
    if stopped_by:
        raise KeyboardInterrupt  # stopped by Ctrl+C: the tail says so


if __name__ == "__main__":  # the same in every stream script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C, also in a background job
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))  # as Ctrl+C
    given = os.getenv("RABBITMQ_STREAM_URL", "rabbitmq-stream://guest:guest@localhost:5552/%2F")
    try:
        url = urlsplit(given)
        if url.scheme != "rabbitmq-stream":
            raise ValueError("RABBITMQ_STREAM_URL must start with rabbitmq-stream://")
        broker = dict(host=url.hostname, port=url.port or 5552, vhost=unquote(url.path[1:]) or "/")
        user, password = unquote(url.username or "guest"), unquote(url.password or "guest")
        asyncio.run(main(dict(broker, username=user, password=password)))
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        sys.exit(f" [!] {error!r} at {given.rpartition('@')[2]} (run 'make doctor' to diagnose)")
