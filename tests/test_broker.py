"""The throwaway broker: each source starts, restarts keeping durable state, and stops clean."""

from __future__ import annotations

import os
import subprocess
import sys

import pika
import pytest

from tutorial_tools.broker import Broker, ContainerBroker, LocalBroker, UrlBroker, make_broker
from tutorial_tools.processes import ScriptProcess

SOURCE = os.environ.get("TUTORIAL_BROKER_SOURCE")


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


def leftovers(broker: Broker) -> list[str]:
    """What of this broker still exists on the machine after its stop."""
    found = []
    if isinstance(broker, LocalBroker):
        if subprocess.run(["pgrep", "-f", broker.node], capture_output=True).returncode == 0:
            found.append(f"a process of node {broker.node}")
        if broker.workdir is not None:
            found.append(f"directory {broker.workdir}")
    if isinstance(broker, ContainerBroker):
        import docker

        client = docker.from_env()
        found += [c.name for c in client.containers.list(all=True, filters={"name": broker.name})]
        client.close()
    return found


@pytest.fixture
def fresh_broker(broker: Broker):
    """A second broker from the session's own source, for tests that stop it."""
    if broker.source == "url":
        pytest.skip("the url source starts nothing of its own")
    fresh = make_broker(broker.source)
    try:
        yield fresh
    finally:
        fresh.stop()


def test_broker_starts_restarts_keeping_durable_state_and_stops_clean(fresh_broker: Broker):
    fresh_broker.start()
    publish_kept_message(fresh_broker.url)

    fresh_broker.restart()

    assert take_message(fresh_broker.url) == b"still here"
    assert "kept" in fresh_broker.rabbitmqctl("list_queues", "name")
    fresh_broker.stop()
    assert leftovers(fresh_broker) == []


def test_url_source_uses_the_broker_it_is_given_and_never_stops_it(broker: Broker):
    given = UrlBroker(broker.url, management_url=broker.management_url).start()
    publish_kept_message(given.url)
    given.stop()
    assert take_message(broker.url) == b"still here"
    with pytest.raises(Exception, match="cannot be restarted"):
        given.restart()


def test_command_line_prints_the_export_line_and_stops_on_ctrl_c(broker: Broker):
    if broker.source == "url":
        pytest.skip("the url source starts nothing of its own")
    cli = ScriptProcess(
        "tutorial_tools/broker.py", ["--source", broker.source], env={"RABBITMQ_URL": ""}
    )
    try:
        export = cli.wait_for(r"^\s+export RABBITMQ_URL=amqp://", timeout=120)[0]
        url = export.split("=", 1)[1]
        publish_kept_message(url)
        assert cli.interrupt(timeout=60) == 0
    finally:
        cli.stop()
    assert "Traceback" not in cli.output
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=2"))


def test_no_source_at_all_names_the_three_ways_to_get_a_broker(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RABBITMQ_URL", "DOCKER_HOST", "TUTORIAL_BROKER_SOURCE")
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
