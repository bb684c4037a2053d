"""Stream Hello World, sending side: append one message to the stream 'hello-python-stream'.

receive.py prints it, whether it runs already or starts later: a stream keeps its messages.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Producer
from rstream.exceptions import LeaderNotAvailable, StreamNotAvailable

STREAM_NAME = "hello-python-stream"
# Retention: RabbitMQ keeps about the newest 5 GB of the stream and deletes older messages.
STREAM_RETENTION = 5_000_000_000


async def main(broker: dict) -> None:
    # A Producer speaks RabbitMQ's stream protocol (port 5552), not AMQP (5672).
    async with Producer(**broker) as producer:
        # Both scripts declare the stream: declaring is idempotent, so whichever starts first
        # creates it. Re-declaring it with other arguments fails with PreconditionFailed.
        await producer.create_stream(
            STREAM_NAME, exists_ok=True, arguments={"max-length-bytes": STREAM_RETENTION}
        )
        # A stream is an append-only log: the message goes at its end, and stays there however
        # often it is read. send_wait returns once RabbitMQ confirms that it has stored it.
        for attempt in range(10):  # a stream created a moment ago may have no leader yet
            try:
                await producer.send_wait(STREAM_NAME, b"Hello, World!")
                break
            except (LeaderNotAvailable, StreamNotAvailable):
                if attempt == 9:  # after 5 s, this is the script's one line
                    raise
                await asyncio.sleep(0.5)
        print(" [x] Hello, World! message sent")


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
