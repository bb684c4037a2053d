"""RPC over AMQP 1.0, server side: answer fib(n) requests from 'rpc_queue' at each client's address.

Run one or more: python rpc_server.py    (then python rpc_client.py 30 in another terminal)
"""

import os
import queue
import signal
import sys
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    ApplicationProperties,
    Connection,
    ConnectionParameters,
    Message,
    OutcomeState,
    Properties,
    ProtocolError,
)

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


def main(params: ConnectionParameters) -> None:
    with closing(Connection(params)) as connection:
        connection.management().queue("rpc_queue").quorum().queue().declare()
        # A publisher with no address: each reply names its own, the client's reply address.
        replies = connection.publisher_builder().build()
        # One credit: one request at a time, so servers share the load (pika: prefetch_count=1).
        requests = queue.Queue()  # the work is done in the main thread, where Ctrl+C arrives
        builder = connection.consumer_builder().queue("rpc_queue").initial_credits(1)
        consumer = builder.message_handler(lambda *delivery: requests.put(delivery)).build()
        print(" [x] Awaiting RPC requests")
        while consumer.is_open and connection.is_open:
            try:
                context, request = requests.get(timeout=0.5)
            except queue.Empty:
                continue
            body = request.body_as_bytes().decode(errors="backslashreplace")
            response, error = answer(body)
            print(f" [!] {response}" if error else f" [.] fib({int(body)})")
            props = request.properties or Properties()
            if props.reply_to:  # at the client's address, naming the request: its message-id
                request_id = props.message_id or props.correlation_id  # pika's has only the latter
                properties = Properties(to=props.reply_to, correlation_id=request_id)
                flag = ApplicationProperties({"error": "true"}) if error else None  # pika: headers
                reply = Message(response, properties=properties, application_properties=flag)
                outcome = replies.publish(reply).outcome
                if outcome.state != OutcomeState.ACCEPTED:  # released: no queue has that address
                    why = outcome.error.description if outcome.error else "has the client gone?"
                    print(f" [!] The answer was {outcome.state.value}: {why}")
            # Accept after replying: a server that dies first leaves the request to another server.
            context.accept()
        # The link ends without us closing it if the queue is deleted or the connection lost.
        sys.exit(" [!] RabbitMQ ended the consumer: queue deleted, or a request timed out?")


if __name__ == "__main__":  # the same in every AMQP 1.0 script: where, Ctrl+C, errors in one line
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl+C
    url = os.getenv("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2F")
    try:
        at = urlsplit(url)
        where = (at.hostname or "localhost", at.port or 5672, unquote(at.path[1:]) or "/")
        login = (unquote(at.username or "guest"), unquote(at.password or "guest"))
        main(ConnectionParameters(*where, *login))
    except KeyboardInterrupt:
        print(" [*] Interrupted")
    except Exception as error:  # one line on stderr, saying where (never the password)
        old = isinstance(error, ProtocolError) and "SASL" in str(error)  # a 3.x broker
        why = "AMQP 1.0 chapters need RabbitMQ 4.0 or newer" if old else repr(error)
        sys.exit(f" [!] {why} at {url.rpartition('@')[2]} (run 'make doctor' to diagnose)")
