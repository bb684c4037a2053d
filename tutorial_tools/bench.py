"""Benchmarks: what publisher confirms cost, how fast RPC is, what waiting costs in CPU, and
how a stream compares with a quorum queue.

    python -m tutorial_tools.bench                        medians of 5 runs, 10,000 messages
    python -m tutorial_tools.bench --runs 3 --messages 2000 --stream-messages 2000
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
  fresh stream and queue each run.

The default of 10,000 messages (not the chapter's 50,000) keeps a full run to one or two minutes
on a 2-core machine: one confirm at a time is what takes long. Exit status 0 once measured,
whether or not each goal holds (the table says); 1 when something could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import platform
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import psutil
import rstream
from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, Producer

from tutorial_tools.addresses import StreamAddress
from tutorial_tools.chapters import AWAITING_RPC, CONFIRM_STRATEGIES, WAITING_MESSAGES
from tutorial_tools.lifecycle import run_with_broker
from tutorial_tools.management import ManagementError
from tutorial_tools.probes import server_properties
from tutorial_tools.processes import ROOT, ScriptError, ScriptProcess, run_script
from tutorial_tools.sources import SOURCES, Broker, BrokerError
from tutorial_tools.waiting import wait_until

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
# Where --write puts which table: the top-level README gets both.
README, CONFIRMS_NOTES = ROOT / "README.md", ROOT / "publisher_confirms" / "README.md"
STREAM_NOTES = ROOT / "stream_hello_world" / "README.md"
QUORUM = {"x-queue-type": "quorum"}
PUBLISHED = re.compile(r"^Published ([\d,]+) messages .* in ([\d,]+) ms$")
SLOW_N = 35  # the largest n rpc_server.py computes; the naive fib(35) takes about a second
IDLE_SECONDS = 3.0  # one idle window of receive.py (a fixed window: a measurement, not a test)
RPC_CALLS = 200  # fib(1) round trips per run


class BenchError(RuntimeError):
    """A figure could not be measured."""


# -- publishing ---------------------------------------------------------------------------


def run_publisher(script: str, url: str, messages: int) -> float:
    """Run a publisher_confirms script with N messages; its messages per second."""
    proc = run_script(script, [str(messages)], url=url, timeout=600)
    confirmed = f" [x] {messages:,} of {messages:,} messages confirmed"
    found = [m for m in map(PUBLISHED.match, proc.stdout) if m]
    if proc.process.returncode != 0 or confirmed not in proc.stdout or not found:
        raise BenchError(f"{script} {messages} did not confirm every message:\n{proc.output}")
    count, ms = (int(group.replace(",", "")) for group in found[-1].groups())
    return count / (max(ms, 1) / 1000)


class UnconfirmedPublisher:
    """N persistent messages on pika's asynchronous API, without confirms: the baseline.

    The same loop as publish_async.py (up to 1000 messages per turn of the I/O loop), minus
    confirm mode. The clock stops when a queue.declare round trip comes back: the broker has
    then read every message, though none is known to be safe.
    """

    QUEUE = "bench_unconfirmed"
    CHUNK = 1000

    def __init__(self, url: str, messages: int) -> None:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.queue_declare(self.QUEUE, durable=True, arguments=QUORUM)
            channel.queue_purge(self.QUEUE)
        self.messages = messages
        self.started = self.elapsed = 0.0
        self.error: BaseException | None = None
        self.properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        self.connection = pika.SelectConnection(
            pika.URLParameters(url),
            on_open_callback=lambda c: c.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=self._on_error,
            on_close_callback=self._on_closed,
        )

    def run(self) -> float:
        """Messages per second."""
        self.connection.ioloop.start()
        if self.error is not None:
            raise BenchError(f"publishing without confirms failed: {self.error!r}")
        return self.messages / self.elapsed

    def _on_channel_open(self, channel: pika.channel.Channel) -> None:
        self.started = time.perf_counter()
        self._publish(channel, 0)

    def _publish(self, channel: pika.channel.Channel, first: int) -> None:
        last = min(first + self.CHUNK, self.messages)
        for i in range(first, last):
            channel.basic_publish("", self.QUEUE, f"unconfirmed-{i}", self.properties)
        if last < self.messages:
            self.connection.ioloop.call_later(0, functools.partial(self._publish, channel, last))
        else:
            channel.queue_declare(self.QUEUE, passive=True, callback=self._on_all_read)

    def _on_all_read(self, frame: pika.frame.Method) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.connection.close()

    def _on_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        self.error = error
        connection.ioloop.stop()

    def _on_closed(self, connection: pika.SelectConnection, error: BaseException) -> None:
        if not isinstance(error, pika.exceptions.ConnectionClosedByClient):
            self.error = error
        connection.ioloop.stop()


def measure_publishing(url: str, runs: int, messages: int, say: Callable[[str], None]) -> dict:
    rates: dict[str, list[float]] = {"none": [], **{s.script: [] for s in CONFIRM_STRATEGIES}}
    for run in range(1, runs + 1):
        say(f"  publishing, run {run} of {runs}: {messages:,} messages each way")
        # Interleaved, so that a slower minute on a shared machine hits every strategy alike.
        rates["none"].append(UnconfirmedPublisher(url, messages).run())
        for strategy in CONFIRM_STRATEGIES:
            rates[strategy.script].append(run_publisher(strategy.script, url, messages))
    return {name: statistics.median(values) for name, values in rates.items()}


# -- RPC ----------------------------------------------------------------------------------


def load_rpc_client() -> type:
    """rpc/rpc_client.py's FibonacciRpcClient, imported from its file as a learner's script."""
    spec = importlib.util.spec_from_file_location("rpc_client", ROOT / "rpc" / "rpc_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FibonacciRpcClient


def ask(client, n: int) -> bytes:
    reply = client.call(n, timeout=60)
    if reply is None:
        raise BenchError(f"rpc_server.py did not answer fib({n}) within 60 s")
    return reply[1]


def measure_rpc(url: str, runs: int, say: Callable[[str], None]) -> dict:
    """Round trips per second, and the client's CPU share while it waits for a slow answer."""
    server = ScriptProcess("rpc/rpc_server.py", url=url, label="rpc_server")
    try:
        server.wait_for(AWAITING_RPC)
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            client = load_rpc_client()(connection)
            ask(client, 1)  # a warm-up call, not counted
            round_trips, cpu_shares, waits, slow_calls = [], [], [], []
            for run in range(1, runs + 1):
                say(f"  RPC, run {run} of {runs}: {RPC_CALLS} x fib(1), then fib({SLOW_N})")
                started = time.perf_counter()
                for _ in range(RPC_CALLS):
                    if ask(client, 1) != b"1":
                        raise BenchError("rpc_server.py answered fib(1) with something else")
                round_trips.append(RPC_CALLS / (time.perf_counter() - started))
                # CPU time of this thread only, while call() waits in process_data_events for
                # the slow answer; asked again until at least a second has been spent waiting.
                cpu, wall = time.thread_time(), time.perf_counter()
                calls = 0
                while time.perf_counter() - wall < 1.0:
                    ask(client, SLOW_N)
                    calls += 1
                wall = time.perf_counter() - wall
                cpu_shares.append((time.thread_time() - cpu) / wall)
                waits.append(wall)
                slow_calls.append(calls)
    finally:
        server.stop()
    return {
        "round_trips": statistics.median(round_trips),
        "cpu_waiting": statistics.median(cpu_shares),
        "waited": statistics.median(waits),
        "slow_calls": statistics.median_low(slow_calls),
    }


