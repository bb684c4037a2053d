"""Resilient worker: chapter 2's worker, made to survive long tasks, restarts and Ctrl+C.

Run one or more: python resilient_worker.py    (then send tasks with resilient_new_task.py)
"""

import os
import random
import signal
import sys
import threading
import time

import pika

done: set[str] = set()  # the message_id of every task done here: one delivered again is skipped


def work(channel, method, properties, body) -> None:
    time.sleep(body.count(b"."))  # in a thread of its own: the main thread answers heartbeats
    done.add(properties.message_id)
    print(" [x] Done")
    try:  # the one pika call another thread may make: the ack runs on the connection's thread
        channel.connection.add_callback_threadsafe(lambda: channel.basic_ack(method.delivery_tag))
    except pika.exceptions.ConnectionWrongStateError:  # closed meanwhile: it will come again
        print(" [!] The connection is gone: the task stays unacknowledged, RabbitMQ gives it again")


def consume(connection: pika.BlockingConnection, in_hand: list[threading.Thread]) -> str:
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_qos(prefetch_count=1)

    def on_message(ch, method, props, body):
        again = " (redelivered)" if method.redelivered else ""
        print(f" [x] Received {body.decode(errors='backslashreplace')}{again}")
        if props.message_id and props.message_id in done:  # its ack was lost: not twice
            print(" [x] Done already: acked without doing it again")
            return ch.basic_ack(method.delivery_tag)
        in_hand[:] = [threading.Thread(target=work, args=(ch, method, props, body), daemon=True)]
        in_hand[0].start()

    channel.basic_consume(queue="task_queue", on_message_callback=on_message)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    try:
        channel.start_consuming()  # returns if RabbitMQ cancels the consumer (4.3: timed out)
        return "RabbitMQ cancelled the consumer: queue deleted, or a task timed out?"
    except pika.exceptions.AMQPError as error:  # a restart, missed heartbeats, a timed-out ack
        return f"{error!r}"
    except KeyboardInterrupt:  # or SIGTERM: take no more tasks, finish and ack the one in hand
        channel.stop_consuming()
        if in_hand and in_hand[0].is_alive():
            print(" [*] Finishing the task in hand first (CTRL+C again to give it back)")
        while in_hand and in_hand[0].is_alive():
            connection.process_data_events(time_limit=0.2)  # heartbeats, then the ack
        connection.process_data_events(time_limit=0)
        raise


def main(params: pika.URLParameters) -> None:
    in_hand: list[threading.Thread] = []  # the task being worked on, if any
    # The first connection must work: a typo in RABBITMQ_URL fails at once, in one line.
    with pika.BlockingConnection(params) as connection:  # closed on the way out, if still open
        why, attempt = consume(connection, in_hand), 0
    while True:
        if in_hand:  # finish the task in hand; its ack is lost with the channel: it comes again
            in_hand.pop().join()
        pause = min(15, 2**attempt) * random.uniform(0.5, 1)  # capped, jittered backoff
        print(f" [!] {why}; connecting again in {pause:.1f} s")
        time.sleep(pause)
        try:
            with pika.BlockingConnection(params) as connection:
                why, attempt = consume(connection, in_hand), 0
        except pika.exceptions.AMQPError as error:  # not back yet
            why, attempt = f"{error!r}", attempt + 1


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
