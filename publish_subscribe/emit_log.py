"""Publish/Subscribe, sending side: broadcast one log message to every receive_logs.py running.

Run: python emit_log.py [MESSAGE...]
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    message = " ".join(sys.argv[1:]) or "info: Hello World!"
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # A fanout exchange copies each message to every queue bound to it. Publishing to an
    # exchange that does not exist is an error, so the sender declares it too.
    channel.exchange_declare(exchange="logs", exchange_type="fanout", durable=True)
    channel.basic_publish(exchange="logs", routing_key="", body=message)  # fanout ignores keys
    connection.close()
    print(f" [x] Sent {message}")


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
