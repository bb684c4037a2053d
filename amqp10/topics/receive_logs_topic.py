"""Topics over AMQP 1.0, receiving side: print the log messages whose routing key matches your
patterns.

In a pattern, * stands for exactly one word and # for zero or more words.
Run: python receive_logs_topic.py "kern.*" "*.critical"    (stop it with Ctrl+C)
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
    binding_keys = sys.argv[1:]
    if not binding_keys:
        sys.exit("Usage: receive_logs_topic.py [binding_key]...")
    if any(len(key.encode()) > 255 for key in binding_keys):  # RabbitMQ's limit for a key
        sys.exit("Binding key is longer than 255 bytes")
    with closing(Connection(params)) as connection:
        management = connection.management()
        management.exchange("topic_logs").type(ExchangeType.TOPIC).declare()
        # Named by the client (client.gen-...), ours alone, gone when we go.
        queue_name = management.queue().exclusive().declare().name
        # One binding per pattern; a message that matches several is still delivered once.
        for binding_key in binding_keys:
            management.bind(source="topic_logs", destination=queue_name, binding_key=binding_key)

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
