"""RPC, client side: ask an rpc_server.py for fib(N) and wait for the answer.

Run: python rpc_client.py [N] [--timeout SECONDS]    (start rpc_server.py first)
"""

import argparse
import os
import signal
import sys
import time
import uuid

import pika


class FibonacciRpcClient:
    """Sends fib(n) requests to 'rpc_queue' and waits for the reply that matches each."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self.connection = connection
        self.channel = connection.channel()
        # The callback queue: server-named and exclusive, so only this client reads the
        # replies, and RabbitMQ deletes it when the client disconnects.
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True
        )
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        # A reply to an earlier request (a late one, or one sent again) may land here too.
        if self.corr_id == props.correlation_id:
            self.response = (props, body)

    def call(self, n: int, timeout: float):
        """Publish the request; the reply (properties, body), or None after timeout seconds."""
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key="rpc_queue",
            properties=pika.BasicProperties(
                reply_to=self.callback_queue, correlation_id=self.corr_id
            ),
            body=str(n),
        )
        deadline = time.monotonic() + timeout
        while self.response is None and (remaining := deadline - time.monotonic()) > 0:
            # Sleeps until a frame arrives (the reply runs on_response) or the time is up.
            self.connection.process_data_events(time_limit=remaining)
        return self.response


def main(params: pika.URLParameters) -> None:
    parser = argparse.ArgumentParser(description="Ask rpc_server.py for fib(N).")
    parser.add_argument("n", nargs="?", type=int, default=30, metavar="N")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    if args.n < 0:
        parser.error(f"argument N: not a non-negative integer: '{args.n}'")
    fibonacci_rpc = FibonacciRpcClient(pika.BlockingConnection(params))
    print(f" [x] Requesting fib({args.n})")
    reply = fibonacci_rpc.call(args.n, args.timeout)
    if reply is None:
        sys.exit(f" [!] No answer within {args.timeout:g} s: is rpc_server.py running?")
    props, body = reply
    if (props.headers or {}).get("error") == "true":
        sys.exit(f" [!] Server error: {body.decode(errors='backslashreplace')}")
    print(f" [.] Got {body.decode()}")


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
