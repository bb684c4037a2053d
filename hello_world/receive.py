"""Hello World, receiving side: print every message that arrives on the queue 'hello'."""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # The same declaration as send.py, so the queue exists whichever script starts first.
    channel.queue_declare(queue="hello", durable=True, arguments={"x-queue-type": "quorum"})

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode(errors='backslashreplace')}")

    # auto_ack: RabbitMQ forgets each message as soon as it has delivered it to us.
    channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
    print(" [*] Waiting for messages. To exit press CTRL+C")
    channel.start_consuming()
    # start_consuming() returns only if RabbitMQ cancels our consumer: the queue was deleted.
    sys.exit(" [!] RabbitMQ cancelled the consumer: was the queue 'hello' deleted?")


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
