"""Publisher confirms: the claims of publisher_confirms/README.md, against a real broker.

The scripts run as processes, as a learner runs them; pika is used directly only to look at
the broker: what a queue holds, a queue's limit, the connections it closes.
"""

from __future__ import annotations

import re
import time

import pytest

from tutorial_tools.chapters import CONFIRM_STRATEGIES

N = 1000

# script, its queue, the prefix of its message bodies
STRATEGIES = [(s.script, s.queue, s.prefix) for s in CONFIRM_STRATEGIES]
NACKED = r"^ \[!\] [\d,]+ messages? were nacked \(async-"


def take_all(sandbox, queue: str) -> list[str]:
    """Every message in ``queue``, taken off it: their bodies, in queue order."""
    with sandbox.connection() as connection:
        channel = connection.channel()
        count = channel.queue_declare(queue, passive=True).method.message_count
        bodies: list[str] = []
        if count:
            # inactivity_timeout is only a deadline: the loop ends once `count` have arrived.
            for method, _, body in channel.consume(queue, auto_ack=True, inactivity_timeout=10):
                if method is None:
                    break
                bodies.append(body.decode())
                if len(bodies) == count:
                    break
            channel.cancel()
        return bodies


def limit_queue(sandbox, queue: str, max_length: int) -> None:
    """A policy: ``queue`` holds about ``max_length`` messages and nacks (reject-publish) more."""
    sandbox.set_policy("limit", queue, {"max-length": max_length, "overflow": "reject-publish"})


@pytest.mark.parametrize(
    "script, queue, prefix", STRATEGIES, ids=[prefix for _, _, prefix in STRATEGIES]
)
def test_every_confirmed_message_is_in_the_queue_once(
    sandbox, script: str, queue: str, prefix: str
) -> None:
    proc = sandbox.run(script, str(N))
    assert proc.process.returncode == 0, proc.output
    assert f" [x] {N:,} of {N:,} messages confirmed" in proc.stdout, proc.output
    assert re.fullmatch(rf"Published {N:,} messages .+ in [\d,]+ ms", proc.stdout[-1])
    assert sorted(take_all(sandbox, queue)) == sorted(f"{prefix}-{i}" for i in range(N))


def test_each_run_starts_from_an_empty_queue(sandbox) -> None:
    sandbox.run("publisher_confirms/publish_in_batches.py", "300")
    sandbox.run("publisher_confirms/publish_in_batches.py", "120")
    assert sandbox.message_count("confirms_batches") == 120


def test_unroutable_message_is_confirmed_and_dropped_unless_mandatory(sandbox) -> None:
    proc = sandbox.run("publisher_confirms/returns_and_nacks.py")
    assert proc.process.returncode == 0, proc.output
    assert " [x] 'Anyone?' was confirmed and dropped: no queue took it" in proc.stdout
    assert " [!] 'Hello?' (mandatory) was returned: 312 NO_ROUTE" in proc.stdout
    assert "no_such_queue" not in sandbox.queue_names()


def test_a_full_queue_nacks_and_keeps_what_it_took(sandbox) -> None:
    proc = sandbox.run("publisher_confirms/returns_and_nacks.py")
    assert " [x] 'first' was confirmed: queue 'confirms_full' has it" in proc.stdout
    assert " [!] 'second' was nacked: queue 'confirms_full' is full (max length 1)" in proc.stdout
    assert take_all(sandbox, "confirms_full") == ["first"]


@pytest.mark.parametrize(
    "script, queue, prefix", STRATEGIES[:2], ids=[prefix for _, _, prefix in STRATEGIES[:2]]
)
def test_one_at_a_time_and_batches_stop_at_the_first_nack(
    sandbox, script: str, queue: str, prefix: str
) -> None:
    limit_queue(sandbox, queue, 100)
    proc = sandbox.run(script, str(N))
    assert proc.process.returncode == 1
    (line,) = proc.stderr
    found = re.fullmatch(rf" \[!\] The broker nacked {prefix}-\d+: ([\d,]+) of {N:,} .*", line)
    assert found, proc.output
    # What was confirmed before the nack is in the queue.
    confirmed = int(found.group(1).replace(",", ""))
    assert set(take_all(sandbox, queue)) >= {f"{prefix}-{i}" for i in range(confirmed)}


def test_async_publishes_nacked_messages_again_until_the_broker_takes_them(
    sandbox,
) -> None:
    limit_queue(sandbox, "confirms_async", 100)
    proc = sandbox.start("publisher_confirms/publish_async.py", str(N), ready=NACKED)
    # A consumer makes room; the messages published again are then taken.
    taken = []
    deadline = time.monotonic() + 60
    with sandbox.connection() as connection:
        channel = connection.channel()
        for method, _, body in channel.consume(
            "confirms_async", auto_ack=True, inactivity_timeout=0.5
        ):
            if method is not None:
                taken.append(body.decode())
            elif proc.process.poll() is not None:
                break  # the publisher is done and nothing more arrives
            assert time.monotonic() < deadline, f"publish_async.py still running:\n{proc.output}"
        channel.cancel()
    assert proc.wait() == 0, proc.output
    assert f" [x] {N:,} of {N:,} messages confirmed" in proc.stdout
    taken += take_all(sandbox, "confirms_async")
    assert sorted(taken) == sorted(f"async-{i}" for i in range(N))


@pytest.mark.parametrize(
    "end, code, line",
    [
        ("ctrl-c", 0, r"^ \[\*\] Interrupted$"),
        ("broker closes it", 1, r"^ \[!\] ConnectionClosedByBroker: .*CONNECTION_FORCED"),
    ],
    ids=["ctrl-c", "broker-closes-it"],
)
def test_async_publisher_ends_like_every_script(sandbox, end: str, code: int, line: str) -> None:
    if end == "broker closes it" and sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    # While the queue is full the publisher keeps going: nacks, then publishing again.
    limit_queue(sandbox, "confirms_async", 100)
    proc = sandbox.start("publisher_confirms/publish_async.py", str(N), ready=NACKED)
    if end == "ctrl-c":
        assert proc.interrupt() == code
    else:
        sandbox.rabbitmqctl("close_all_connections", "-p", sandbox.vhost, "test")
        assert proc.wait() == code
    assert proc.matching(line), proc.output
    assert "Traceback" not in proc.output
