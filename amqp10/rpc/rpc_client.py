"""RPC over AMQP 1.0, client side: ask an rpc_server.py for fib(N) and wait for the answer.

Run: python rpc_client.py [N] [--timeout SECONDS]    (start rpc_server.py first)
"""

import argparse
import os
import queue
import signal
import sys
import time
import uuid
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    Message,
    OutcomeState,
    Properties,
    ProtocolError,
)


def main(params: ConnectionParameters) -> None:
    parser = argparse.ArgumentParser(description="Ask rpc_server.py for fib(N).")
    parser.add_argument("n", nargs="?", type=int, default=30, metavar="N")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    if args.n < 0:
        parser.error(f"argument N: not a non-negative integer: '{args.n}'")
    with closing(Connection(params)) as connection:
        management = connection.management()
        # The same declaration as rpc_server.py: a request waits there until a server runs.
        management.queue("rpc_queue").quorum().queue().declare()
        # The reply queue, named by the client library: exclusive, so only this connection
        # reads it, and auto-delete, so RabbitMQ deletes it once this client is gone.
        reply_queue = management.queue().classic().queue().exclusive().auto_delete().declare()
        replies = queue.Queue()

        def on_reply(context, message):
            context.accept()
            replies.put(message)

        builder = connection.consumer_builder().queue(reply_queue.name)
        inbox = builder.message_handler(on_reply).build()
        publisher = connection.publisher_builder().queue("rpc_queue").build()
        # The request's message-id names it; the server copies it to its reply's correlation-id.
        # (The correlation-id too: pika's rpc_server.py copies that one, so it answers as well.)
        request_id = str(uuid.uuid4())
        asking = Properties(
            message_id=request_id, correlation_id=request_id, reply_to=inbox.address
        )
        print(f" [x] Requesting fib({args.n})")
        result = publisher.publish(Message(str(args.n), properties=asking))
        if result.outcome.state != OutcomeState.ACCEPTED:
            sys.exit(f" [!] RabbitMQ did not take the request: {result.outcome.state.value}")
        deadline = time.monotonic() + args.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = replies.get(timeout=remaining)
            except queue.Empty:
                break
            # Only the answer to this request counts: a reply queue may get others too.
            if reply.properties and reply.properties.correlation_id == request_id:
                body = reply.body_as_bytes().decode(errors="backslashreplace")
                flags = reply.application_properties.value if reply.application_properties else {}
                if flags.get("error") == "true":
                    sys.exit(f" [!] Server error: {body}")
                print(f" [.] Got {body}")
                return
        sys.exit(f" [!] No answer within {args.timeout:g} s: is rpc_server.py running?")


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
