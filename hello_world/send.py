"""Hello World, sending side: put one message on the queue 'hello' (receive.py prints it)."""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # Both scripts declare the queue: declaring is idempotent, so whichever starts first makes
    # it. Durable, because RabbitMQ 4 deprecates non-durable queues that are not exclusive.
    channel.queue_declare(queue="hello", durable=True, arguments={"x-queue-type": "quorum"})
    # The default exchange "" hands a message to the queue named by its routing key.
    channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
    connection.close()  # returns once RabbitMQ has read the message
    print(" [x] Sent 'Hello World!'")


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
