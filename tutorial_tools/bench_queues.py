"""The bench's measurements on queues, with pika: what publisher confirms cost against
publishing without them, RPC round trips and the client's CPU while it waits, and an idle
receiver. How each is measured: bench.py."""

from __future__ import annotations

import functools
import importlib.util
import re
import statistics
import time
from collections.abc import Callable

import pika
import psutil

from tutorial_tools.chapters import AWAITING_RPC, CONFIRM_STRATEGIES, WAITING_MESSAGES
from tutorial_tools.processes import ROOT, ScriptProcess, run_script

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


def confirmed_rates(url: str, messages: int) -> dict[str, float]:
    """One run of each confirm strategy's script with N messages: messages per second, by
    script. One after the other, so that a slower minute on a shared machine hits every
    strategy alike."""
    return {s.script: run_publisher(s.script, url, messages) for s in CONFIRM_STRATEGIES}


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (every run has the same keys)."""
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def measure_publishing(url: str, runs: int, messages: int, say: Callable[[str], None]) -> dict:
    results = []
    for run in range(1, runs + 1):
        say(f"  publishing, run {run} of {runs}: {messages:,} messages each way")
        none = UnconfirmedPublisher(url, messages).run()
        results.append({"none": none, **confirmed_rates(url, messages)})
    return medians(results)


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
