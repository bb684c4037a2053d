"""Publisher confirms over AMQP 1.0: RabbitMQ settles every message it is sent with an outcome,
accepted (pika: an ack), rejected (a nack: a queue refused it) or released (no queue took it).

Run: python publisher_confirms.py [N] [--in-flight K]    (N messages, 10,000 unless given; K at
a time, their outcomes awaited before the next K; 1 unless given: one at a time)
"""

import argparse
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    Header,
    Message,
    OutcomeState,
    ProtocolError,
)

QUEUE = "confirms_amqp10"
DURABLE = Header(durable=True)  # kept on disk (pika: delivery_mode Persistent)
# What an outcome means when RabbitMQ says no more (from 4.3 a rejection says which queue, why).
WHY = {OutcomeState.RELEASED: "no queue took it", OutcomeState.REJECTED: "a queue refused it"}


def main(params: ConnectionParameters) -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, each with its outcome.")
    parser.add_argument("n", nargs="?", type=int, default=10_000, metavar="N")
    parser.add_argument("--in-flight", type=int, default=1, metavar="K")
    args = parser.parse_args()
    n, k = args.n, args.in_flight
    if min(n, k) < 1:
        parser.error("N and the number in flight must be positive")
    # K threads for K messages in flight: publish() sends a message and waits for its outcome,
    # and the client lets several threads call it at once. The next K go once all K have one.
    # The threads stop before the connection closes: never a message on a closed link.
    with closing(Connection(params)) as connection, ThreadPoolExecutor(k) as pool:
        connection.management().queue(QUEUE).quorum().queue().declare()
        connection.management().queue(QUEUE).purge()  # after a run it holds this run's messages
        publisher = connection.publisher_builder().queue(QUEUE).build()
        how = "one at a time" if k == 1 else f"{k:,} at a time"
        wait = "each waiting for its outcome" if k == 1 else f"{how}, waiting for their outcomes"
        print(f" [*] Publishing {n:,} messages to '{QUEUE}', {wait}")
        started, confirmed = time.perf_counter(), 0
        for first in range(0, n, k):
            batch = range(first, min(n, first + k))  # K messages, fewer at the end
            messages = [Message(f"amqp10-{i}", header=DURABLE) for i in batch]
            # At most 5 s for an outcome (pika's scripts give RabbitMQ as long to answer): also
            # how long Ctrl+C waits, at worst, for the K threads, which it cannot stop.
            results = list(pool.map(lambda message: publisher.publish(message, 5), messages))
            confirmed += sum(result.outcome.state == OutcomeState.ACCEPTED for result in results)
            refused = [r for r in results if r.outcome.state != OutcomeState.ACCEPTED]
            if refused:  # stop at the first, as pika's publish_individually.py stops at a nack
                body, outcome = refused[0].message.body_as_string(), refused[0].outcome
                why = outcome.error.description if outcome.error else WHY[outcome.state]
                done = f"{confirmed:,} of {n:,} messages confirmed"
                sys.exit(f" [!] RabbitMQ {outcome.state.value} {body}: {done} ({why})")
        elapsed_ms = (time.perf_counter() - started) * 1000
    print(f" [x] {n:,} of {n:,} messages confirmed")
    print(f"Published {n:,} messages {how} in {elapsed_ms:,.0f} ms")


if __name__ == "__main__":  # the same in every AMQP 1.0 script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    url = os.getenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    try:
        at = urlsplit(url)
        where = (at.hostname or "localhost", at.port or 5672, unquote(at.path[1:]) or "/")
        login = (unquote(at.username or "guest"), unquote(at.password or "guest"))
        main(ConnectionParameters(*where, *login))
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        old = isinstance(error, ProtocolError) and "SASL" in str(error)  # a 3.x broker
        why = "AMQP 1.0 chapters need RabbitMQ 4.0 or newer" if old else repr(error)
        sys.exit(f" [!] {why} at {url.rpartition('@')[2]} (run 'make doctor' to diagnose)")