# -- an idle receiver, and the time to a printed message ----------------------------------


def measure_receiver(url: str, runs: int, say: Callable[[str], None]) -> dict:
    arrivals: list[float] = []  # when receive.py printed each message

    def on_line(proc: ScriptProcess, line: str) -> None:
        if "Received Hello World!" in line:
            arrivals.append(time.perf_counter())

    receiver = ScriptProcess("hello_world/receive.py", url=url, label="receive", on_line=on_line)
    try:
        receiver.wait_for(WAITING_MESSAGES)
        idle_shares, latencies = [], []
        process = psutil.Process(receiver.process.pid)
        for run in range(1, runs + 1):
            say(f"  receive.py, run {run} of {runs}: {IDLE_SECONDS:g} s idle, then send.py")
            process.cpu_percent()  # opens the window
            time.sleep(IDLE_SECONDS)  # the measurement window itself, not a synchronisation
            idle_shares.append(process.cpu_percent() / 100)  # CPU time / wall time since then
            started = time.perf_counter()
            sender = run_script("hello_world/send.py", url=url)
            if sender.process.returncode != 0:
                raise BenchError(f"hello_world/send.py failed:\n{sender.output}")
            receiver.wait_for("Received Hello World!", count=run)
            latencies.append(arrivals[run - 1] - started)
    finally:
        receiver.stop()
    return {
        "idle_cpu": statistics.median(idle_shares),
        "latency": statistics.median(latencies),
    }


