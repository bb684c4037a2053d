"""The cluster chapter's scripts fail well without a cluster: one line, a non-zero exit.

They need no broker for that, so these run in make test; what they do on a cluster is
tests/test_cluster.py's (make test-cluster).
"""

from __future__ import annotations

import common_tail
import pytest

from tutorial_tools.processes import run_script
from tutorial_tools.rabbitmq_server import free_ports

HINT = "(run 'make doctor' to diagnose)"
SCRIPTS = ["publisher.py", "consumer.py", "stream_publisher.py", "stream_consumer.py"]


def nowhere() -> dict[str, str]:
    """Every node's address a port where nothing listens."""
    ports = free_ports(3)
    return {
        "RABBITMQ_URLS": ",".join(f"amqp://guest:guest@127.0.0.1:{p}/%2F" for p in ports),
        "RABBITMQ_STREAM_URLS": ",".join(
            f"rabbitmq-stream://guest:guest@127.0.0.1:{p}/%2F" for p in ports
        ),
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_node_answering_is_one_line_naming_every_node(script):
    env = nowhere()
    proc = run_script(f"cluster/{script}", env=env, timeout=60)
    assert proc.process.returncode == 1
    [line] = proc.stderr
    name = "RABBITMQ_STREAM_URLS" if script.startswith("stream") else "RABBITMQ_URLS"
    where = ",".join(url.rpartition("@")[2] for url in env[name].split(","))
    assert line.startswith(" [!] ") and line.endswith(f" at {where} {HINT}"), line
    assert "guest:guest" not in proc.output


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("publisher.py", ["many"]),
        ("publisher.py", ["10", "20"]),
        ("consumer.py", ["--quorum"]),
        ("stream_publisher.py", ["-5"]),
    ],
)
def test_a_wrong_argument_is_its_usage_line(script, args):
    proc = run_script(f"cluster/{script}", args, env=nowhere(), timeout=30)
    assert proc.process.returncode == 1
    [line] = proc.stderr
    assert line.startswith(f"Usage: python {script} ["), line


def test_a_stream_url_of_another_scheme_is_one_line():
    env = {"RABBITMQ_STREAM_URLS": "amqp://guest:guest@127.0.0.1:5672/%2F"}
    proc = run_script("cluster/stream_consumer.py", env=env, timeout=30)
    assert proc.process.returncode == 1
    assert proc.stderr == [
        " [!] ValueError('RABBITMQ_STREAM_URLS must be rabbitmq-stream:// URLs') at "
        f"127.0.0.1:5672/%2F {HINT}"
    ]


def test_the_cluster_scripts_end_with_the_same_tail_of_at_most_15_lines_per_client():
    pika_tails = common_tail.tails("import pika", "# the same in every cluster script: ", "cluster")
    assert sorted(pika_tails) == ["cluster/consumer.py", "cluster/publisher.py"]
    assert common_tail.differing(pika_tails, "cluster/publisher.py") == []
    stream_tails = common_tail.tails(
        "from rstream import", "# the same in every cluster stream script: ", "cluster"
    )
    assert sorted(stream_tails) == ["cluster/stream_consumer.py", "cluster/stream_publisher.py"]
    assert common_tail.differing(stream_tails, "cluster/stream_publisher.py") == []
