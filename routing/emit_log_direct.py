"""Routing, sending side: send a log message with its severity as the routing key.

Run: python emit_log_direct.py [SEVERITY] [MESSAGE...]    e.g. error "Run. Run. Or it will explode."
"""

import os
import signal
import sys

import pika


def main(params: pika.URLParameters) -> None:
    severity = sys.argv[1] if len(sys.argv) > 1 else "info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    if len(severity.encode()) > 255:  # AMQP carries a routing key in at most 255 bytes
        sys.exit(f"Routing key is longer than 255 bytes: {severity[:20]}...")
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    # A direct exchange delivers a message to the queues bound with exactly its routing key.
    channel.exchange_declare(exchange="direct_logs", exchange_type="direct", durable=True)
    channel.basic_publish(exchange="direct_logs", routing_key=severity, body=message)
    connection.close()
    print(f" [x] Sent {severity}:{message}")


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
