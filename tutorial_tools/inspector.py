"""Look inside the broker: its queues, exchanges and bindings, as readable tables.

    python -m tutorial_tools.inspector            (make inspect)

Shows what these would, for the virtual host of RABBITMQ_URL:
    rabbitmqctl list_queues name messages_ready messages_unacknowledged
    rabbitmqctl list_exchanges name type
    rabbitmqctl list_bindings source_name destination_name routing_key

It asks the management plugin's HTTP API, at RABBITMQ_MANAGEMENT_URL (default: port 15672 on
the host of RABBITMQ_URL; `make broker` prints both). The API refreshes its message counts
every 5 seconds: a message sent just now may not be counted yet.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from tutorial_tools.addresses import DEFAULT_URL, vhost_of
from tutorial_tools.management import ManagementApi, ManagementError
from tutorial_tools.sources import BrokerUnavailable
from tutorial_tools.url_broker import UrlBroker


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


def inspect(api: ManagementApi, vhost: str) -> list[Table]:
    """Queues, exchanges and bindings of ``vhost``."""
    queues = api.get("queues", vhost)
    exchanges = api.get("exchanges", vhost)
    bindings = api.get("bindings", vhost)
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
                (b["source"] or "(AMQP default)", b["destination"], b["routing_key"])
                for b in bindings
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.inspector", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--vhost", help="virtual host to show (default: the one in RABBITMQ_URL)")
    args = parser.parse_args(argv)
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_URL
    try:
        tables = inspect(UrlBroker(url).management, args.vhost or vhost_of(url))
    except BrokerUnavailable as exc:
        print(f"inspector: {exc}", file=sys.stderr)
        return 1
    except ManagementError as exc:
        hint = "" if exc.status else " (set RABBITMQ_MANAGEMENT_URL to the management API's URL)"
        print(f"inspector: {exc}{hint}", file=sys.stderr)
        return 1
    print("\n\n".join(table.render() for table in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
