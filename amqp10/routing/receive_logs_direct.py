"""Routing over AMQP 1.0, receiving side: print only the log messages of the severities you name.

Run: python receive_logs_direct.py warning error    (stop it with Ctrl+C)
"""

import os
import signal
import sys
import time
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    ConsumerSettleStrategy,
    ExchangeType,
    ProtocolError,
)


def main(params: ConnectionParameters) -> None:
    severities = sys.argv[1:]
    if not severities:
        sys.exit("Usage: receive_logs_direct.py [info] [warning] [error]")
    if any(len(severity.encode()) > 255 for severity in severities):  # RabbitMQ's limit
        sys.exit("Binding key is longer than 255 bytes")
    with closing(Connection(params)) as connection:
        management = connection.management()
        management.exchange("direct_logs").type(ExchangeType.DIRECT).declare()
        # Named by the client (client.gen-...), ours alone, gone when we go.
        queue_name = management.queue().exclusive().declare().name
        # One binding per severity: the queue gets every message whose key is one of them.
        for severity in severities:
            management.bind(source="direct_logs", destination=queue_name, binding_key=severity)

        def on_message(context, message):
            # RabbitMQ tells where a message came from in its annotations (pika: method).
            key = message.message_annotations.value["x-routing-key"]
            print(f" [x] {key}:{message.body_as_bytes().decode(errors='backslashreplace')}")

        # Presettled: RabbitMQ forgets each message as it sends it (pika: auto_ack=True).
        consumer = (
            connection.consumer_builder()
            .queue(queue_name)
            .settle_strategy(ConsumerSettleStrategy.PRESETTLED)
            .message_handler(on_message)
            .build()
        )
        print(" [*] Waiting for logs. To exit press CTRL+C")
        while consumer.is_open and connection.is_open:
            time.sleep(0.5)  # Ctrl+C arrives here; on_message runs in the client's own thread
        # The link ends without us closing it if the queue is deleted or the connection lost.
        sys.exit(f" [!] RabbitMQ ended the consumer: was the queue {queue_name} deleted?")


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
