"""Look inside the broker: its queues, exchanges and bindings, as readable tables.

    python -m tutorial_tools.inspector            (make inspect)

Shows what these would, for the virtual host of RABBITMQ_URL:
    rabbitmqctl list_queues name messages_ready messages_unacknowledged
    rabbitmqctl list_exchanges name type
    rabbitmqctl list_bindings source_name destination_name routing_key

It reaches the broker that `make broker` keeps running (container or local process) through
rabbitmqctl, and any other broker through the management plugin's HTTP API (at
RABBITMQ_MANAGEMENT_URL, default port 15672 on the AMQP host).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from dataclasses import dataclass

from tutorial_tools.broker import AttachedBroker, Broker, BrokerError, BrokerUnavailable, UrlBroker

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        line = "  ".join("-" * w for w in widths)
        out = [
            self.title,
            "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)),
            line,
        ]
        out += [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            for row in self.rows
        ]
        if not self.rows:
            out.append("(none)")
        return "\n".join(line.rstrip() for line in out)


def vhost_of(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


def _rabbitmqctl_json(broker: Broker, vhost: str, *args: str) -> list[dict]:
    return json.loads(
        broker.rabbitmqctl(*args, "-p", vhost, "--formatter", "json", "--quiet") or "[]"
    )


def inspect(broker: Broker, vhost: str) -> list[Table]:
    """Queues, exchanges and bindings of ``vhost``: rabbitmqctl if it reaches, else HTTP."""
    try:
        queues = _rabbitmqctl_json(
            broker, vhost, "list_queues", "name", "messages_ready", "messages_unacknowledged"
        )
        exchanges = _rabbitmqctl_json(broker, vhost, "list_exchanges", "name", "type")
        bindings = _rabbitmqctl_json(
            broker, vhost, "list_bindings", "source_name", "destination_name", "routing_key"
        )
    except BrokerError:
        q = urllib.parse.quote(vhost, safe="")
        queues = broker.management_api("GET", f"/api/queues/{q}")
        exchanges = broker.management_api("GET", f"/api/exchanges/{q}")
        bindings = [
            {
                "source_name": b["source"],
                "destination_name": b["destination"],
                "routing_key": b["routing_key"],
            }
            for b in broker.management_api("GET", f"/api/bindings/{q}")
        ]
    return [
        Table(
            f"Queues in virtual host {vhost!r}",
            ("name", "messages_ready", "messages_unacknowledged"),
            sorted(
                (
                    q["name"],
                    str(q.get("messages_ready", 0)),
                    str(q.get("messages_unacknowledged", 0)),
                )
                for q in queues
            ),
        ),
        Table(
            "Exchanges",
            ("name", "type"),
            sorted((e["name"] or "(AMQP default)", e["type"]) for e in exchanges),
        ),
        Table(
            "Bindings",
            ("source (exchange)", "destination (queue)", "routing_key"),
            sorted(
                (b["source_name"] or "(AMQP default)", b["destination_name"], b["routing_key"])
                for b in bindings
            ),
        ),
    ]


def connect(url: str) -> Broker:
    """The broker `make broker` started, when RABBITMQ_URL is its URL; else the URL itself."""
    attached = AttachedBroker.from_state_file()
    if attached and _same_broker(attached.url, url):
        return attached
    return UrlBroker(url).start()


def _same_broker(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    local = {"localhost", "127.0.0.1", "::1"}
    same_host = pa.hostname == pb.hostname or {pa.hostname, pb.hostname} <= local
    return same_host and (pa.port or 5672) == (pb.port or 5672)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.inspector", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--vhost", help="virtual host to show (default: the one in RABBITMQ_URL)")
    args = parser.parse_args(argv)
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_URL
    try:
        broker = connect(url)
        tables = inspect(broker, args.vhost or vhost_of(url))
    except (BrokerError, BrokerUnavailable) as exc:
        print(f"inspector: {exc}", file=sys.stderr)
        return 1
    print("\n\n".join(table.render() for table in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
