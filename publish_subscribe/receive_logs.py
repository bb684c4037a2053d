"""Publish/Subscribe, receiving side: print every log message sent from now on.

Run: python receive_logs.py    (then python emit_log.py in another terminal)
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.exchange_declare(exchange="logs", exchange_type="fanout", durable=True)
    # queue="": the broker picks a fresh name. exclusive: the queue is this connection's own,
    # and RabbitMQ deletes it when we disconnect, so each receiver gets only new messages.
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    # The binding tells the exchange to copy its messages into our queue.
    channel.queue_bind(exchange="logs", queue=queue_name)

    def callback(ch, method, properties, body):
        print(f" [x] {body.decode(errors='backslashreplace')}")

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for logs. To exit press CTRL+C")
    channel.start_consuming()
    # start_consuming() returns only if RabbitMQ cancels our consumer: the queue was deleted.
    sys.exit(f" [!] RabbitMQ cancelled the consumer: was the queue {queue_name} deleted?")


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
