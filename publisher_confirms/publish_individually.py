"""Publisher confirms, strategy 1: publish one message, wait for its confirm, then the next.

Run: python publish_individually.py [N]   (N persistent messages, 50,000 unless given)
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

QUEUE = "confirms_individually"  # one queue per strategy: each run's messages stay apart


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Publish N messages, one confirm at a time.")
    parser.add_argument("n", nargs="?", type=positive_int, default=50_000, metavar="N")
    n = parser.parse_args().n
    with rabbitmq_connection() as connection:
        channel = connection.channel()
        # Durable quorum queue and persistent messages: the broker keeps them on disk. Emptied
        # first, so that after a run the queue holds exactly the messages this run published.
        channel.queue_declare(queue=QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_purge(queue=QUEUE)
        # Confirm mode: from now on the broker confirms every message once it has taken
        # responsibility for it (for a quorum queue: written to disk on a majority of nodes).
        channel.confirm_delivery()
        print(f" [*] Publishing {n:,} messages to '{QUEUE}', each waiting for its confirm")
        started = time.perf_counter()
        for i in range(n):
            body = f"individually-{i}"
            try:
                # In confirm mode, BlockingChannel.basic_publish returns only once the broker
                # has confirmed this message: a full round trip, and a disk write, per message.
                channel.basic_publish(
                    exchange="",
                    routing_key=QUEUE,
                    body=body,
                    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                )
            except pika.exceptions.NackError:
                # A nack: the broker did not take the message. Give up, as the official
                # chapter's waitForConfirmsOrDie does; publish_async.py publishes again instead.
                sys.exit(f" [!] The broker nacked {body}: {i:,} of {n:,} messages confirmed")
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f" [x] {n:,} of {n:,} messages confirmed")
        print(f"Published {n:,} messages individually in {elapsed_ms:,.0f} ms")


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
