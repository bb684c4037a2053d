"""What a broker says about itself when a client connects.

``server_properties()`` reads the properties RabbitMQ sends in AMQP's connection.start (its
product, version, platform...), which pika keeps on the underlying connection only.
``greeting()`` sends a protocol's first bytes to a port and reads the first bytes of the answer,
which tell RabbitMQ's AMQP and stream ports from an HTTP server or silence. ``probe_blocked()``
says whether the broker blocks publishers, without the management API.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote, urlsplit

import pika


def server_properties(connection: pika.BlockingConnection) -> dict[str, str]:
    """The broker's connection.start properties, as text ('?' where pika has none)."""
    raw = connection._impl.server_properties or {}  # pika has no public accessor for them
    return {
        key: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        for key, value in raw.items()
    }


def rabbitmq_version(url: str, timeout: float = 5) -> tuple[int, int] | None:
    """The broker's RabbitMQ version as (major, minor), as it says when a client connects; None
    where it cannot be reached or does not say."""
    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = timeout
    try:
        with pika.BlockingConnection(params) as connection:
            major, minor = server_properties(connection).get("version", "").split(".")[:2]
        return int(major), int(minor)
    except (pika.exceptions.AMQPError, OSError, ValueError):
        return None


def amqp10_connection(url: str):
    """An AMQP 1.0 connection to the broker at the AMQP URL ``url``, through RabbitMQ's own
    client, as the amqp10/ scripts open theirs. Imported here: only its users need it."""
    from rabbitmq_amqp_python_client import Connection, ConnectionParameters

    at = urlsplit(url)
    where = (at.hostname or "localhost", at.port or 5672, unquote(at.path[1:]) or "/")
    login = (unquote(at.username or "guest"), unquote(at.password or "guest"))
    return Connection(ConnectionParameters(*where, *login))


def greeting(host: str, port: int, hello: bytes, timeout: float) -> bytes:
    """Send ``hello``, a protocol's first bytes, to host:port: the first 8 bytes of the answer
    (b"" if it hangs up). With no hello it only connects: a TLS port wants a handshake first."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if not hello:
            return b""
        sock.sendall(hello)
        return sock.recv(8)


def probe_blocked(url: str, timeout: float) -> list[str]:
    """Without the management API: publish one message that no queue takes, and see whether the
    broker answers with connection.blocked. The reasons it gives ('low on memory', ...)."""
    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = timeout
    params.blocked_connection_timeout = 1.0
    reasons: list[str] = []
    connection = pika.BlockingConnection(params)
    # On the underlying connection, so that the reason is taken as the frame arrives: the
    # BlockingConnection would hand it over only while it waits for events.
    connection._impl.add_on_connection_blocked_callback(
        lambda _connection, frame: reasons.append(frame.method.reason)
    )
    try:
        channel = connection.channel()
        channel.basic_publish("", "tutorial-doctor-probe-routes-nowhere", b"")
        # Under an alarm the broker blocks the connection as it takes the message, and reads
        # nothing more: this round trip then waits for blocked_connection_timeout. Without an
        # alarm the answer comes at once.
        channel.basic_qos(prefetch_count=1)
        connection.close()
    except pika.exceptions.AMQPError:
        pass  # a blocked connection cannot close cleanly; the reasons are what matters
    return reasons
