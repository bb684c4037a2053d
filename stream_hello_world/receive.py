"""Stream Hello World, receiving side: print every message of 'hello-python-stream', the first on.

Run one or more, before or after send.py: each prints every message the stream holds.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Consumer, ConsumerOffsetSpecification, MessageContext, OffsetType
from rstream.exceptions import LeaderNotAvailable, StreamNotAvailable

STREAM_NAME = "hello-python-stream"
# Retention: RabbitMQ keeps about the newest 5 GB of the stream and deletes older messages.
STREAM_RETENTION = 5_000_000_000


async def main(broker: dict) -> None:
    stopped_by = []  # what stopped consuming: "Ctrl+C", or RabbitMQ's reason for ending it

    def stop(why: str) -> None:
        stopped_by.append(why)
        consumer.stop()  # consumer.run() below returns

    # RabbitMQ ends the subscription if the connection is lost or the stream deleted.
    consumer = Consumer(**broker, on_close_handler=lambda info: stop(info.reason))
    try:
        # The same declaration as send.py, so the stream exists whichever script starts first.
        await consumer.create_stream(
            STREAM_NAME, exists_ok=True, arguments={"max-length-bytes": STREAM_RETENTION}
        )

        async def on_message(msg: bytes, message_context: MessageContext):
            body = msg.decode(errors="backslashreplace")
            print(f"Got message: {body} from stream {message_context.stream}")

        # Ctrl+C (and SIGTERM, which the tail turns into one) stops consuming: run() returns.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop, "Ctrl+C")
        print("Press control + C to close")
        # Start at FIRST, the oldest message the stream holds: reading removes nothing, so each
        # consumer gets every message, those sent before it started too (NEXT: only new ones).
        first = ConsumerOffsetSpecification(OffsetType.FIRST)
        for attempt in range(10):  # a stream created a moment ago may have no leader yet
            try:
                await consumer.subscribe(STREAM_NAME, on_message, offset_specification=first)
                break
            except (LeaderNotAvailable, StreamNotAvailable):
                if attempt == 9:  # after 5 s, this is the script's one line
                    raise
                await asyncio.sleep(0.5)
        await consumer.run()  # until stop()
    finally:
        if stopped_by and stopped_by[0] != "Ctrl+C":  # RabbitMQ ended it: nothing left to close
            sys.exit(f" [!] Subscription ended: {stopped_by[0]} (run 'make doctor' to diagnose)")
        await consumer.close()
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
