"""RPC with Direct Reply-To over AMQP 1.0 (RabbitMQ 4.2 or newer): server and client in one.

Run: python rpc_amqp10.py    (the client asks 'ping' every second; the server answers 'pong')
"""

import os
import queue
import signal
import sys
import time
from contextlib import closing
from urllib.parse import unquote, urlsplit

from rabbitmq_amqp_python_client import (
    Connection,
    ConnectionParameters,
    ConsumerSettleStrategy,
    Message,
    OutcomeState,
    Properties,
    ProtocolError,
)


class TooOld(Exception):
    def __repr__(self) -> str:  # what the common tail prints: here, the sentence alone
        return str(self)


def serve(connection: Connection):  # the server: it answers in the client library's thread
    connection.management().queue("rpc-requests").quorum().queue().declare()
    replies = connection.publisher_builder().build()  # no address: each reply names its own

    def on_request(context, request):
        props = request.properties
        print(f" [.] {request.body_as_string()} (message-id {props.message_id})")
        # The reply's correlation-id is the request's message-id: the client matches them.
        answer = Properties(to=props.reply_to, correlation_id=props.message_id)
        replies.publish(Message("pong", properties=answer))  # released if the client has gone
        context.accept()

    return connection.consumer_builder().queue("rpc-requests").message_handler(on_request).build()


def main(params: ConnectionParameters) -> None:
    with closing(Connection(params)) as server, closing(Connection(params)) as client:
        # The version RabbitMQ says on opening: before 4.2 it ends a session asking for a reply
        # address ("amqp:not-implemented: Dynamic sources not supported"), so ask first.
        if tuple(map(int, client.remote_open.properties["version"].split(".")[:2])) < (4, 2):
            raise TooOld("Direct Reply-To over AMQP 1.0 needs RabbitMQ 4.2 or newer")
        print(" [x] Awaiting RPC requests")  # first: from now on, the server prints in its thread
        serving = serve(server)
        # Direct Reply-To: no reply queue; RabbitMQ makes up an address and settles the replies.
        replies = queue.Queue()
        builder = client.consumer_builder().settle_strategy(ConsumerSettleStrategy.DIRECT_REPLY_TO)
        inbox = builder.message_handler(lambda context, message: replies.put(message)).build()
        print(f" [*] Replies to this client go to {inbox.address} (to exit press CTRL+C)")
        requests = client.publisher_builder().queue("rpc-requests").build()
        pings = 0
        while inbox.is_open and serving.is_open:
            pings += 1
            print(f" [x] Requesting ping (message-id {pings})")
            asking = Properties(message_id=pings, reply_to=inbox.address)
            result = requests.publish(Message("ping", properties=asking))
            if result.outcome.state != OutcomeState.ACCEPTED:
                sys.exit(f" [!] RabbitMQ did not take the request: {result.outcome.state.value}")
            try:
                reply = replies.get(timeout=10)
            except queue.Empty:
                sys.exit(" [!] No answer within 10 s")
            its = reply.properties.correlation_id
            print(f" [.] Got {reply.body_as_string()} (correlation-id {its})")
            time.sleep(1)  # Ctrl+C arrives here, in the main thread
        sys.exit(" [!] RabbitMQ ended a link: was the queue 'rpc-requests' deleted?")


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
