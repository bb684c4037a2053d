"""Stream Hello World, sending side: append one message to the stream 'hello-python-stream'.

receive.py prints it, whether it runs already or starts later: a stream keeps its messages.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Producer

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
        await producer.send_wait(STREAM_NAME, b"Hello, World!")
        print(" [x] Hello, World! message sent")


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
