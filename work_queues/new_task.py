"""Work queues, sending side: put a task on 'task_queue'; each '.' in it is a second of work.

Run: python new_task.py First task.    (then: python new_task.py Third task...)
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    message = " ".join(sys.argv[1:]) or "Hello World!"
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # A durable queue survives a broker restart; a quorum queue keeps its messages on disk.
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_publish(
        exchange="",
        routing_key="task_queue",
        body=message,
        # Persistent: a classic queue too writes the message to disk, not only to memory.
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    connection.close()  # returns once RabbitMQ has read the task
    print(f" [x] Sent {message}")


if __name__ == "__main__":  # the same in every chapter script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    url = os.getenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    try:
        params = pika.URLParameters(url)
        params.stack_timeout = 5  # give up on a broker that does not answer in 5 s, or blocks us
        params.blocked_connection_timeout = params.blocked_connection_timeout or 30  # for 30 s
        main(params)
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        alarm = isinstance(error, pika.exceptions.ConnectionBlockedTimeout)
        why = "RabbitMQ is blocking publishers: a resource alarm" if alarm else repr(error)
        sys.exit(f" [!] {why} at {url.rpartition('@')[2]} (run 'make doctor' to diagnose)")
