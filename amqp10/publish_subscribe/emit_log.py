"""Publish/Subscribe over AMQP 1.0, sending side: broadcast one log message to every
receive_logs.py running.

Run: python emit_log.py [MESSAGE...]
"""

import os
import signal
import sys
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    ExchangeType,
    Message,
    OutcomeState,
    ProtocolError,
)


def main(params: ConnectionParameters) -> None:
    message = " ".join(sys.argv[1:]) or "info: Hello World!"
    with closing(Connection(params)) as connection:
        # A fanout exchange copies each message to every queue bound to it; the sender declares
        # it too: 'logs', durable, as the pika chapter declares it (this client declares no other).
        connection.management().exchange("logs").type(ExchangeType.FANOUT).declare()
        # Unlike pika, the exchange is the publisher's address, /exchanges/logs (no key: fanout
        # ignores it), and RabbitMQ answers each message with an outcome: 'released' when no
        # queue took it, which pika's basic_publish never learns.
        publisher = connection.publisher_builder().exchange("logs").build()
        state = publisher.publish(Message(message)).outcome.state
        if state not in (OutcomeState.ACCEPTED, OutcomeState.RELEASED):
            sys.exit(f" [!] RabbitMQ did not take the message: {state.value}")
        print(f" [x] Sent {message}")
        if state == OutcomeState.RELEASED:
            print(" [!] Released: no queue is bound to 'logs'", file=sys.stderr)


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
