"""Publisher confirms, strategy 3: publish on, and take each confirm as it comes (async API)."""

import argparse
import os
import signal
import sys
import time

import pika

QUEUE = "confirms_async"  # a queue per strategy keeps each run's messages apart


class AsyncPublisher:
    def __init__(self, params: pika.URLParameters, n: int) -> None:
        self.to_publish = [f"async-{i}" for i in reversed(range(n))]  # pop()s async-0 first
        self.tag, self.outstanding, self.nacked = 0, {}, []  # outstanding: tag -> body
        self.connection = pika.SelectConnection(params, self.on_open, self.end, self.end)

    def on_open(self, connection):
        # Confirm mode, with a callback for every Basic.Ack and Basic.Nack the broker sends.
        self.channel = connection.channel(
            on_open_callback=lambda channel: channel.confirm_delivery(self.on_confirm, self.publish)
        )

    def publish(self, *_):
        # basic_publish only hands the message to pika: nothing here waits for the broker.
        while self.to_publish and len(self.outstanding) < 1000:  # at most 1,000 unconfirmed
            body = self.to_publish.pop()
            persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
            self.channel.basic_publish("", QUEUE, body, properties=persistent)
            self.tag += 1  # the broker numbers a confirm-mode channel's messages 1, 2, 3, ...
            self.outstanding[self.tag] = body
        if not (self.to_publish or self.outstanding or self.nacked) and self.connection.is_open:
            self.connection.close()  # every message is confirmed

    def on_confirm(self, frame):
        # Confirms may come out of order; multiple=True settles every tag up to this one.
        tag, nack = frame.method.delivery_tag, isinstance(frame.method, pika.spec.Basic.Nack)
        tags = [t for t in self.outstanding if t <= tag] if frame.method.multiple else [tag]
        bodies = [self.outstanding.pop(t) for t in tags]
        if not nack:
            return self.publish()  # the confirm made room for more messages
        if not self.nacked:  # the broker did not take them: publish them again in a second
            self.connection.ioloop.call_later(1.0, self.retry)
        self.nacked += bodies

    def retry(self):
        bodies, self.nacked = self.nacked, []
        print(f" [!] {len(bodies):,} messages were nacked ({bodies[0]} ...): publishing again")
        self.to_publish += reversed(bodies)
        self.publish()

    def end(self, connection, error):
        connection.ioloop.stop()
        if not isinstance(error, pika.exceptions.ConnectionClosedByClient):
            raise error  # the broker or the network ended it


def main(params: pika.URLParameters) -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, confirms handled async.")
    parser.add_argument("n", nargs="?", type=int, default=50_000, metavar="N")
    n = parser.parse_args().n
    if n < 1:
        parser.error(f"N must be a positive number of messages, not {n}")
    with pika.BlockingConnection(params) as connection, connection.channel() as channel:
        channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_purge(queue=QUEUE)  # so that after a run it holds this run's messages
    print(f" [*] Publishing {n:,} messages to '{QUEUE}', confirms handled as they arrive")
    publisher, started = AsyncPublisher(params, n), time.perf_counter()
    publisher.connection.ioloop.start()  # until end() stops it
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f" [x] {n:,} of {n:,} messages confirmed")
    print(f"Published {n:,} messages asynchronously in {elapsed_ms:,.0f} ms")


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
