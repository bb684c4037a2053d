"""The bench's cost of replication: confirmed publishing to a quorum queue on one node (the
bench's broker) against one replicated on three (a LocalCluster of its own, started for this
section and stopped at its end, also on Ctrl+C). How it is measured: bench.py."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pika

from tutorial_tools.bench_queues import QUORUM, BenchError, confirmed_rates, medians
from tutorial_tools.cluster import SIZE, LocalCluster
from tutorial_tools.management import ManagementError
from tutorial_tools.sources import Broker, BrokerError, BrokerUnavailable

LATENCY_MESSAGES = 500  # at most this many confirms timed one by one per run and side
LATENCY_QUEUE = "bench_confirm_latency"


def confirm_latency(url: str, replicas: int, messages: int) -> float:
    """The median time from basic_publish to its confirm, one message at a time, as
    publish_individually.py publishes (same bodies and properties), to a quorum queue declared
    with ``x-quorum-initial-group-size: replicas``."""
    arguments = {**QUORUM, "x-quorum-initial-group-size": replicas}
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    times = []
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(LATENCY_QUEUE, durable=True, arguments=arguments)
        channel.queue_purge(LATENCY_QUEUE)
        channel.confirm_delivery()
        for i in range(messages):
            started = time.perf_counter()
            try:  # in confirm mode, returns once the broker has confirmed the message
                channel.basic_publish("", LATENCY_QUEUE, f"individually-{i}", properties)
            except pika.exceptions.NackError as exc:
                raise BenchError(f"the broker nacked a message of {LATENCY_QUEUE}") from exc
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def replicas(broker: Broker, url: str) -> dict[str, int]:
    """How many members each quorum queue of the URL's virtual host has."""
    vhost = pika.URLParameters(url).virtual_host
    queues = broker.management.get("queues", vhost)
    return {q["name"]: len(q.get("members", ())) for q in queues if q.get("type") == "quorum"}


def check_replicas(broker: Broker, url: str, expected: int, where: str) -> None:
    """BenchError unless every quorum queue there has ``expected`` members."""
    wrong = {name: n for name, n in replicas(broker, url).items() if n != expected}
    if wrong:
        raise BenchError(f"quorum queues with other than {expected} members on {where}: {wrong}")


def check_sides(broker: Broker, url: str, node: Broker, say: Callable[[str], None]) -> None:
    """BenchError unless the quorum queues have one member on the bench's broker and three on
    the cluster. The scripts declare their queues themselves, without a group size (a
    declaration with one would not be equivalent to theirs): theirs get the broker's default,
    every node up to three (quorum_cluster_size)."""
    check_replicas(node, node.url, SIZE, f"the {SIZE}-node cluster")
    try:
        check_replicas(broker, url, 1, f"the {broker.source} broker")
    except (BrokerError, ManagementError) as exc:  # a broker by URL may have no API
        say(f"  (cannot count the replicas on the {broker.source} broker: {exc})")


def measure_replication(
    broker: Broker, url: str, runs: int, messages: int, say: Callable[[str], None]
) -> dict:
    """Each confirm strategy's messages per second, and the median confirm latency one
    message at a time, on the bench's broker (at ``url``) and on three clustered local nodes;
    ``{"skipped": why}`` where no local cluster can be had."""
    try:
        cluster = LocalCluster()
    except BrokerUnavailable as exc:
        say(f"  one node against three: skipped: {exc}")
        return {"skipped": str(exc)}
    say(f"  one node against three: starting {SIZE} local RabbitMQ nodes and clustering them ...")
    try:
        try:
            cluster.start()
        except (BrokerError, RuntimeError) as exc:
            raise BenchError(f"the {SIZE}-node cluster did not start: {exc}") from exc
        node = cluster.nodes[0]  # the publishers' node: quorum queues put their leader there
        sides = {"one": (url, 1), "three": (node.url, SIZE)}
        latency_messages = min(messages, LATENCY_MESSAGES)
        results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for run in range(1, runs + 1):
            say(f"  one node against three, run {run} of {runs}: {messages:,} messages each way")
            # Interleaved, so that a slower minute on a shared machine hits both sides alike.
            for side, (side_url, size) in sides.items():
                latency = confirm_latency(side_url, size, latency_messages)
                results[side].append({**confirmed_rates(side_url, messages), "latency": latency})
            if run == 1:  # every queue declared by now
                check_sides(broker, url, node, say)
        version = node.management.get("overview")["rabbitmq_version"]
    except ManagementError as exc:
        raise BenchError(f"the cluster's management API: {exc}") from exc
    finally:
        say(f"  stopping the {SIZE} local nodes ...")
        cluster.stop()
    return {
        **{side: medians(values) for side, values in results.items()},
        "version": version,
        "latency_messages": latency_messages,
    }
