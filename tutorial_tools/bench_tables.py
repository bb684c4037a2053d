"""The bench's tables, as Markdown with the goals each figure meets or not, and --write:
putting them between the bench markers of a README and of the page in Chinese beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tutorial_tools.bench_queues import IDLE_SECONDS, SLOW_N
from tutorial_tools.chapters import CONFIRM_STRATEGIES

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


@dataclass
class Goal:
    text: str
    holds: bool
    figure: str

    def __str__(self) -> str:
        """As the tables list it: whether it holds, and the figure that says so."""
        return f"{self.text}: {'holds' if self.holds else 'DOES NOT HOLD'} ({self.figure})"


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
        *(f"- {goal}" for goal in goals),
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
        *(f"- {goal}" for goal in goals),
    ]
    return "\n".join(lines)


def replication_table(replication: dict, messages: int) -> str:
    """The heading and table of one node against three, or the line that says why not."""
    if "skipped" in replication:
        return f"One node against three: skipped: {replication['skipped']}."
    one, three = replication["one"], replication["three"]
    rows = [
        (
            f"Publish, {s.what} (`{Path(s.script).name}`)",
            f"{one[s.script]:,.0f} msg/s",
            f"{three[s.script]:,.0f} msg/s",
            f"{three[s.script] / one[s.script]:.2f}x",
        )
        for s in CONFIRM_STRATEGIES
    ]
    rows.append(
        (
            "Confirm latency, one message at a time (median of "
            f"{replication['latency_messages']:,} a run)",
            f"{one['latency'] * 1000:.2f} ms",
            f"{three['latency'] * 1000:.2f} ms",
            f"{three['latency'] / one['latency']:.2f}x",
        )
    )
    lines = [
        f"One node against three: a quorum queue on the broker above against one on three "
        f"local nodes, clustered (RabbitMQ {replication['version']}), {messages:,} persistent "
        "messages per run:",
        "",
        "| Confirmed publishing | One node | Three nodes | Three vs. one |",
        "|---|--:|--:|--:|",
        *(f"| {what} | {a} | {b} | {ratio} |" for what, a, b, ratio in rows),
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
