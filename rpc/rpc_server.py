"""RPC, server side: answer fib(n) requests from 'rpc_queue' on each client's reply queue.

Run one or more: python rpc_server.py    (then python rpc_client.py 30 in another terminal)
"""

import os
import signal
import sys

import pika

MAX_N = 35  # the naive fib(35) already takes a second or more


def fib(n: int) -> int:
    """Slow on purpose: the naive recursion stands in for real work."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def answer(text: str) -> tuple[str, bool]:
    """The reply to a request's body, and whether it is an error."""
    if not (text.isascii() and text.isdecimal()):
        return f"not a non-negative integer: {text!r}", True
    if int(text) > MAX_N:
        return f"n={int(text)} is too large: this server computes fib(n) for n <= {MAX_N}", True
    return str(fib(int(text))), False


def main(params: pika.URLParameters) -> None:
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(queue="rpc_queue", durable=True, arguments={"x-queue-type": "quorum"})

    def on_request(ch, method, props, body):
        response, error = answer(body.decode(errors="backslashreplace"))
        print(f" [!] {response}" if error else f" [.] fib({int(body)})")
        if props.reply_to:  # reply to the client's own queue, with its correlation_id to match
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(
                    correlation_id=props.correlation_id,
                    headers={"error": "true"} if error else None,
                ),
                body=response,
            )
        # Ack after replying: a server that dies first leaves the request to another server.
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)  # one request at a time: servers share the load
    channel.basic_consume(queue="rpc_queue", on_message_callback=on_request)
    print(" [x] Awaiting RPC requests")
    channel.start_consuming()
    # start_consuming() returns only if RabbitMQ cancels our consumer: the queue was deleted,
    # or (RabbitMQ 4.3) a request stayed unacknowledged longer than the consumer timeout.
    sys.exit(" [!] RabbitMQ cancelled the consumer: queue deleted, or a request timed out?")


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
