"""Routing over AMQP 1.0, sending side: send a log message with its severity as the routing key.

Run: python emit_log_direct.py [SEVERITY] [MESSAGE...]    e.g. error "Run. Run. Or it will explode."
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
    severity = sys.argv[1] if len(sys.argv) > 1 else "info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    if len(severity.encode()) > 255:  # RabbitMQ binds no key longer than 255 bytes
        sys.exit(f"Routing key is longer than 255 bytes: {severity[:20]}...")
    with closing(Connection(params)) as connection:
        # A direct exchange delivers a message to the queues bound with exactly its routing key.
        connection.management().exchange("direct_logs").type(ExchangeType.DIRECT).declare()
        # Unlike pika, the routing key is part of the publisher's address,
        # /exchanges/direct_logs/SEVERITY, and RabbitMQ answers each message with an outcome:
        # 'released' when no queue took it, which pika's basic_publish never learns.
        publisher = connection.publisher_builder().exchange("direct_logs").key(severity).build()
        state = publisher.publish(Message(message)).outcome.state
        if state not in (OutcomeState.ACCEPTED, OutcomeState.RELEASED):
            sys.exit(f" [!] RabbitMQ did not take the message: {state.value}")
        print(f" [x] Sent {severity}:{message}")
        if state == OutcomeState.RELEASED:
            print(f" [!] Released: no queue is bound to {severity!r}", file=sys.stderr)


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
