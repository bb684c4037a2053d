"""What a broker says about itself when a client connects.

``server_properties()`` reads the properties RabbitMQ sends in AMQP's connection.start (its
product, version, platform...), which pika keeps on the underlying connection only.
"""

from __future__ import annotations

import pika


def server_properties(connection: pika.BlockingConnection) -> dict[str, str]:
    """The broker's connection.start properties, as text ('?' where pika has none)."""
    raw = connection._impl.server_properties or {}  # pika has no public accessor for them
    return {
        key: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        for key, value in raw.items()
    }
