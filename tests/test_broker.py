"""The throwaway broker: each source starts, restarts keeping durable state, and stops clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pika
import pytest

from tutorial_tools.broker import Broker, UrlBroker
from tutorial_tools.processes import ScriptProcess


def publish_kept_message(url: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare("kept", durable=True, arguments={"x-queue-type": "quorum"})
        channel.basic_publish(
            "",
            "kept",
            b"still here",
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
        )


def take_message(url: str) -> bytes | None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        _, _, body = connection.channel().basic_get("kept", auto_ack=True)
        return body


def still_running(described: str) -> list[str]:
    """What of a broker described as `describe()` does still exists on this machine."""
    node = re.search(r"\(node (\S+)\)", described)
    if node:
        found = subprocess.run(["pgrep", "-f", node[1]], capture_output=True, text=True)
        return [f"process {pid} of node {node[1]}" for pid in found.stdout.split()]
    container = re.search(r"\((tutorial-rabbitmq-\S+), image", described)
    assert container, f"cannot tell which broker this is: {described}"
    import docker

    client = docker.from_env()
    try:
        return [c.name for c in client.containers.list(all=True, filters={"name": container[1]})]
    finally:
        client.close()


def test_restart_keeps_a_durable_quorum_queue_and_its_persistent_message(restartable, sandbox):
    publish_kept_message(sandbox.url)
    restartable.restart()
    assert take_message(sandbox.url) == b"still here"
    assert "kept" in restartable.rabbitmqctl("list_queues", "-p", sandbox.vhost, "name")


def test_url_source_uses_the_broker_it_is_given_and_never_stops_it(broker: Broker, sandbox):
    given = UrlBroker(sandbox.url, management_url=broker.management_url).start()
    publish_kept_message(given.url)
    given.stop()
    assert take_message(sandbox.url) == b"still here"
    with pytest.raises(Exception, match="cannot be restarted"):
        given.restart()


def test_command_line_starts_a_broker_and_ctrl_c_leaves_nothing_behind(broker: Broker, tmp_path):
    if broker.source == "url":
        pytest.skip("the url source starts nothing of its own")
    cli = ScriptProcess(
        "tutorial_tools/broker.py",
        ["--source", broker.source],
        env={"RABBITMQ_URL": "", "TUTORIAL_BROKER_STATE": str(tmp_path / "broker.json")},
    )
    try:
        export = cli.wait_for(r"^\s+export RABBITMQ_URL=amqp://", timeout=120)[0]
        described = cli.matching(r"^RabbitMQ is up: ")[0]
        url = export.split("=", 1)[1]
        publish_kept_message(url)
        assert (tmp_path / "broker.json").exists()
        assert cli.interrupt(timeout=60) == 0
    finally:
        cli.stop()
    assert "Traceback" not in cli.output
    assert still_running(described) == []
    assert not (tmp_path / "broker.json").exists()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=2"))


def test_no_source_at_all_names_the_three_ways_to_get_a_broker(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("RABBITMQ_URL", "TUTORIAL_BROKER_SOURCE")
    }
    env["PATH"] = os.path.dirname(sys.executable)
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    env["TUTORIAL_RABBITMQ_SERVER_CANDIDATES"] = ""
    result = subprocess.run(
        [sys.executable, "-m", "tutorial_tools.broker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for way in ("RABBITMQ_URL", "Docker", "apt-get install rabbitmq-server"):
        assert way in result.stderr
