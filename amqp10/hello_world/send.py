"""Hello World over AMQP 1.0, sending side: one message to the queue 'hello'."""

import os
import signal
import sys
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    Message,
    OutcomeState,
    ProtocolError,
)


def main(params: ConnectionParameters) -> None:
    # Closed on the way out, however main() ends: the client's threads end with it.
    with closing(Connection(params)) as connection:
        # Topology goes through RabbitMQ's management over AMQP 1.0: the same quorum queue as
        # chapter 1's pika scripts declare, so the two sides of the track meet on it.
        connection.management().queue("hello").quorum().queue().declare()
        # A publisher is a link to an address: /queues/hello. No exchange, no routing key.
        publisher = connection.publisher_builder().queue("hello").build()
        result = publisher.publish(Message("Hello World!"))
        # RabbitMQ settles every message it is sent with an outcome: accepted means it has it.
        if result.outcome.state != OutcomeState.ACCEPTED:
            sys.exit(f" [!] RabbitMQ did not take the message: {result.outcome.state.value}")
        print(" [x] Sent 'Hello World!'")


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