# -- streams against a quorum queue --------------------------------------------------------

STREAM_BATCH = 1000  # messages per send_batch call
CONSUME_QUEUE = "bench_consume"
ASYNC_PUBLISHER = "publisher_confirms/publish_async.py"


def bodies(messages: int) -> list[bytes]:
    return [f"stream-message{i:06d}".encode() for i in range(messages)]  # 20 bytes each


async def stream_publish(client: dict, stream: str, messages: int, batched: bool) -> float:
    """Append ``messages`` to a new stream; messages per second until the last is confirmed.

    ``batched``: send_batch, 1,000 a call, as a program that cares for throughput does; else
    send(), as the stream tutorial does, which only buffers: rstream flushes every 0.5 s.
    """
    confirmed, failed = 0, 0
    all_confirmed = asyncio.Event()

    def on_confirm(status) -> None:
        nonlocal confirmed, failed
        confirmed += status.is_confirmed
        failed += not status.is_confirmed
        if confirmed + failed == messages:
            all_confirmed.set()

    payload = bodies(messages)
    async with Producer(**client) as producer:
        await producer.create_stream(stream)
        # Not timed: rstream's first message to a stream opens a connection to its leader.
        await producer.send_wait(stream, b"warm-up")
        started = time.perf_counter()
        if batched:
            for first in range(0, messages, STREAM_BATCH):
                batch = payload[first : first + STREAM_BATCH]
                await producer.send_batch(stream, batch, on_publish_confirm=on_confirm)
        else:
            for body in payload:
                await producer.send(stream, body, on_publish_confirm=on_confirm)
        await asyncio.wait_for(all_confirmed.wait(), 120)  # a deadline, should some be missing
        elapsed = time.perf_counter() - started
    if failed:
        raise BenchError(f"RabbitMQ refused {failed:,} of {messages:,} messages to {stream}")
    return messages / elapsed


async def stream_consume(client: dict, stream: str, messages: int) -> float:
    """Read a stream of ``messages`` (and the warm-up message) from its first offset;
    messages per second from the first delivered to the last."""
    arrivals: list[float] = []
    all_received = asyncio.Event()

    def on_message(msg, context) -> None:
        arrivals.append(time.perf_counter())
        if len(arrivals) == messages + 1:
            all_received.set()

    async with Consumer(**client) as consumer:
        await consumer.subscribe(
            stream,
            on_message,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
        )
        await asyncio.wait_for(all_received.wait(), 120)  # a deadline
    return messages / (arrivals[-1] - arrivals[0])  # the warm-up message came first


async def delete_stream(client: dict, stream: str) -> None:
    async with Producer(**client) as producer:
        await producer.delete_stream(stream)


