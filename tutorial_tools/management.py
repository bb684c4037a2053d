"""A small client for the HTTP API of RabbitMQ's management plugin.

    api = ManagementApi("http://127.0.0.1:15672", "guest", "guest")
    api.get("overview")["rabbitmq_version"]
    api.get("queues", "/")                      # GET /api/queues/%2F
    api.put("vhosts", "test")                   # PUT /api/vhosts/test
    api.put("permissions", "test", "guest", body={"configure": ".*", "write": ".*", "read": ".*"})
    api.delete("vhosts", "test")

Each part of a path is quoted, so a virtual host named "/" needs no care; request() takes a
path as the API's documentation writes it (api.request("DELETE", "/api/queues/%2F/hello")).
Every call returns the decoded JSON answer (None for an empty one) or raises ManagementError.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


class ManagementError(RuntimeError):
    """The API could not be reached, or answered with an error (``status``: its HTTP code)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ManagementApi:
    def __init__(self, base_url: str, user: str, password: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Imported here, not at the top: make doctor and the chapter tools load this module
        # on every run, and mostly never call the API; requests takes longer to import than
        # all the rest of them.
        import requests

        self._errors = requests.RequestException
        # One session per API: its connections are kept alive from one call to the next.
        self._session: requests.Session = requests.Session()
        self._session.auth = self.auth = (user, password)
        # On every request, body or not: what every RabbitMQ version here was tested with.
        self._session.headers["Content-Type"] = "application/json"

    def __repr__(self) -> str:
        return f"ManagementApi({self.base_url!r})"

    def get(self, *path: str) -> Any:
        return self.request("GET", _path(path))

    def put(self, *path: str, body: object | None = None) -> Any:
        return self.request("PUT", _path(path), body)

    def delete(self, *path: str) -> Any:
        return self.request("DELETE", _path(path))

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        url = self.base_url + path
        try:
            response = self._session.request(method, url, json=body, timeout=self.timeout)
        except self._errors as exc:
            raise ManagementError(f"{method} {url}: {exc}") from exc
        # Anything but a 2xx is an error, redirects aside (requests follows them).
        if not 200 <= response.status_code < 300:
            code, reason = response.status_code, response.content[:200].decode(errors="replace")
            raise ManagementError(f"{method} {url}: HTTP {code} {reason}", code)
        return response.json() if response.content else None


def _path(parts: tuple[str, ...]) -> str:
    return "/api/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)
