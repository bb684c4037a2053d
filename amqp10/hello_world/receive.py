"""Hello World over AMQP 1.0, receiving side: print every message that arrives on 'hello'."""

import os
import signal
import sys
import time
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import Connection, ConnectionParameters, ProtocolError


def main(params: ConnectionParameters) -> None:
    # Closed on the way out, however main() ends: the client's threads end with it.
    with closing(Connection(params)) as connection:
        # The same declaration as send.py, so the queue exists whichever script starts first.
        connection.management().queue("hello").quorum().queue().declare()

        def on_message(context, message):
            # Settle the delivery as accepted: RabbitMQ may forget the message (pika: basic_ack).
            # First, then print: a Ctrl+C right after the line cannot leave it unsettled.
            context.accept()
            print(f" [x] Received {message.body_as_bytes().decode(errors='backslashreplace')}")

        # Said before the link opens: from then on, on_message prints, in the client's own thread.
        print(" [*] Waiting for messages. To exit press CTRL+C")
        # A consumer is a link from /queues/hello; messages already waiting come at once.
        consumer = connection.consumer_builder().queue("hello").message_handler(on_message).build()
        while consumer.is_open and connection.is_open:
            time.sleep(0.5)  # Ctrl+C arrives here, in the main thread
        # The link ends without us closing it if the queue is deleted or the connection lost.
        sys.exit(" [!] RabbitMQ ended the consumer: was the queue 'hello' deleted?")


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
