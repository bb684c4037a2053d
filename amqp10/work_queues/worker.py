"""Work queues over AMQP 1.0, working side: take tasks from 'task_queue' one at a time,
accept each when done.

Run one or more: python worker.py    (then send tasks with new_task.py)
"""

import os
import queue
import signal
import sys
import time
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import Connection, ConnectionParameters, ProtocolError


def main(params: ConnectionParameters) -> None:
    with closing(Connection(params)) as connection:
        connection.management().queue("task_queue").quorum().queue().declare()

        # Fair dispatch: one credit, so RabbitMQ sends one task at a time, and the next once
        # this one is settled (pika: basic_qos(prefetch_count=1)). The client hands each task
        # over in a thread of its own; it is done here, in the main thread, where Ctrl+C arrives.
        tasks = queue.Queue()
        consumer = (
            connection.consumer_builder()
            .queue("task_queue")
            .initial_credits(1)
            .message_handler(lambda context, message: tasks.put((context, message)))
            .build()
        )
        print(" [*] Waiting for messages. To exit press CTRL+C")
        while consumer.is_open and connection.is_open:
            try:
                context, message = tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            body = message.body_as_bytes()
            # first_acquirer is false when a worker took the task before and never accepted it.
            first = not message.header or message.header.first_acquirer
            again = "" if first else " (redelivered)"
            print(f" [x] Received {body.decode(errors='backslashreplace')}{again}")
            time.sleep(body.count(b"."))
            # Accept after the work: should this worker die first, RabbitMQ gives the task to
            # another (pika: basic_ack).
            context.accept()
            print(" [x] Done")
        # The link ends without us closing it if the queue is deleted or the connection lost.
        sys.exit(" [!] RabbitMQ ended the consumer: queue deleted, or a task timed out?")


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
