"""Publisher confirms, strategy 2: publish a batch, wait until all of it is confirmed, repeat."""

import argparse
import os
import signal
import sys
import time

import pika

QUEUE = "confirms_batches"  # a queue per strategy keeps each run's messages apart
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


class BatchPublisher:
    """pika's BlockingChannel waits for each message's confirm; to wait for a whole batch takes
    the asynchronous API, where a callback counts the confirms as they arrive."""

    def __init__(self, params: pika.URLParameters, n: int, batch_size: int) -> None:
        self.n, self.batch_size, self.published = n, batch_size, 0
        self.unconfirmed: set[int] = set()  # delivery tags of the batch in flight
        # Called back: once the connection is open, if it fails to open, once it is closed.
        self.connection = pika.SelectConnection(params, self.on_open, self.stop, self.stop)

    def on_open(self, connection):
        connection.channel(on_open_callback=self.on_channel_open)

    def on_channel_open(self, channel):
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self.on_confirm, callback=self.publish_batch)

    def publish_batch(self, *_):
        for _ in range(min(self.batch_size, self.n - self.published)):
            self.channel.basic_publish("", QUEUE, f"batches-{self.published}", PERSISTENT)
            self.published += 1  # the broker numbers the messages 1, 2, 3, ...: the tag
            self.unconfirmed.add(self.published)

    def on_confirm(self, frame):
        tag = frame.method.delivery_tag
        if isinstance(frame.method, pika.spec.Basic.Nack):  # as Java's waitForConfirmsOrDie
            done = self.published - len(self.unconfirmed)
            sys.exit(f" [!] The broker nacked batches-{tag - 1}: {done:,} of {self.n:,} confirmed")
        # Confirms may come out of order; multiple=True confirms every tag up to this one.
        acked = {t for t in self.unconfirmed if t <= tag} if frame.method.multiple else {tag}
        self.unconfirmed -= acked
        if not self.unconfirmed and self.published < self.n:
            self.publish_batch()  # the whole batch is confirmed: on to the next
        elif not self.unconfirmed:
            self.connection.close()

    def stop(self, connection, error):
        connection.ioloop.stop()
        if not isinstance(error, pika.exceptions.ConnectionClosedByClient):
            raise error  # the broker or the network ended it


def main(params: pika.URLParameters) -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, confirmed batch by batch.")
    parser.add_argument("n", nargs="?", type=int, default=50_000, metavar="N")
    parser.add_argument("--batch-size", type=int, default=100, metavar="SIZE")
    args = parser.parse_args()
    n, size = args.n, args.batch_size
    if min(n, size) < 1:
        parser.error("N and the batch size must be positive")
    with pika.BlockingConnection(params) as connection, connection.channel() as channel:
        channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_purge(queue=QUEUE)  # so that after a run it holds this run's messages
    print(f" [*] Publishing {n:,} messages to '{QUEUE}', waiting for confirms every {size:,}")
    publisher, started = BatchPublisher(params, n, size), time.perf_counter()
    publisher.connection.ioloop.start()  # until stop() ends it
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f" [x] {n:,} of {n:,} messages confirmed")
    print(f"Published {n:,} messages in batches in {elapsed_ms:,.0f} ms")


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
