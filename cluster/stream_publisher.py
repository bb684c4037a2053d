"""Cluster, stream side: append numbered messages to a stream with a replica on each node.

Run: python stream_publisher.py [COUNT]    (default 3000; nodes from RABBITMQ_STREAM_URLS)
A message is safe once RabbitMQ confirms it: a majority of the replicas have it.
"""

import asyncio
import os
import signal
import sys
from urllib.parse import unquote, urlsplit

from rstream import Producer
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
    count = sys.argv[1] if len(sys.argv) > 1 else "3000"
    if len(sys.argv) > 2 or not count.isdigit():
        sys.exit("Usage: python stream_publisher.py [COUNT]")
    confirmed, attempt, connected = 0, 0, False  # messages 1 to `confirmed` are in the stream
    while confirmed < int(count):
        node = nodes[attempt % len(nodes)]  # after a failure, the next node
        try:
            # The node is only asked where the stream's leader is; the producer then connects
            # to the leader, at the host and port that the leader's node advertises.
            async with Producer(**node) as producer:
                print(f" [*] Connected through {node['host']}:{node['port']}")
                connected = True
                await producer.create_stream(STREAM, exists_ok=True, arguments=ARGUMENTS)
                while confirmed < int(count):
                    body = f"Message {confirmed + 1}"
                    # Back once the stream has it; a leader that died may never answer: 10 s.
                    await asyncio.wait_for(producer.send_wait(STREAM, body.encode()), 10)
                    confirmed += 1
                    print(f" [x] Confirmed {body}")
                    await asyncio.sleep(0.01)  # a pace to watch while you kill a node
        except Exception as error:  # perhaps in the stream already: it may be there twice
            if not lost(error) or (not connected and isinstance(error, OSError)):  # a typo: now
                raise
            attempt += 1
            print(f" [!] {error!r}: Message {confirmed + 1} unconfirmed, sending it again")
            await asyncio.sleep(1)
    print(f" [x] All {count} messages confirmed")


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
