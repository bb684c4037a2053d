"""Benchmarks: what publisher confirms cost, how fast RPC is, what waiting costs in CPU, how
a stream compares with a quorum queue, and what replicating a quorum queue on three nodes costs.

    python -m tutorial_tools.bench                        medians of 5 runs, 10,000 messages
    python -m tutorial_tools.bench --runs 3 --messages 2000 --stream-messages 2000
    python -m tutorial_tools.bench --skip replication     no three-node cluster (--only: the one)
    python -m tutorial_tools.bench --write                also put the tables in the READMEs

It uses the broker at RABBITMQ_URL if set, else starts a throwaway one (see broker.py), in a
virtual host of its own when it can make one, and removes what it started at the end.

Every figure is the median of ``--runs`` runs of the project's own scripts:

- publishing: publisher_confirms/publish_individually.py, publish_in_batches.py and
  publish_async.py, run as processes with N messages (each times its own publishing), against
  N persistent messages published on pika's asynchronous API without confirms, in the same
  loop as publish_async.py (timed until a round trip shows the broker has read them all);
- RPC: sequential fib(1) round trips of rpc/rpc_client.py's FibonacciRpcClient with
  rpc/rpc_server.py running, and the client's CPU time while it waits for fib(35);
- hello_world/receive.py: its CPU time while idle, and the time from starting send.py to the
  receiver printing the message (this includes send.py's Python start-up);
- streams against a quorum queue, with ``--stream-messages`` (50,000 by default: a stream
  takes 10,000 in a few hundredths of a second, too short a run to outweigh a busy neighbour
  on the machine): that many messages of 20 bytes appended to a stream with rstream, timed
  until RabbitMQ has confirmed them all (send_batch, 1,000 a batch; and send(), as the stream
  tutorial does), against publish_async.py with as many; then read from the stream's first
  offset with rstream, against as many consumed from a quorum queue with pika (auto-ack). A
  fresh stream and queue each run;
- replication (bench_cluster.py): the three publisher_confirms scripts with N messages against
  the bench's broker and against node 1 of three local rabbitmq-server nodes, clustered (a
  LocalCluster, started for this section, about 25 s, and stopped at its end), where their
  quorum queues have three members (checked); and the median time to each confirm of at most
  500 messages published one at a time, as publish_individually.py does, to a quorum queue
  declared with x-quorum-initial-group-size 1 and 3. Where no rabbitmq-server is installed, one
  line says the section is skipped.

- AMQP 1.0 (bench_amqp10.py): publishing to a quorum queue with each message's outcome awaited,
  from one thread and from eight, against pika confirming each message, on the same broker
  (4.0 or newer; before, one line says the section is skipped), at most 2,000 messages.

Sections (--only, --skip): ``queues`` (the first table: publishing, RPC, the idle receiver),
``streams``, ``replication`` and ``amqp10``; all by default, and all for --write.

The default of 10,000 messages (not the chapter's 50,000) keeps a run of the first two sections
to one or two minutes on a 2-core machine: one confirm at a time is what takes long, and longer
still on three nodes. Exit status 0 once measured, whether or not each goal holds (the table
says); 1 when something could not be measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import sys
import time
from collections.abc import Callable, Iterator

import pika
import psutil
import rstream

from tutorial_tools.bench_amqp10 import amqp10_table, measure_amqp10
from tutorial_tools.bench_cluster import measure_replication
from tutorial_tools.bench_queues import (
    BenchError,
    measure_publishing,
    measure_receiver,
    measure_rpc,
)
from tutorial_tools.bench_streams import measure_streams
from tutorial_tools.bench_tables import (
    END,
    START,
    replication_table,
    streams_table,
    table,
    write_between_markers,
)
from tutorial_tools.lifecycle import run_with_broker
from tutorial_tools.management import ManagementError
from tutorial_tools.probes import server_properties
from tutorial_tools.processes import ROOT, ScriptError
from tutorial_tools.sources import SOURCES, Broker, BrokerError

# Where --write puts which table: the top-level README gets them all.
README, CONFIRMS_NOTES = ROOT / "README.md", ROOT / "publisher_confirms" / "README.md"
STREAM_NOTES = ROOT / "stream_hello_world" / "README.md"
AMQP10_NOTES = ROOT / "amqp10" / "README.md"
# One outcome at a time is what takes long: the AMQP 1.0 section publishes at most this many.
AMQP10_MESSAGES = 2_000
SECTIONS = ("queues", "streams", "replication", "amqp10")


# -- command line ------------------------------------------------------------------------


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.bench",
        description="Measure publisher confirms, RPC round trips, idle CPU, a stream against "
        "a quorum queue, and a quorum queue on one node against three; print the tables.",
    )
    parser.add_argument("--runs", type=positive_int, default=5, help="runs per figure (5)")
    parser.add_argument(
        "--messages", type=positive_int, default=10_000, help="messages per publishing run"
    )
    parser.add_argument(
        "--stream-messages",
        type=positive_int,
        default=50_000,
        help="messages per run in the stream rows (50,000)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="put the tables between the bench markers of the READMEs",
    )
    parser.add_argument("--source", choices=SOURCES, help="broker source")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"measure this section only (again for more): {', '.join(SECTIONS)}",
    )
    which.add_argument(
        "--skip", action="append", choices=SECTIONS, metavar="SECTION", help="leave it out"
    )
    args = parser.parse_args(argv)
    args.sections = [
        name
        for name in SECTIONS
        if (name in args.only if args.only else name not in (args.skip or ()))
    ]
    if args.write and len(args.sections) < len(SECTIONS):
        parser.error("--write puts every table in the READMEs: no --only or --skip with it")

    def say(text: str) -> None:
        print(text, flush=True)

    return run_with_broker("bench", lambda broker: bench(broker, args, say), args.source, say=say)


@contextlib.contextmanager
def own_vhost(broker: Broker, say: Callable[[str], None]) -> Iterator[tuple[str, str | None]]:
    """The AMQP and stream URLs of a virtual host of the bench's own, deleted afterwards (else
    the broker's)."""
    vhost = f"bench-{secrets.token_hex(3)}"
    try:
        broker.add_vhost(vhost)
    except BrokerError as exc:
        say(f"(no virtual host of its own: {exc}; using the URL's)")
        yield broker.url, broker.stream_url
        return
    try:
        yield broker.url_for(vhost), broker.stream_url_for(vhost)
    finally:
        with contextlib.suppress(BrokerError):  # the broker may be going away
            broker.delete_vhost(vhost)


