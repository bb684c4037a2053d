"""Topics, sending side: send a log message with a routing key of dotted words.

Run: python emit_log_topic.py [ROUTING_KEY] [MESSAGE...]    e.g. kern.critical "A critical error"
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    if len(routing_key.encode()) > 255:  # AMQP carries a routing key in at most 255 bytes
        sys.exit(f"Routing key is longer than 255 bytes: {routing_key[:20]}...")
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # A topic exchange matches the words of the routing key against each binding's pattern.
    channel.exchange_declare(exchange="topic_logs", exchange_type="topic", durable=True)
    channel.basic_publish(exchange="topic_logs", routing_key=routing_key, body=message)
    connection.close()
    print(f" [x] Sent {routing_key}:{message}")


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
