"""Publisher confirms, the answers besides a plain ack: a message returned, and a nack.

Run: python returns_and_nacks.py
https://www.rabbitmq.com/docs/confirms#publisher-confirms
"""

import contextlib
import os
import re
import signal
import sys
import urllib.parse
from collections.abc import Iterator

import pika

NOWHERE = "no_such_queue"  # the default exchange routes by queue name, and no queue has this one
FULL_QUEUE = "confirms_full"
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def main() -> None:
    with rabbitmq_connection() as connection:
        channel = connection.channel()
        channel.confirm_delivery()

        # 1. A message no queue takes is dropped, and still confirmed: the broker has done all
        # it was asked. A confirm alone does not say that a queue has the message.
        channel.basic_publish(exchange="", routing_key=NOWHERE, body="Anyone?")
        print(" [x] 'Anyone?' was confirmed and dropped: no queue took it")

        # 2. mandatory=True: the broker returns such a message (Basic.Return) before the
        # confirm; pika's BlockingChannel then raises UnroutableError.
        try:
            channel.basic_publish(exchange="", routing_key=NOWHERE, body="Hello?", mandatory=True)
        except pika.exceptions.UnroutableError as error:
            back = error.messages[0].method  # the Basic.Return: why the message came back
            print(f" [!] 'Hello?' (mandatory) was returned: {back.reply_code} {back.reply_text}")

        # 3. A nack: the broker says it did not take the message. This queue holds one message
        # and refuses more (reject-publish). It is a classic queue because a quorum queue
        # checks its limit after taking a message, so it may take one more before nacking.
        channel.queue_declare(
            queue=FULL_QUEUE,
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-max-length": 1,
                "x-overflow": "reject-publish",
            },
        )
        channel.queue_purge(queue=FULL_QUEUE)
        for body in ("first", "second"):
            try:
                channel.basic_publish(
                    exchange="", routing_key=FULL_QUEUE, body=body, properties=PERSISTENT
                )
                print(f" [x] '{body}' was confirmed: queue '{FULL_QUEUE}' has it")
            except pika.exceptions.NackError:
                print(f" [!] '{body}' was nacked: queue '{FULL_QUEUE}' is full (max length 1)")


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