def rabbitmq_version(broker: Broker, url: str) -> str:
    try:
        return str(broker.management.get("overview")["rabbitmq_version"])
    except (BrokerError, ManagementError, KeyError, TypeError):
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            return server_properties(connection).get("version", "?")


def bench(broker: Broker, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    started = time.monotonic()
    try:
        with own_vhost(broker, say) as (url, stream_url):
            about = (
                f"{os.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f} at the "
                f"start, RabbitMQ {rabbitmq_version(broker, url)} ({broker.source} broker), "
                f"pika {pika.__version__}, rstream {rstream.__version__}, "
                f"Python {platform.python_version()}"
            )
            say(f"Measuring on {about}:")
            texts: dict[str, str] = {}  # by section
            if "queues" in args.sections:
                results = {
                    "publishing": measure_publishing(url, args.runs, args.messages, say),
                    "rpc": measure_rpc(url, args.runs, say),
                    "receiver": measure_receiver(url, args.runs, say),
                }
                texts["queues"] = table(results, args.runs, args.messages, about)
            if "streams" in args.sections:
                if stream_url is None:
                    raise BenchError(f"the {broker.source} broker has no stream port")
                streams = measure_streams(url, stream_url, args.runs, args.stream_messages, say)
                texts["streams"] = (
                    f"Streams against a quorum queue, {args.stream_messages:,} messages of 20 "
                    f"bytes per run:\n\n{streams_table(streams)}"
                )
            if "replication" in args.sections:
                replication = measure_replication(broker, url, args.runs, args.messages, say)
                texts["replication"] = replication_table(replication, args.messages)
            if "amqp10" in args.sections:
                messages = min(args.messages, AMQP10_MESSAGES)
                amqp10 = measure_amqp10(url, args.runs, messages, say)
                texts["amqp10"] = amqp10_table(amqp10, messages)
    except (BenchError, ScriptError, rstream.exceptions.ServerError, OSError) as exc:
        print(f"bench: {exc!r}", file=sys.stderr)
        return 1
    if "queues" not in texts:  # the first table's heading says what was measured on what
        texts = {"about": f"{about}; median of {args.runs} runs.", **texts}
    say("\n" + "\n\n".join(texts.values()))
    say(f"\n(measured in {time.monotonic() - started:.0f} s)")
    if args.write:
        text, stream_text = texts["queues"], texts["streams"]
        tables = {
            README: "\n\n".join(texts.values()),
            CONFIRMS_NOTES: text,
            STREAM_NOTES: f"{about}; median of {args.runs} runs.\n\n{stream_text}",
            AMQP10_NOTES: f"{about}; median of {args.runs} runs.\n\n{texts['amqp10']}",
        }
        for path, block in tables.items():
            if write_between_markers(path, block):
                say(f"Wrote the table into {path.relative_to(ROOT)}")
            else:
                say(
                    f"Note: {path.relative_to(ROOT)} does not exist or has no "
                    f"{START} ... {END} markers: not written"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
