"""Cluster, stream side: read the replicated stream from its start, through any node; when
its node goes, read on through the next, after the last message it got: no gap, no repeat.

Run: python stream_consumer.py    (nodes from RABBITMQ_STREAM_URLS; Ctrl+C to stop)
"""

import asyncio
import contextlib
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Consumer, ConsumerOffsetSpecification, OffsetType
from rstream.connection import ConnectionClosed
from rstream.exceptions import LeaderNotAvailable, ServerError, StreamNotAvailable

STREAM = "replicated-stream"
ARGUMENTS = {"x-initial-cluster-size": 3, "max-length-bytes": 1_000_000_000}  # 3 replicas, 1 GB
# What a node going away looks like, to a client: try again, through the next node. (rstream
# also raises ServerError('Connection Closed'): ServerError's subclasses are other errors.)
LOST = (OSError, ConnectionClosed, TimeoutError, LeaderNotAvailable, StreamNotAvailable)


def lost(error: Exception) -> bool:
    return isinstance(error, LOST) or type(error) is ServerError


async def main(nodes: list[dict]) -> None:
    next_offset, attempt = 0, 0  # where to read from: the start, then after the last one read
    stopping, wake, read = asyncio.Event(), asyncio.Event(), False  # wake: stopping, or lost
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, lambda: (stopping.set(), wake.set()))  # Ctrl+C

    async def on_message(body: bytes, context) -> None:
        nonlocal next_offset
        print(f" [x] Received {body.decode(errors='backslashreplace')} (offset {context.offset})")
        next_offset = context.offset + 1

    while not stopping.is_set():
        node = nodes[attempt % len(nodes)]  # after a failure, the next node
        wake.clear()
        consumer = Consumer(**node, on_close_handler=lambda info: wake.set())
        try:
            await consumer.start()
            await consumer.create_stream(STREAM, exists_ok=True, arguments=ARGUMENTS)
            start = ConsumerOffsetSpecification(OffsetType.OFFSET, next_offset)
            await consumer.subscribe(STREAM, on_message, offset_specification=start)
            print(f" [*] Reading from offset {next_offset} through {node['host']}:{node['port']}")
            read = True
            await wake.wait()
        except Exception as error:
            if not lost(error) or (not read and isinstance(error, OSError)):  # a typo fails now
                raise
            print(f" [!] {error!r}")
        finally:
            with contextlib.suppress(*LOST, ServerError):  # its node may be gone
                await asyncio.wait_for(consumer.close(), 5)
        if not stopping.is_set():
            attempt += 1
            print(f" [!] Lost the stream: reading again from offset {next_offset} in 1 s")
            await asyncio.sleep(1)
    raise KeyboardInterrupt  # the common tail below says " [*] Interrupted"


def node(url: str) -> dict:
    """rstream's connection settings from a rabbitmq-stream:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "rabbitmq-stream":
        raise ValueError("RABBITMQ_STREAM_URLS must be rabbitmq-stream:// URLs")
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    vhost = unquote(parts.path[1:]) or "/"
    return dict(
        host=parts.hostname, port=parts.port or 5552, vhost=vhost, username=user, password=password
    )


if __name__ == "__main__":  # the same in every cluster stream script: where, Ctrl+C, one line
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C, also in a background job
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))  # as Ctrl+C
    ports = (5552, 5553, 5554)  # make cluster PORT=5672, or the compose file
    default = ",".join(f"rabbitmq-stream://guest:guest@localhost:{p}/%2F" for p in ports)
    given = os.getenv("RABBITMQ_STREAM_URLS", default)
    try:
        asyncio.run(main([node(url) for url in given.split(",")]))
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        where = ",".join(url.rpartition("@")[2] for url in given.split(","))
        sys.exit(f" [!] {error!r} at {where} (run 'make doctor' to diagnose)")
