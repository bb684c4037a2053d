"""Dead letters: chapter 2's worker, with tasks it cannot do. It rejects them, and RabbitMQ
dead-letters them where a policy says (or drops them); --requeue gives them back instead.

Run: python poison_worker.py [--requeue]    (then: python ../work_queues/new_task.py A poison task)
"""

import os
import signal
import sys
import time

import pika


def work(body: bytes) -> None:
    """Chapter 2's work: a second per '.'. A task it cannot do raises, as bad input would."""
    if b"poison" in body.lower():
        raise ValueError("cannot do a poison task")
    time.sleep(body.count(b"."))


def main(params: pika.URLParameters) -> None:
    if sys.argv[1:] not in ([], ["--requeue"]):
        sys.exit("Usage: poison_worker.py [--requeue]")
    requeue = sys.argv[1:] == ["--requeue"]
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    # Where the 'dead-letters' policy sends what task_queue rejects (see the notes). Declared
    # here too: a dead letter routed to no queue is dropped. A classic queue: a quorum queue
    # would count each look parking_lot.py takes at a message as a delivery.
    channel.queue_declare(queue="parking_lot", durable=True, arguments={"x-queue-type": "classic"})

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode(errors='backslashreplace')}")
        try:
            work(body)
        except Exception as error:
            # requeue=True: back to the queue, for this or another worker to fail on again.
            # requeue=False: dead-lettered where the queue's policy says; without one, dropped.
            ch.basic_reject(delivery_tag=method.delivery_tag, requeue=requeue)
            print(f" [!] Failed: {error!r}; {'given back' if requeue else 'rejected'}")
            return
        ch.basic_ack(delivery_tag=method.delivery_tag)
        print(" [x] Done")

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    channel.start_consuming()
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
