"""Resilient publisher: chapter 2's new_task.py, made to lose no task when the broker goes away.

Run: python resilient_new_task.py First task.    (with no task: a task per line typed, or piped)
"""

import os
import random
import signal
import sys
import time
import uuid

import pika


def connect(params: pika.URLParameters):
    channel = pika.BlockingConnection(params).channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()  # basic_publish now returns once RabbitMQ has the task safe
    return channel


def main(params: pika.URLParameters) -> None:
    channel = connect(params)  # the first connection must work: a typo fails at once
    if len(sys.argv) > 1:
        tasks = [" ".join(sys.argv[1:])]
    else:
        print(" [*] Type a task per line, Enter to send it. To exit press CTRL+D")
        tasks = (line.strip() for line in sys.stdin if line.strip())
    for task in tasks:
        # Its id goes with every attempt: a task published twice is known as one by its id.
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, message_id=str(uuid.uuid4())
        )
        attempt = 0
        while True:
            try:
                channel = channel if channel.is_open else connect(params)
                channel.basic_publish("", "task_queue", task, properties)
                break  # confirmed: RabbitMQ has it
            except pika.exceptions.AMQPError as error:
                # Lost before its confirm, or nacked: RabbitMQ may or may not have it; send again.
                pause = min(15, 2**attempt) * random.uniform(0.5, 1)  # capped, jittered backoff
                attempt += 1
                print(f" [!] {error!r}; sending {task!r} again in {pause:.1f} s")
                time.sleep(pause)
        print(f" [x] Sent {task}")
    channel.connection.close()


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
