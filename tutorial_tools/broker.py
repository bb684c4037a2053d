"""make broker: start a throwaway RabbitMQ, say how to reach it, and keep it until Ctrl+C.

    python -m tutorial_tools.broker [--source url|container|local] [--port 5672]

Prints the export lines for RABBITMQ_URL, RABBITMQ_MANAGEMENT_URL and RABBITMQ_STREAM_URL to
paste into the terminals where the chapter scripts run, and an alias with which `rabbitmqctl`
reaches the broker. Where the broker comes from: sources.py.
"""

from __future__ import annotations

import argparse
import sys

from tutorial_tools.lifecycle import run_with_broker, wait_for_stop
from tutorial_tools.sources import SOURCES, Broker


def keep(broker: Broker) -> int:
    """Say how to reach the broker, and keep it until Ctrl+C."""
    print(f"Management UI: {broker.management_url} (guest / guest)")
    print("Paste these into the terminals where you run the chapter scripts:\n")
    print(f"    export RABBITMQ_URL={broker.url}")
    print(f"    export RABBITMQ_MANAGEMENT_URL={broker.management_url}")
    print(f"    export RABBITMQ_STREAM_URL={broker.stream_url}")
    if broker.rabbitmqctl_command():  # so that the commands of the notes and the doctor work
        print(f"    alias rabbitmqctl='{broker.rabbitmqctl_command()}'")
    print()
    print("Press Ctrl+C to stop the broker and remove it.", flush=True)
    wait_for_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.broker",
        description="Start a throwaway RabbitMQ and keep it until Ctrl+C.",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        help="where the broker comes from (default: the first that works)",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="publish AMQP on this port (5672 lets the chapter scripts run with no RABBITMQ_URL, "
        "and puts streams on 5552, their default port)",
    )
    args = parser.parse_args(argv)
    return run_with_broker("tutorial-broker", keep, args.source, args.port, interrupted=0)


if __name__ == "__main__":
    sys.exit(main())
