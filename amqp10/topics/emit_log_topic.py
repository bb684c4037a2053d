"""Topics over AMQP 1.0, sending side: send a log message with a routing key of dotted words.

Run: python emit_log_topic.py [ROUTING_KEY] [MESSAGE...]    e.g. kern.critical "A critical error"
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
    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    if len(routing_key.encode()) > 255:  # RabbitMQ binds no key longer than 255 bytes
        sys.exit(f"Routing key is longer than 255 bytes: {routing_key[:20]}...")
    with closing(Connection(params)) as connection:
        # A topic exchange matches the words of the routing key against each binding's pattern.
        connection.management().exchange("topic_logs").type(ExchangeType.TOPIC).declare()
        # Unlike pika, the routing key is part of the publisher's address,
        # /exchanges/topic_logs/KEY, and RabbitMQ answers each message with an outcome:
        # 'released' when no queue took it, which pika's basic_publish never learns.
        publisher = connection.publisher_builder().exchange("topic_logs").key(routing_key).build()
        state = publisher.publish(Message(message)).outcome.state
        if state not in (OutcomeState.ACCEPTED, OutcomeState.RELEASED):
            sys.exit(f" [!] RabbitMQ did not take the message: {state.value}")
        print(f" [x] Sent {routing_key}:{message}")
        if state == OutcomeState.RELEASED:
            print(f" [!] Released: no binding matches {routing_key!r}", file=sys.stderr)


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