def quorum_consume(url: str, messages: int) -> float:
    """Fill a quorum queue with ``messages`` persistent messages, then consume them all with
    auto-ack; messages per second from the first delivered to the last."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(CONSUME_QUEUE, durable=True, arguments=QUORUM)
        channel.queue_purge(CONSUME_QUEUE)
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        for body in bodies(messages):
            channel.basic_publish("", CONSUME_QUEUE, body, persistent)

        def ready() -> int:
            return channel.queue_declare(CONSUME_QUEUE, passive=True).method.message_count

        wait_until(lambda: ready() == messages, 60, f"{messages:,} messages in {CONSUME_QUEUE}")
        arrivals: list[float] = []

        def on_message(ch, method, properties, body) -> None:
            arrivals.append(time.perf_counter())
            if len(arrivals) == messages:
                ch.stop_consuming()

        channel.basic_consume(CONSUME_QUEUE, on_message, auto_ack=True)
        connection.call_later(120, channel.stop_consuming)  # a deadline, should some be missing
        channel.start_consuming()
    if len(arrivals) != messages:
        raise BenchError(
            f"consumed {len(arrivals):,} of {messages:,} messages from {CONSUME_QUEUE}"
        )
    return (messages - 1) / (arrivals[-1] - arrivals[0])


def measure_streams(
    url: str, stream_url: str, runs: int, messages: int, say: Callable[[str], None]
) -> dict:
    rates: dict[str, list[float]] = {
        "quorum_publish": [],
        "publish": [],
        "send": [],
        "consume": [],
        "quorum_consume": [],
    }
    client = StreamAddress.parse(stream_url).client_args()  # rstream's Producer and Consumer
    for run in range(1, runs + 1):
        say(f"  streams against a quorum queue, run {run} of {runs}: {messages:,} messages each")
        # Interleaved, so that a slower minute on a shared machine hits both sides alike.
        rates["quorum_publish"].append(run_publisher(ASYNC_PUBLISHER, url, messages))
        stream = f"bench-stream-{run}-{secrets.token_hex(2)}"
        rates["publish"].append(asyncio.run(stream_publish(client, stream, messages, True)))
        rates["consume"].append(asyncio.run(stream_consume(client, stream, messages)))
        asyncio.run(delete_stream(client, stream))
        buffered = f"{stream}-send"
        rates["send"].append(asyncio.run(stream_publish(client, buffered, messages, False)))
        asyncio.run(delete_stream(client, buffered))
        rates["quorum_consume"].append(quorum_consume(url, messages))
    return {name: statistics.median(values) for name, values in rates.items()}


# -- the table ----------------------------------------------------------------------------


@dataclass
class Goal:
    text: str
    holds: bool
    figure: str


def rabbitmq_version(broker: Broker, url: str) -> str:
    try:
        return str(broker.management.get("overview")["rabbitmq_version"])
    except (BrokerError, ManagementError, KeyError, TypeError):
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            return server_properties(connection).get("version", "?")


def table(results: dict, runs: int, messages: int, about: str) -> str:
    pub = results["publishing"]
    none = pub["none"]
    one, batches, asynchronous = (pub[s.script] for s in CONFIRM_STRATEGIES)
    rpc, recv = results["rpc"], results["receiver"]
    goals = [
        Goal("batches >= 10x one at a time", batches >= 10 * one, f"{batches / one:.1f}x"),
        Goal(
            "async within 2x of no confirms",
            asynchronous * 2 >= none,
            f"{asynchronous / none:.2f}x the rate without confirms",
        ),
        Goal(
            "RPC client CPU while waiting < 5% of wall time",
            rpc["cpu_waiting"] < 0.05,
            f"{rpc['cpu_waiting']:.2%}",
        ),
        Goal("idle receiver < 1% CPU", recv["idle_cpu"] < 0.01, f"{recv['idle_cpu']:.2%}"),
    ]

    def mark(goal: Goal) -> str:
        return f"{goal.text}: {'holds' if goal.holds else 'DOES NOT HOLD'} ({goal.figure})"

    rows = [
        ("Publish, no confirms (baseline)", f"{none:,.0f} msg/s", "1.00x"),
        *(
            (
                f"Publish, {s.what} (`{Path(s.script).name}`)",
                f"{pub[s.script]:,.0f} msg/s",
                f"{pub[s.script] / none:.2f}x",
            )
            for s in CONFIRM_STRATEGIES
        ),
        ("RPC round trips, fib(1) one after another", f"{rpc['round_trips']:,.0f} /s", ""),
        (
            f"RPC client CPU while waiting {rpc['waited']:.1f} s for "
            f"{rpc['slow_calls']} x fib({SLOW_N})",
            f"{rpc['cpu_waiting']:.2%} of wall time",
            "",
        ),
        (
            f"`receive.py` CPU while idle ({IDLE_SECONDS:g} s windows)",
            f"{recv['idle_cpu']:.2%}",
            "",
        ),
        (
            "Start `send.py` to `receive.py` printing (includes Python start-up)",
            f"{recv['latency'] * 1000:,.0f} ms",
            "",
        ),
    ]
    lines = [
        f"{about}; median of {runs} runs, {messages:,} persistent messages to a quorum queue per "
        "publishing run.",
        "",
        "| Measurement | Median | vs. no confirms |",
        "|---|--:|--:|",
        *(f"| {what} | {value} | {ratio} |" for what, value, ratio in rows),
        "",
        *(f"- {mark(goal)}" for goal in goals),
    ]
    return "\n".join(lines)


def streams_table(streams: dict) -> str:
    """The stream rows, each against the quorum queue's figure from the same run."""
    quorum_publish, quorum_consume = streams["quorum_publish"], streams["quorum_consume"]
    goals = [
        Goal(
            "stream publish >= 5x the quorum queue with asynchronous confirms",
            streams["publish"] >= 5 * quorum_publish,
            f"{streams['publish'] / quorum_publish:.1f}x",
        ),
        Goal(
            "stream consume >= 10x consuming the quorum queue",
            streams["consume"] >= 10 * quorum_consume,
            f"{streams['consume'] / quorum_consume:.1f}x",
        ),
    ]
    rows = [
        (
            "Quorum queue: publish, confirm asynchronously (`publish_async.py`)",
            quorum_publish,
            quorum_publish,
        ),
        (
            "Stream: append with rstream `send_batch` (1,000 a call), until all confirmed",
            streams["publish"],
            quorum_publish,
        ),
        (
            "Stream: append with rstream `send()`, as the tutorial does, until all confirmed",
            streams["send"],
            quorum_publish,
        ),
        ("Quorum queue: consume with pika, auto-ack", quorum_consume, quorum_consume),
        ("Stream: read from the first offset with rstream", streams["consume"], quorum_consume),
    ]
    lines = [
        "| Stream or quorum queue | Median | vs. the quorum queue |",
        "|---|--:|--:|",
        *(
            f"| {what} | {rate:,.0f} msg/s | {rate / against:.2f}x |"
            for what, rate, against in rows
        ),
        "",
        *(
            f"- {goal.text}: {'holds' if goal.holds else 'DOES NOT HOLD'} ({goal.figure})"
            for goal in goals
        ),
    ]
    return "\n".join(lines)


