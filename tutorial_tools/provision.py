"""Make sure some broker source is there for the tests and the tour (``make setup`` runs this).

    python -m tutorial_tools.provision [--source url|container|local]

Says which source will be used and exits 0. With none at all, as root on Debian or Ubuntu, it
installs Debian's rabbitmq-server with apt-get, saying so; anywhere else it prints what to run
and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from tutorial_tools.addresses import masked
from tutorial_tools.rabbitmq_server import find_server
from tutorial_tools.sources import HOW_TO_GET_ONE, SOURCES, BrokerUnavailable, choose_source

APT_STEPS = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rabbitmq-server"])


def describe(source: str) -> str:
    if source == "url":
        return f"the broker at RABBITMQ_URL={masked(os.environ['RABBITMQ_URL'])}"
    if source == "container":
        return "containers, through the Docker-compatible engine that answers"
    return f"the local rabbitmq-server at {find_server()}"


def ensure_source(source: str | None = None) -> int:
    source = source or os.environ.get("TUTORIAL_BROKER_SOURCE") or None
    try:
        print(f"Broker source: {describe(choose_source(source))}")
        return 0
    except BrokerUnavailable:
        pass
    if source not in (None, "local"):
        print(f"setup: the {source!r} broker source is not available here.", file=sys.stderr)
        print(HOW_TO_GET_ONE, file=sys.stderr)
        return 1
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(
            "No RabbitMQ broker source found: installing Debian's rabbitmq-server with apt-get "
            "(this takes about half a minute) ...",
            flush=True,
        )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for step in APT_STEPS:
            if subprocess.run(step, env=env, stdout=subprocess.DEVNULL).returncode != 0:
                print(f"setup: '{' '.join(step)}' failed", file=sys.stderr)
                return 1
        if find_server():
            print(f"Broker source: {describe('local')}")
            return 0
    print(HOW_TO_GET_ONE, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial_tools.provision")
    parser.add_argument("--source", choices=SOURCES, help="check (or install) only this source")
    return ensure_source(parser.parse_args(argv).source)


if __name__ == "__main__":
    sys.exit(main())
