"""The AMQP 1.0 track (amqp10/): the same chapters on RabbitMQ's own AMQP 1.0 client, checked
the same way as the pika chapters, and against them: both protocols on the same queues."""

from __future__ import annotations

import queue
import re

import common_tail
import pika
import pytest
from rabbitmq_amqp_python_client import (
    ApplicationProperties,
    Header,
    Message,
    OutcomeState,
    Properties,
)

from tutorial_tools.chapters import WAITING_MESSAGES
from tutorial_tools.probes import amqp10_connection
from tutorial_tools.processes import ROOT, run_script
from tutorial_tools.waiting import wait_until

SINCE_4_0 = pytest.mark.rabbitmq(
    since=(4, 0), otherwise="RabbitMQ speaks AMQP 1.0 natively since 4.0 (test_before_4_0_...)"
)
SEND, RECEIVE = "amqp10/hello_world/send.py", "amqp10/hello_world/receive.py"
NEW_TASK, WORKER = "amqp10/work_queues/new_task.py", "amqp10/work_queues/worker.py"
# Every script of the track, each with what it needs on its command line to get as far as
# connecting (the receivers of chapters 4 and 5 print their usage line without a key).
SCRIPTS = {
    path.relative_to(ROOT).as_posix(): () for path in sorted((ROOT / "amqp10").glob("*/*.py"))
} | {
    "amqp10/routing/receive_logs_direct.py": ("error",),
    "amqp10/topics/receive_logs_topic.py": ("kern.*",),
}
SENT = " [x] Sent 'Hello World!'"
RECEIVED = " [x] Received Hello World!"


def received(proc) -> list[str]:
    return proc.matching(r"^ \[x\] Received ")


@SINCE_4_0
def test_the_message_sent_arrives_at_the_receiver_once(sandbox):
    receiver = sandbox.start(RECEIVE, ready=WAITING_MESSAGES)
    sender = sandbox.run(SEND)
    receiver.wait_for(re.escape(RECEIVED))
    # Ctrl+C ends the receiver; the queue holds nothing more: the message was accepted, once.
    assert receiver.interrupt() == 0
    assert (sender.process.returncode, sender.stdout, sender.stderr) == (0, [SENT], [])
    assert received(receiver) == [RECEIVED]
    assert receiver.stderr == []
    assert sandbox.message_count("hello") == 0


@SINCE_4_0
def test_a_message_sent_before_the_receiver_starts_waits_in_the_queue(sandbox):
    assert sandbox.run(SEND).process.returncode == 0
    wait_until(lambda: sandbox.message_count("hello") == 1, 10, "the message in queue 'hello'")
    receiver = sandbox.start(RECEIVE)
    receiver.wait_for(re.escape(RECEIVED))
    assert receiver.interrupt() == 0
    assert received(receiver) == [RECEIVED]
    assert sandbox.message_count("hello") == 0


@SINCE_4_0
@pytest.mark.parametrize(
    ("sender", "receiver"),
    [
        ("hello_world/send.py", RECEIVE),  # AMQP 0-9-1 in, AMQP 1.0 out
        (SEND, "hello_world/receive.py"),  # and back
    ],
)
def test_the_pika_chapter_and_the_amqp10_chapter_meet_on_the_same_queue(sandbox, sender, receiver):
    # Both declare 'hello' alike (durable, quorum): neither refuses the other's declaration.
    receiving = sandbox.start(receiver, ready=WAITING_MESSAGES)
    sending = sandbox.run(sender)
    assert (sending.process.returncode, sending.stderr) == (0, [])
    receiving.wait_for(re.escape(RECEIVED))
    assert receiving.interrupt() == 0
    assert received(receiving) == [RECEIVED]
    assert sandbox.message_count("hello") == 0


LONG = "A long task" + "." * 60  # a minute: it is never finished here


