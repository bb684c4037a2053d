"""Publisher confirms, strategy 1: publish one message, wait for its confirm, then the next.

Run: python publish_individually.py [N]    (N persistent messages, 50,000 unless given)
"""

import argparse
import os
import signal
import sys
import time

import pika

QUEUE = "confirms_individually"  # a queue per strategy keeps each run's messages apart


def main(params: pika.URLParameters) -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, one confirm at a time.")
    parser.add_argument("n", nargs="?", type=int, default=50_000, metavar="N")
    n = parser.parse_args().n
    if n < 1:
        parser.error(f"N must be a positive number of messages, not {n}")
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_purge(queue=QUEUE)  # so that after a run it holds this run's messages only
    # Confirm mode: the broker now confirms each message once it is responsible for it (for
    # a quorum queue: written to disk on a majority of its replicas).
    channel.confirm_delivery()
    print(f" [*] Publishing {n:,} messages to '{QUEUE}', each waiting for its confirm")
    started = time.perf_counter()
    for i in range(n):
        try:
            # In confirm mode, BlockingChannel.basic_publish returns once this message is
            # confirmed: a round trip, and a disk write, per message.
            channel.basic_publish(
                exchange="",
                routing_key=QUEUE,
                body=f"individually-{i}",
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
        except pika.exceptions.NackError:  # the broker did not take it: give up, as the
            # official chapter's waitForConfirmsOrDie does (publish_async.py publishes again)
            sys.exit(f" [!] The broker nacked individually-{i}: {i:,} of {n:,} messages confirmed")
    elapsed_ms = (time.perf_counter() - started) * 1000
    connection.close()
    print(f" [x] {n:,} of {n:,} messages confirmed")
    print(f"Published {n:,} messages individually in {elapsed_ms:,.0f} ms")


if __name__ == "__main__":  # the same in every chapter script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    url = os.getenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    try:
        params = pika.URLParameters(url)
        params.stack_timeout = 5  # give up on a broker that does not answer in 5 s, or blocks us
        params.blocked_connection_timeout = params.blocked_connection_timeout or 30  # for 30 s
        main(params)
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        alarm = isinstance(error, pika.exceptions.ConnectionBlockedTimeout)
        why = "RabbitMQ is blocking publishers: a resource alarm" if alarm else repr(error)
        sys.exit(f" [!] {why} at {url.rpartition('@')[2]} (run 'make doctor' to diagnose)")
