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
stopping = threading.Event()  # set by Ctrl+C or SIGTERM; looked at between pika's calls


def consume(connection: pika.BlockingConnection, in_hand: list[threading.Thread]) -> str:
    channel = connection.channel()
    channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_qos(prefetch_count=1)

    def work(method, properties, body) -> None:  # in a thread of its own
        time.sleep(body.count(b"."))  # meanwhile, the main thread goes on answering heartbeats
        done.add(properties.message_id)
        print(" [x] Done")
        try:  # the one pika call another thread may make: the ack runs on the I/O thread
            connection.add_callback_threadsafe(lambda: channel.basic_ack(method.delivery_tag))
        except pika.exceptions.ConnectionWrongStateError:  # closed meanwhile: it comes again
            print(" [!] The connection is gone: no ack; RabbitMQ gives the task again")

    def on_message(ch, method, props, body):
        print(f" [x] Received {body.decode(errors='backslashreplace')}")
        if props.message_id and props.message_id in done:  # its ack was lost: not twice
            print(" [x] Done already: acked without doing it again")
            return ch.basic_ack(method.delivery_tag)
        in_hand[:] = [threading.Thread(target=work, args=(method, props, body), daemon=True)]
        in_hand[0].start()

    channel.basic_consume(queue="task_queue", on_message_callback=on_message)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    try:  # until RabbitMQ cancels the consumer, or Ctrl+C and the task in hand is acked
        while channel.consumer_tags or (stopping.is_set() and in_hand and in_hand[0].is_alive()):
            connection.process_data_events(time_limit=0.2)  # heartbeats, tasks, acks
            if stopping.is_set() and channel.consumer_tags:  # take no more tasks
                channel.stop_consuming()
                signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl+C again: now
                if in_hand and in_hand[0].is_alive():
                    print(" [*] Finishing the task in hand first (CTRL+C again to give it back)")
        connection.process_data_events(time_limit=0)  # the last ack, if it came just now
    except pika.exceptions.AMQPError as error:  # a restart, missed heartbeats, a timed-out ack
        return f"{error!r}"
    return "RabbitMQ ended the consumer: queue deleted, or a task timed out?"


def main(params: pika.URLParameters) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):  # a flag: no KeyboardInterrupt inside pika
        signal.signal(signum, lambda *_: stopping.set())
    in_hand: list[threading.Thread] = []  # the task being worked on, if any
    with pika.BlockingConnection(params) as connection:  # the first must work: a typo fails now
        why, attempt = consume(connection, in_hand), 0
    while not stopping.is_set():
        if in_hand:  # finish the task in hand; its ack is lost with the channel: it comes again
            in_hand.pop().join()
        pause = min(15, 2**attempt) * random.uniform(0.5, 1)  # capped, jittered backoff
        print(f" [!] {why}; connecting again in {pause:.1f} s")
        stopping.wait(pause)  # cut short by Ctrl+C or SIGTERM
        try:
            with pika.BlockingConnection(params) as connection:
                why, attempt = consume(connection, in_hand), 0
        except pika.exceptions.AMQPError as error:  # not back yet
            why, attempt = f"{error!r}", attempt + 1
    raise KeyboardInterrupt  # the common tail below says " [*] Interrupted"


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