def write_between_markers(path: Path, text: str) -> bool:
    """Replace what is between the bench markers in ``path``, and in the page in Chinese beside
    it (README.zh-CN.md), which shows the same table; False if ``path`` has none."""
    written = False
    for page in (path, path.with_name("README.zh-CN.md")):
        content = page.read_text() if page.exists() else ""
        start, end = content.find(START), content.find(END)
        if 0 <= start < end:
            page.write_text(content[: start + len(START)] + "\n" + text + "\n" + content[end:])
            written = written or page == path
    return written


# -- command line ------------------------------------------------------------------------


def positive_int(text: str) -> int:
    if not text.isdecimal() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_tools.bench",
        description="Measure publisher confirms, RPC round trips, idle CPU, and a stream against "
        "a quorum queue; print the tables.",
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
    args = parser.parse_args(argv)

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
            results = {
                "publishing": measure_publishing(url, args.runs, args.messages, say),
                "rpc": measure_rpc(url, args.runs, say),
                "receiver": measure_receiver(url, args.runs, say),
            }
            if stream_url is None:
                raise BenchError(f"the {broker.source} broker has no stream port")
            streams = measure_streams(url, stream_url, args.runs, args.stream_messages, say)
    except (BenchError, ScriptError, rstream.exceptions.ServerError, OSError) as exc:
        print(f"bench: {exc!r}", file=sys.stderr)
        return 1
    text = table(results, args.runs, args.messages, about)
    stream_text = (
        f"Streams against a quorum queue, {args.stream_messages:,} messages of 20 bytes per "
        f"run:\n\n{streams_table(streams)}"
    )
    say(f"\n{text}\n\n{stream_text}\n\n(measured in {time.monotonic() - started:.0f} s)")
    if args.write:
        tables = {
            README: f"{text}\n\n{stream_text}",
            CONFIRMS_NOTES: text,
            STREAM_NOTES: f"{about}; median of {args.runs} runs.\n\n{stream_text}",
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
