"""Work queues over AMQP 1.0, sending side: a task to 'task_queue'; each '.' is a second of work.

Run: python new_task.py First task.    (then: python new_task.py Third task...)
"""

import os
import signal
import sys
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    Header,
    Message,
    OutcomeState,
    ProtocolError,
)


def main(params: ConnectionParameters) -> None:
    message = " ".join(sys.argv[1:]) or "Hello World!"
    with closing(Connection(params)) as connection:
        # A quorum queue: durable, replicated where there are nodes to replicate to.
        connection.management().queue("task_queue").quorum().queue().declare()
        publisher = connection.publisher_builder().queue("task_queue").build()
        # Durable: RabbitMQ must not lose it if it restarts (pika: delivery_mode Persistent).
        # An AMQP 1.0 message is not durable unless its header says so.
        result = publisher.publish(Message(message, header=Header(durable=True)))
        if result.outcome.state != OutcomeState.ACCEPTED:
            sys.exit(f" [!] RabbitMQ did not take the task: {result.outcome.state.value}")
        print(f" [x] Sent {message}")


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
