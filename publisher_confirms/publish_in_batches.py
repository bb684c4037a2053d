"""Publisher confirms, strategy 2: publish a batch of messages, wait for all its confirms, repeat.

Run: python publish_in_batches.py [N] [--batch-size 100]   (N is 50,000 unless given)
https://www.rabbitmq.com/tutorials/tutorial-seven-java
"""

import argparse
import contextlib
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

QUEUE = "confirms_batches"  # one queue per strategy: each run's messages stay apart


class BatchPublisher:
    """Publishes a batch, and the next one once the broker has confirmed the whole batch.

    pika's BlockingChannel waits for the confirm of every single message, so waiting for a
    batch needs the asynchronous API: a callback counts the confirms as they arrive.
    """

    def __init__(self, total: int, batch_size: int) -> None:
        self.total, self.batch_size = total, batch_size
        self.published = 0
        self.outstanding: set[int] = set()  # delivery tags of the batch not yet confirmed
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
        """Publish everything, batch by batch; the seconds that took."""
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
        self.publish_batch()

    def publish_batch(self) -> None:
        first = self.published
        for i in range(first, min(first + self.batch_size, self.total)):
            self.channel.basic_publish(
                exchange="",
                routing_key=QUEUE,
                body=f"batches-{i}",
                properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            )
            # The broker numbers the messages of a channel in confirm mode 1, 2, 3, ...
            self.published = i + 1
            self.outstanding.add(self.published)

    def on_confirm(self, frame: pika.frame.Method) -> None:
        tag = frame.method.delivery_tag
        if isinstance(frame.method, pika.spec.Basic.Nack):
            # Give up, as the official chapter's waitForConfirmsOrDie does.
            # (Message batches-{i} went out with delivery tag i + 1.)
            confirmed = self.published - len(self.outstanding)
            sys.exit(
                f" [!] The broker nacked batches-{tag - 1}: "
                f"{confirmed:,} of {self.total:,} messages confirmed"
            )
        if frame.method.multiple:
            # multiple=True confirms every message up to and including this tag.
            self.outstanding = {t for t in self.outstanding if t > tag}
        else:
            self.outstanding.discard(tag)
        if self.outstanding:
            return  # the batch is not confirmed yet
        if self.published < self.total:
            self.publish_batch()
        else:
            self.elapsed = time.perf_counter() - self.started
            self.connection.close()

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
    parser = argparse.ArgumentParser(description="Publish N messages, confirmed batch by batch.")
    parser.add_argument("n", nargs="?", type=positive_int, default=50_000, metavar="N")
    parser.add_argument("--batch-size", type=positive_int, default=100, metavar="SIZE")
    args = parser.parse_args()
    with rabbitmq_connection() as connection:
        channel = connection.channel()
        # Set up on the blocking API, as in every chapter: durable quorum queue, emptied first
        # so that after a run it holds exactly the messages this run published.
        channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_purge(queue=QUEUE)
        print(
            f" [*] Publishing {args.n:,} messages to '{QUEUE}', "
            f"waiting for confirms every {args.batch_size:,}"
        )
        publisher = BatchPublisher(args.n, args.batch_size)
        elapsed_ms = publisher.run() * 1000
        print(f" [x] {args.n:,} of {args.n:,} messages confirmed")
        print(f"Published {args.n:,} messages in batches in {elapsed_ms:,.0f} ms")


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
