"""Offset tracking, sending side: append a wave of 100 messages, the last one a marker.

offset_tracking_receive.py reads up to the marker and stops; each run of this script adds a wave.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import AMQPMessage, ConfirmationStatus, Producer

STREAM = "stream-offset-tracking-python"
MESSAGES = 100
# Retention: RabbitMQ keeps about the newest 2 GB of the stream and deletes older messages.
STREAM_RETENTION = 2_000_000_000


async def main(broker: dict) -> None:
    confirms: list[bool] = []  # RabbitMQ's answer for each message: stored or not
    all_answered = asyncio.Event()

    def on_publish_confirm(confirmation: ConfirmationStatus) -> None:
        confirms.append(confirmation.is_confirmed)
        if len(confirms) == MESSAGES:
            all_answered.set()

    async with Producer(**broker) as producer:
        # Create the stream if it does not exist yet (the receiver declares it the same way).
        await producer.create_stream(
            STREAM, exists_ok=True, arguments={"max-length-bytes": STREAM_RETENTION}
        )

        print(f"Publishing {MESSAGES} messages...")
        # 99 messages, then a marker that tells the consumer the wave is over. send() only puts
        # a message in rstream's buffer; rstream sends what it holds every 0.5 s, in batches.
        for i in range(MESSAGES - 1):
            message = AMQPMessage(body=f"hello: {i}".encode())
            await producer.send(STREAM, message, on_publish_confirm=on_publish_confirm)
        marker = AMQPMessage(body=f"marker: {MESSAGES - 1}".encode())
        await producer.send(STREAM, marker, on_publish_confirm=on_publish_confirm)

        # Exit only once RabbitMQ has confirmed every message: until then it may not have them.
        await asyncio.wait_for(all_answered.wait(), timeout=30)
        if not all(confirms):
            raise RuntimeError(f"RabbitMQ confirmed {sum(confirms)} of {MESSAGES} messages")
        print("Messages confirmed: true.")


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