@SINCE_4_0
def test_a_task_in_hand_at_ctrl_c_goes_to_another_worker_marked_redelivered(sandbox):
    busy = sandbox.start(WORKER, ready=WAITING_MESSAGES)
    assert sandbox.run(NEW_TASK, LONG).process.returncode == 0
    busy.wait_for(r"^ \[x\] Received A long task")
    other = sandbox.start(WORKER, ready=WAITING_MESSAGES)
    # Ctrl+C in the middle of the task: the worker stops at once, never accepts it, and
    # RabbitMQ hands it to the other worker, marked as delivered before.
    assert busy.interrupt() == 0
    assert busy.matching(r"^ \[x\] Done") == []
    other.wait_for(r"^ \[x\] Received A long task\.+ \(redelivered\)$")
    assert other.interrupt() == 0
    assert busy.stderr == other.stderr == []
    # Accepted by neither: the task is back in the queue.
    wait_until(lambda: sandbox.message_count("task_queue") == 1, 10, "the long task back")


@pytest.mark.rabbitmq(
    since=(4, 3),
    otherwise="with this client, a worker with one credit was sent more tasks while busy "
    "(measured on 4.0.5; the notes say so)",
)
def test_one_credit_gives_a_busy_worker_no_second_task(sandbox):
    busy = sandbox.start(WORKER, ready=WAITING_MESSAGES)
    assert sandbox.run(NEW_TASK, LONG).process.returncode == 0
    busy.wait_for(r"^ \[x\] Received A long task")
    free = sandbox.start(WORKER, ready=WAITING_MESSAGES)
    quick = [f"Task {n}." for n in range(1, 4)]
    for task in quick:
        assert sandbox.run(NEW_TASK, task).stdout == [f" [x] Sent {task}"]
    # RabbitMQ sends the busy worker nothing until it settles its task: the free one does
    # every quick task, in order.
    free.wait_for(r"^ \[x\] Done", count=3)
    assert received(free) == [f" [x] Received {task}" for task in quick]
    assert len(received(busy)) == 1
    assert busy.interrupt() == free.interrupt() == 0


@SINCE_4_0
def test_a_task_is_durable_as_the_notes_say(sandbox):
    """new_task.py marks each task durable in its AMQP 1.0 header; pika sees it persistent."""
    assert sandbox.run(NEW_TASK, "Durable.").process.returncode == 0
    with sandbox.connection() as connection:
        _, properties, body = connection.channel().basic_get("task_queue", auto_ack=True)
    assert body == b"Durable."
    assert properties.delivery_mode == 2


@SINCE_4_0
def test_a_receiver_whose_queue_is_deleted_says_so_and_exits_1(sandbox):
    receiver = sandbox.start(RECEIVE, ready=WAITING_MESSAGES)
    # Its line comes just before its link opens (so that no delivery prints into it): wait.
    wait_until(lambda: sandbox.consumer_count("hello") == 1, 10, "the receiver's link")
    sandbox.broker.management.delete("queues", sandbox.vhost, "hello")
    assert receiver.wait() == 1
    # Its last line (before it, the client logs the broker's detach: amqp:resource-deleted).
    assert receiver.stderr[-1] == " [!] RabbitMQ ended the consumer: was the queue 'hello' deleted?"


@pytest.mark.rabbitmq(before=(4, 0), otherwise="it speaks AMQP 1.0 (the other tests here)")
@pytest.mark.parametrize("script", SCRIPTS)
def test_before_4_0_each_script_says_in_one_line_that_it_needs_4_0(sandbox, script):
    proc = sandbox.run(script, *SCRIPTS[script])
    assert proc.process.returncode == 1
    where = sandbox.url.rpartition("@")[2]
    assert proc.stderr == [
        f" [!] AMQP 1.0 chapters need RabbitMQ 4.0 or newer at {where} "
        "(run 'make doctor' to diagnose)"
    ]


