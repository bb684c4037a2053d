"""Dead letters: a worker that tries a failed task again later, a few times, then parks it.

Run: python retry_worker.py    (then: python ../work_queues/new_task.py A poison task)
"""

import os
import signal
import sys
import time

import pika

ATTEMPTS = 3  # a task is tried this many times, then parked
WAIT_MS = 2000  # how long a failed task waits before its next attempt
# What RabbitMQ adds when it dead-letters a message. A copy starts without it: RabbitMQ 4
# ignores an x-death that a client publishes, so the attempts are counted in a header of ours.
HISTORY = ("x-death", "x-first-death-", "x-last-death-")


def work(body: bytes) -> None:
    """Chapter 2's work: a second per '.'. A task it cannot do raises, as bad input would."""
    if b"poison" in body.lower():
        raise ValueError("cannot do a poison task")
    time.sleep(body.count(b"."))


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    # The wait: a queue nobody consumes. A task left there WAIT_MS expires, and expired
    # messages are dead-lettered, here back to task_queue. Set by arguments, part of the
    # queue: to change them, delete the queue (a policy could set them too, and change).
    channel.queue_declare(
        queue="task_queue_wait",
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": WAIT_MS,
            "x-dead-letter-exchange": "",  # the default exchange: the routing key is a queue
            "x-dead-letter-routing-key": "task_queue",
        },
    )
    classic = {"x-queue-type": "classic"}  # see poison_worker.py
    channel.queue_declare(queue="parking_lot", durable=True, arguments=classic)
    channel.confirm_delivery()  # a copy is acked by RabbitMQ before its original is acked here

    def callback(ch, method, properties, body):
        headers = properties.headers or {}
        attempt = headers.get("x-attempts", 0) + 1
        again = f" (attempt {attempt} of {ATTEMPTS})" if attempt > 1 else ""
        print(f" [x] Received {body.decode(errors='backslashreplace')}{again}")
        try:
            work(body)
            outcome = " [x] Done"
        except Exception as error:
            kept = {k: v for k, v in headers.items() if not k.startswith(HISTORY)}
            properties.headers = {**kept, "x-attempts": attempt, "x-error": repr(error)}
            if attempt < ATTEMPTS:  # a copy to wait, then to come back
                ch.basic_publish("", "task_queue_wait", body, properties, mandatory=True)
                outcome = f" [!] Failed: {error!r}; trying again in {WAIT_MS / 1000:g} s"
            else:  # a copy to the parking lot, for a person to look at
                ch.basic_publish("", "parking_lot", body, properties, mandatory=True)
                outcome = f" [!] Failed: {error!r}; parked after {attempt} attempts"
        # Acked once its copy is safe: should this worker die in between, the task comes
        # again and may be copied twice; it is never lost.
        ch.basic_ack(delivery_tag=method.delivery_tag)
        print(outcome)  # once acked: a worker stopped after this line holds nothing

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
