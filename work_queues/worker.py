"""Work queues, working side: take tasks from 'task_queue' one at a time, ack each when done.

Run one or more: python worker.py    (then send tasks with new_task.py)
"""

import os
import signal
import sys
import time

import pika


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})

    def callback(ch, method, properties, body):
        again = " (redelivered)" if method.redelivered else ""  # a worker took it, never acked
        print(f" [x] Received {body.decode(errors='backslashreplace')}{again}")
        time.sleep(body.count(b"."))
        print(" [x] Done")
        # Ack after the work: should this worker die first, RabbitMQ gives the task to another.
        ch.basic_ack(delivery_tag=method.delivery_tag)

    # Fair dispatch: at most one unacknowledged task per worker; the next goes to a free one.
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    channel.start_consuming()
    # start_consuming() returns only if RabbitMQ cancels our consumer: the queue was deleted,
    # or (RabbitMQ 4.3) a task stayed unacknowledged longer than the consumer timeout.
    sys.exit(" [!] RabbitMQ cancelled the consumer: queue deleted, or a task timed out?")


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