def test_every_amqp10_script_ends_with_the_same_short_tail():
    tails = common_tail.tails(
        "from rabbitmq_amqp_python_client import", "# the same in every AMQP 1.0 script: "
    )
    assert set(tails) == set(SCRIPTS)
    assert common_tail.differing(tails, SEND) == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_nothing_listening_is_one_line_and_exit_1(script, port):
    url = f"amqp://guest:guest@127.0.0.1:{port['refused']}/%2F"
    proc = run_script(script, SCRIPTS[script], url=url)
    assert proc.process.returncode == 1
    assert len(proc.stderr) == 1
    assert proc.stderr[0].startswith(" [!] ConnectionRefusedError(")


# What a message's properties become across the protocols (the notes' table). From pika:
PIKA_PROPERTIES = dict(
    content_type="text/plain",
    message_id="m-1",
    correlation_id="c-1",
    delivery_mode=2,
    priority=3,
    expiration="60000",
    type="greeting",
    app_id="demo",
    timestamp=1_700_000_000,
    headers={"x-attempts": 2, "colour": "blue"},
)


@SINCE_4_0
def test_a_pika_message_read_over_amqp10_carries_its_properties_as_the_notes_say(
    sandbox, rabbitmq_version
):
    connection = amqp10_connection(sandbox.url)
    try:
        connection.management().queue("props").quorum().queue().declare()
        with sandbox.connection() as pika_connection:
            properties = pika.BasicProperties(**PIKA_PROPERTIES, reply_to="replies")
            pika_connection.channel().basic_publish("", "props", b"from pika", properties)
        arrived = queue.Queue()
        connection.consumer_builder().queue("props").message_handler(
            lambda context, message: (arrived.put(message), context.accept())
        ).build()
        message = arrived.get(timeout=20)
    finally:
        connection.close()
    assert message.body_as_bytes() == b"from pika"
    header, props = message.header, message.properties
    assert (header.durable, header.priority, header.ttl) == (True, 3, 60_000)
    assert (props.content_type, props.message_id, props.correlation_id) == (
        "text/plain",
        "m-1",
        "c-1",
    )
    assert (props.group_id, props.creation_time) == ("demo", 1_700_000_000_000)  # app_id; ms
    assert message.application_properties.value == {"colour": "blue"}
    annotations = message.message_annotations.value
    assert {key: annotations[key] for key in ("x-attempts", "x-basic-type")} == {
        "x-attempts": 2,
        "x-basic-type": "greeting",
    }
    assert (annotations["x-exchange"], annotations["x-routing-key"]) == ("", "props")
    # A queue name in reply_to becomes an address on 4.3 (and stays a name on 4.0).
    assert props.reply_to == ("/queues/replies" if rabbitmq_version >= (4, 3) else "replies")


@SINCE_4_0
def test_an_amqp10_message_read_by_pika_carries_its_properties_as_the_notes_say(
    sandbox, rabbitmq_version
):
    connection = amqp10_connection(sandbox.url)
    try:
        connection.management().queue("props").quorum().queue().declare()
        message = Message(
            "from amqp10",
            header=Header(durable=True, priority=5),
            properties=Properties(
                message_id="m-2",
                correlation_id="c-2",
                reply_to="/queues/replies",
                content_type="text/plain",
                creation_time=1_700_000_000_000,
                group_id="g",
            ),
            application_properties=ApplicationProperties({"colour": "red", "n": 7}),
        )
        publisher = connection.publisher_builder().queue("props").build()
        assert publisher.publish(message).outcome.state == OutcomeState.ACCEPTED
    finally:
        connection.close()
    with sandbox.connection() as pika_connection:
        _, props, body = pika_connection.channel().basic_get("props", auto_ack=True)
    assert body == b"from amqp10"
    assert (props.delivery_mode, props.priority, props.content_type) == (2, 5, "text/plain")
    assert (props.message_id, props.correlation_id) == ("m-2", "c-2")
    assert (props.app_id, props.timestamp) == ("g", 1_700_000_000)  # group_id; seconds
    assert props.headers == {"colour": "red", "n": 7}
    # An address in reply_to becomes a queue name on 4.3 (and stays an address on 4.0).
    assert props.reply_to == ("replies" if rabbitmq_version >= (4, 3) else "/queues/replies")
