"""Publisher confirms, strategy 3: keep publishing, and handle each confirm as it arrives.

Run: python publish_async.py [N]   (N persistent messages, 50,000 unless given)
https://www.rabbitmq.com/tutorials/tutorial-seven-java
"""

import argparse
import collections
import contextlib
import itertools
import os
import re
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterator

import pika
import pika.channel
import pika.frame

QUEUE = "confirms_async"  # one queue per strategy: each run's messages stay apart
MAX_OUTSTANDING = 1000  # at most this many messages wait for their confirm at any time
RETRY_DELAY = 1.0  # seconds before a nacked message is published again


class AsyncPublisher:
    """Publishes on pika's asynchronous API; a callback handles each confirm as it arrives."""

    def __init__(self, bodies: list[str]) -> None:
        self.to_publish = collections.deque(bodies)
        self.total = len(bodies)
        # Delivery tag -> body of every message published and not yet confirmed. The broker
        # numbers the messages of a channel in confirm mode 1, 2, 3, ... and so do we.
        self.outstanding: dict[int, str] = {}
        self.last_tag = 0
        self.confirmed = 0
        self.nacked: list[str] = []  # nacked, to be published again after RETRY_DELAY
        self.started = self.elapsed = 0.0
        self.error: BaseException | None = None
        # The same broker as the blocking connection in main(), now with callbacks.
        url = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@localhost:5672/%2F"
        self.connection = pika.SelectConnection(
            pika.URLParameters(url),
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_error,
            on_close_callback=self.on_connection_closed,
        )

    def run(self) -> float:
        """Publish everything, wait until all is confirmed; the seconds that took."""
        self.connection.ioloop.start()  # returns once on_connection_closed stops it
        if self.error:
            raise self.error  # the same errors, and messages, as the blocking scripts
        return self.elapsed

    def on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self.on_channel_open)

    def on_channel_open(self, channel: pika.channel.Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        # Confirm mode, with a callback for every Basic.Ack and Basic.Nack the broker sends.
        channel.confirm_delivery(ack_nack_callback=self.on_confirm, callback=self.on_confirm_mode)

    def on_confirm_mode(self, frame: pika.frame.Method) -> None:
        self.started = time.perf_counter()
        self.publish()

    def publish(self) -> None:
        # basic_publish only queues the message for sending: nothing waits for the broker here.
        while self.to_publish and len(self.outstanding) < MAX_OUTSTANDING:
            body = self.to_publish.popleft()
            self.channel.basic_publish(
                exchange="",
                routing_key=QUEUE,
                body=body,
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
            self.last_tag += 1
            self.outstanding[self.last_tag] = body

    def on_confirm(self, frame: pika.frame.Method) -> None:
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        if multiple:
            # multiple=True confirms every outstanding message up to and including this tag.
            # The dict keeps the order we published in, so those are at its front.
            tags = list(itertools.takewhile(lambda t: t <= tag, self.outstanding))
        else:
            tags = [tag]
        bodies = [self.outstanding.pop(t) for t in tags]
        if isinstance(frame.method, pika.spec.Basic.Nack):
            # The broker did not take these. Publishing them again at once would most likely
            # be nacked again (e.g. while the queue is full), so collect them and wait a little.
            if not self.nacked:
                self.connection.ioloop.call_later(RETRY_DELAY, self.retry)
            self.nacked += bodies
        else:
            self.confirmed += len(bodies)
        if self.confirmed == self.total:
            self.elapsed = time.perf_counter() - self.started
            self.connection.close()
        else:
            self.publish()  # confirms free room for more messages

    def retry(self) -> None:
        bodies, self.nacked = self.nacked, []
        which = bodies[0] if len(bodies) == 1 else f"{bodies[0]} .. {bodies[-1]}"
        print(f" [!] {len(bodies):,} messages were nacked ({which}): publishing them again")
        self.to_publish.extend(bodies)
        self.publish()

    def on_channel_closed(self, channel: pika.channel.Channel, error: Exception) -> None:
        if isinstance(error, pika.exceptions.ChannelClosedByBroker):
            self.error = error
            self.connection.close()

    def on_connection_error(self, connection: pika.SelectConnection, error: Exception) -> None:
        if not isinstance(error, pika.exceptions.AMQPError):
            error = pika.exceptions.AMQPConnectionError(error)
        self.error = error
        connection.ioloop.stop()

    def on_connection_closed(self, connection: pika.SelectConnection, error: Exception) -> None:
        if self.error is None and not isinstance(error, pika.exceptions.ConnectionClosedByClient):
            self.error = error  # the broker or the network ended it
        connection.ioloop.stop()


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, confirms handled async.")
    parser.add_argument("n", nargs="?", type=positive_int, default=50_000, metavar="N")
    n = parser.parse_args().n
    with rabbitmq_connection() as connection:
        channel = connection.channel()
        # Set up on the blocking API, as in every chapter: durable quorum queue, emptied first
        # so that after a run it holds exactly the messages this run published.
        channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_purge(queue=QUEUE)
        print(f" [*] Publishing {n:,} messages to '{QUEUE}', confirms handled as they arrive")
        # Confirms that arrive while we go on publishing need callbacks: pika's asynchronous
        # API (SelectConnection), on a second connection.
        publisher = AsyncPublisher([f"async-{i}" for i in range(n)])
        elapsed_ms = publisher.run() * 1000
        print(f" [x] {publisher.confirmed:,} of {n:,} messages confirmed")
        print(f"Published {n:,} messages asynchronously in {elapsed_ms:,.0f} ms")


# --- Connection and error handling: identical in every script of this project. ---


@contextlib.contextmanager
def rabbitmq_connection() -> Iterator[pika.BlockingConnection]:
    """Connect to RABBITMQ_URL and close the connection at the end.

    Ctrl+C and SIGTERM end the script with ' [*] Interrupted' (exit 0); a RabbitMQ error ends it
    with one line on stderr (exit 1) instead of a traceback.
    """
    url = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@localhost:5672/%2F"
    try:
        if not url.lower().startswith(("amqp://", "amqps://")):
            raise ValueError("it must start with amqp:// or amqps://")
        if urllib.parse.urlsplit(url).password is None and "@" in url:
            raise ValueError("a user needs a password: amqp://user:password@host")
        params = pika.URLParameters(url)
    except (ValueError, TypeError, SyntaxError) as error:  # what pika raises for a bad URL
        sys.exit(f"RABBITMQ_URL is not a valid AMQP URL: {error}")
    params.socket_timeout = params.stack_timeout = 5.0  # fail fast when no broker answers
    where = masked(url)
    for signum in (signal.SIGINT, signal.SIGTERM):  # both stop the script like Ctrl+C
        signal.signal(signum, signal.default_int_handler)
    try:
        connection = connect(params, where)
        try:
            yield connection
        finally:
            # Closing the connection hands unacknowledged messages back to their queue.
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    connection.close()
    except KeyboardInterrupt:
        print(" [*] Interrupted")
        sys.exit(0)
    except pika.exceptions.ChannelClosedByBroker as error:
        sys.exit(channel_closed(error))
    except pika.exceptions.AMQPConnectionError as error:
        sys.exit(f" [!] Lost the connection to RabbitMQ at {where} ({reason(error)})")
    except pika.exceptions.AMQPError as error:
        sys.exit(f" [!] {type(error).__name__}: {reason(error)}")


def connect(params: pika.URLParameters, where: str) -> pika.BlockingConnection:
    """Open the connection, or exit with one line saying why RabbitMQ could not be used."""
    user, vhost = params.credentials.username, params.virtual_host
    try:
        return pika.BlockingConnection(params)
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
        sys.exit(
            f"ACCESS_REFUSED: login refused for user '{user}' (wrong user or password) at {where}"
        )
    except pika.exceptions.ProbableAccessDeniedError:
        sys.exit(f"NOT_ALLOWED: user '{user}' may not use virtual host '{vhost}' at {where}")
    except (
        pika.exceptions.AMQPError,
        pika.adapters.utils.connection_workflow.AMQPConnectorException,
        OSError,
    ) as error:
        sys.exit(
            f"Could not connect to RabbitMQ at {where} ({reason(error)}). Start one with "
            "'docker compose up -d' or 'make broker', or set RABBITMQ_URL."
        )


def masked(url: str) -> str:
    """The broker URL with its password replaced by ****, safe to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        user_info, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user_info.partition(':')[0]}:****@{host}")
    return parts._replace(query="", fragment="").geturl()


def reason(error: BaseException) -> str:
    """The short cause inside pika's wrappers: 'Connection refused', the broker's reply text..."""
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    error = getattr(error, "exception", error)  # pika's connection-workflow wrappers
    if isinstance(
        error, (TimeoutError, pika.adapters.utils.connection_workflow.AMQPConnectorStackTimeout)
    ):
        return "timed out"
    if isinstance(error, pika.exceptions.IncompatibleProtocolError):
        return "the server closed the connection during the AMQP handshake"
    text = getattr(error, "reply_text", None) or getattr(error, "strerror", None) or str(error)
    return text or type(error).__name__


def channel_closed(error: pika.exceptions.ChannelClosedByBroker) -> str:
    """Explain why RabbitMQ closed the channel; for a 406, how to reset the queue or exchange."""
    # A declare must match what already exists, e.g. "inequivalent arg 'x-queue-type' for
    # queue 'task_queue' in vhost '/': ..."; the broker keeps the old one until it is deleted.
    found = re.search(r"for (queue|exchange) '(.*?)' in vhost '(.*?)'", error.reply_text)
    if error.reply_code != 406 or not found:
        return f" [!] RabbitMQ closed the channel: {error.reply_text}"
    kind, name, vhost = found.groups()
    if kind == "queue":
        fix = f"delete it with 'rabbitmqctl delete_queue {name}'"
    else:
        fix = (
            f"delete it (rabbitmqadmin delete exchange name={name}, or the management UI) "
            "or use another name"
        )
    if vhost != "/":
        fix += f" (in vhost '{vhost}': add {'-p' if kind == 'queue' else '-V'} {vhost})"
    return f" [!] {error.reply_text}. To reset it, {fix}"


if __name__ == "__main__":
    main()
