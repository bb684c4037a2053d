"""Stream Hello World, receiving side: print every message of 'hello-python-stream', the first on.

Run one or more, before or after send.py: each prints every message the stream holds.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Consumer, ConsumerOffsetSpecification, MessageContext, OffsetType

STREAM_NAME = "hello-python-stream"
# Retention: RabbitMQ keeps about the newest 5 GB of the stream and deletes older messages.
STREAM_RETENTION = 5_000_000_000


async def main(broker: dict) -> None:
    ended = []  # why RabbitMQ ended the subscription, if it does

    def on_close(info) -> None:  # the connection was lost, or the stream deleted
        ended.append(info.reason)
        consumer.stop()

    consumer = Consumer(**broker, on_close_handler=on_close)
    try:
        # The same declaration as send.py, so the stream exists whichever script starts first.
        await consumer.create_stream(
            STREAM_NAME, exists_ok=True, arguments={"max-length-bytes": STREAM_RETENTION}
        )

        async def on_message(msg: bytes, message_context: MessageContext):
            body = msg.decode(errors="backslashreplace")
            print(f"Got message: {body} from stream {message_context.stream}")

        print("Press control +C to close")
        # Where to start reading: FIRST is the oldest message the stream still holds. Reading
        # removes nothing, so every consumer that starts at FIRST gets every message, and
        # messages sent before it started too. (NEXT would give only messages sent from now on.)
        await consumer.subscribe(
            STREAM_NAME,
            on_message,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await consumer.run()  # until Ctrl+C, or until on_close stops it
    finally:
        if ended:  # RabbitMQ ended the subscription: nothing left to close
            sys.exit(f" [!] RabbitMQ ended the subscription ({ended[0]}): stream deleted, or gone?")
        await consumer.close()


# --- The same in every stream script: where RabbitMQ is, Ctrl+C, one line for any error ---
if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C, also in a background job
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))  # as Ctrl+C
    try:
        url = urlsplit(os.environ.get("RABBITMQ_STREAM_URL", "rabbitmq-stream://localhost:5552/"))
        if url.scheme != "rabbitmq-stream":
            raise ValueError("RABBITMQ_STREAM_URL must start with rabbitmq-stream://")
        broker = dict(host=url.hostname, port=url.port or 5552, vhost=unquote(url.path[1:]) or "/")
        user, password = unquote(url.username or "guest"), unquote(url.password or "guest")
        asyncio.run(main(dict(broker, username=user, password=password)))
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, never a traceback
        sys.exit(f" [!] {error!r} (run 'make doctor' to diagnose)")
