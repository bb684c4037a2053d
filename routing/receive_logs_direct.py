"""Routing, receiving side: print only the log messages of the severities you name.

Run: python receive_logs_direct.py warning error    (stop it with Ctrl+C)
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    severities = sys.argv[1:]
    if not severities:
        sys.exit("Usage: receive_logs_direct.py [info] [warning] [error]")
    if any(len(severity.encode()) > 255 for severity in severities):  # AMQP's limit for a key
        sys.exit("Binding key is longer than 255 bytes")
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.exchange_declare(exchange="direct_logs", exchange_type="direct", durable=True)
    result = channel.queue_declare(queue="", exclusive=True)  # ours alone, gone when we go
    queue_name = result.method.queue
    # One binding per severity: the queue gets every message whose key is one of them.
    for severity in severities:
        channel.queue_bind(exchange="direct_logs", queue=queue_name, routing_key=severity)

    def callback(ch, method, properties, body):
        print(f" [x] {method.routing_key}:{body.decode(errors='backslashreplace')}")

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
