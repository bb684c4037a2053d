"""Where a RabbitMQ is: the URLs of its AMQP, stream and management ports, and how to print them.

The pika chapter scripts read RABBITMQ_URL (``amqp://USER:PASSWORD@HOST:PORT/VHOST``), the stream
chapter scripts RABBITMQ_STREAM_URL (``rabbitmq-stream://...``, the same parts), and the tooling
RABBITMQ_MANAGEMENT_URL (``http://HOST:PORT``) for the management plugin's HTTP API. Each has a
default that names RabbitMQ's standard port on localhost. Nothing here prints a password: what
is shown goes through ``masked()`` or ``printable()``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

# RabbitMQ's standard ports: the ones a broker listens on unless told otherwise.
PORTS = {"amqp": 5672, "management": 15672, "stream": 5552}
USER = PASSWORD = "guest"
# What the scripts use when RABBITMQ_URL / RABBITMQ_STREAM_URL are not set, spelled out.
DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_STREAM_URL = "rabbitmq-stream://guest:guest@localhost:5552/%2F"


def amqp_url(
    host: str, port: int, vhost: str = "/", user: str = USER, password: str = PASSWORD
) -> str:
    return f"amqp://{_q(user)}:{_q(password)}@{host}:{port}/{_q(vhost)}"


def stream_url(
    host: str, port: int, vhost: str = "/", user: str = USER, password: str = PASSWORD
) -> str:
    """A RabbitMQ Stream URL, as the stream clients write it: rabbitmq-stream://..."""
    return amqp_url(host, port, vhost, user, password).replace("amqp://", "rabbitmq-stream://", 1)


def with_vhost(url: str, vhost: str) -> str:
    """The same URL (any scheme), for another virtual host."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + _q(vhost)))


def vhost_of(url: str) -> str:
    """The virtual host an AMQP or stream URL names ('/' when it names none)."""
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def management_url_for(url: str) -> str:
    """The management API's URL where none is given: its standard port on the URL's host."""
    host = urllib.parse.urlsplit(url).hostname or "localhost"
    return f"http://{host}:{PORTS['management']}"


@dataclass(frozen=True)
class StreamAddress:
    host: str
    port: int
    vhost: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> StreamAddress:
        """What the stream scripts read from a rabbitmq-stream:// URL (guest:guest if none)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "rabbitmq-stream":
            raise ValueError("it must start with rabbitmq-stream://")
        if not parts.hostname:
            raise ValueError("it names no host")
        return cls(
            parts.hostname,
            parts.port or PORTS["stream"],
            urllib.parse.unquote(parts.path[1:]) or "/",
            urllib.parse.unquote(parts.username or USER),
            urllib.parse.unquote(parts.password or PASSWORD),
        )

    def client_args(self) -> dict[str, str | int]:
        """The keyword arguments of rstream's Producer and Consumer for this address."""
        return {
            "host": self.host,
            "port": self.port,
            "vhost": self.vhost,
            "username": self.user,
            "password": self.password,
        }


def masked(url: str) -> str:
    """The URL with its password replaced, fit to print. ValueError if it cannot be split."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def printable(url: str, name: str = "RABBITMQ_URL") -> str:
    """The URL with its password masked, or a placeholder when it cannot even be split."""
    try:
        return masked(url)
    except ValueError:
        return f"{name} (not a valid URL)"


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")
