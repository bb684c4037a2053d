"""Source 1: an existing broker, named by a URL (RABBITMQ_URL), used as it is and never stopped."""

from __future__ import annotations

import os

import pika

from tutorial_tools.addresses import PORTS, management_url_for, masked, with_vhost
from tutorial_tools.sources import Broker, BrokerUnavailable


class UrlBroker(Broker):
    """An existing broker named by a URL: used as it is, never restarted or stopped."""

    source = "url"

    def __init__(
        self, url: str, management_url: str | None = None, stream_url: str | None = None
    ) -> None:
        super().__init__()
        self._given = url
        # Streams: RABBITMQ_STREAM_URL; without it, the standard port on the AMQP URL's host.
        self._stream_given = stream_url or os.environ.get("RABBITMQ_STREAM_URL") or None
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise BrokerUnavailable(f"RABBITMQ_URL is not a valid AMQP URL: {exc}") from exc
        self.host, self.ports["amqp"] = params.host, params.port
        self.ports["stream"] = PORTS["stream"]
        self.user, self.password = params.credentials.username, params.credentials.password
        management_url = management_url or os.environ.get("RABBITMQ_MANAGEMENT_URL")
        self._management_url = (management_url or management_url_for(url)).rstrip("/")

    @property
    def url(self) -> str:
        return self._given

    def stream_url_for(self, vhost: str) -> str | None:
        if not self._stream_given:
            return super().stream_url_for(vhost)
        return with_vhost(self._stream_given, vhost)

    @property
    def management_url(self) -> str:
        return self._management_url

    def start(self) -> UrlBroker:
        try:
            pika.BlockingConnection(pika.URLParameters(self._given)).close()
        except Exception as exc:
            raise BrokerUnavailable(
                f"RABBITMQ_URL={masked(self._given)} does not answer: {exc!r}"
            ) from exc
        return self

    def stop(self) -> None:
        """Not ours to stop."""
