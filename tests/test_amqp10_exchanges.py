"""The AMQP 1.0 track's exchange chapters (amqp10/publish_subscribe, routing, topics): the same
tables as the pika chapters (tutorial_tools/chapters_pika.py), run with the AMQP 1.0 scripts of
the same names, which must print the same lines. What AMQP 1.0 adds: the sender learns that no
queue took a message (RabbitMQ settles it 'released'), where pika's scripts never know."""

from __future__ import annotations

import dataclasses
import re

import pytest
from test_amqp10 import SCRIPTS, SINCE_4_0

from tutorial_tools.chapters import PUBLISH_SUBSCRIBE, ROUTING, TOPICS, WAITING_LOGS, route
from tutorial_tools.processes import ScriptProcess, run_script
from tutorial_tools.waiting import wait_until

EMIT, RECEIVE = "amqp10/publish_subscribe/emit_log.py", "amqp10/publish_subscribe/receive_logs.py"
EMIT_DIRECT, RECEIVE_DIRECT = (
    "amqp10/routing/emit_log_direct.py",
    "amqp10/routing/receive_logs_direct.py",
)
EMIT_TOPIC, RECEIVE_TOPIC = "amqp10/topics/emit_log_topic.py", "amqp10/topics/receive_logs_topic.py"
# The receivers, each started with the arguments test_amqp10.SCRIPTS gives it.
RECEIVERS = (RECEIVE, RECEIVE_DIRECT, RECEIVE_TOPIC)
INTERRUPTED = " [*] Interrupted"


def on_amqp10(chap):
    """A pika chapter's table, with the AMQP 1.0 script of the same name in each place."""

    def moved(part):
        return dataclasses.replace(part, script=f"amqp10/{part.script}")

    return dataclasses.replace(
        chap,
        terminals=tuple(map(moved, chap.terminals)),
        steps=tuple(map(moved, chap.steps)),
        client="amqp10",
    )


AMQP10_ROUTING, AMQP10_TOPICS = on_amqp10(ROUTING), on_amqp10(TOPICS)
Q1, Q2, Q3 = (terminal.name for terminal in TOPICS.terminals)
TOPIC_ROWS = [  # the pika chapter's rows, and the two more of its test (tests/test_topics.py)
    *AMQP10_TOPICS.steps,
    route("lazy.orange.elephant", "the official tutorial's example", Q1, Q2, Q3, script=EMIT_TOPIC),
    route("lazy", "# matches zero words too", Q2, Q3, script=EMIT_TOPIC),
]


def logs(receiver: ScriptProcess) -> list[str]:
    """The message lines a receiver printed, in order."""
    return receiver.matching(r"^ \[x\] ")


def line(text: str) -> str:
    """A pattern for exactly this line."""
    return f"^{re.escape(text)}$"


def emit(sandbox, script: str, *args: str) -> ScriptProcess:
    sender = sandbox.run(script, *args)
    assert sender.process.returncode == 0, sender.output
    return sender


def stopped_by_ctrl_c(receiver: ScriptProcess) -> None:
    assert receiver.interrupt() == 0
    assert receiver.stdout[-1] == INTERRUPTED
    assert receiver.stderr == []


@pytest.fixture(scope="module")
def amqp10_broker(rabbitmq_version):
    """The marker's skip, for the module fixtures: they start before it is checked."""
    if rabbitmq_version < SINCE_4_0.kwargs["since"]:
        major, minor = rabbitmq_version
        pytest.skip(f"on RabbitMQ {major}.{minor}, {SINCE_4_0.kwargs['otherwise']}")


@pytest.fixture(scope="module")
def routing(amqp10_broker, module_sandbox):
    return module_sandbox.terminals(AMQP10_ROUTING)


@pytest.fixture(scope="module")
def topics(amqp10_broker, module_sandbox):
    return module_sandbox.terminals(AMQP10_TOPICS)


# -- Publish/Subscribe: the fanout exchange 'logs' -------------------------------------------


@SINCE_4_0
def test_every_running_receiver_gets_every_message_once(sandbox):
    receivers = [sandbox.start(RECEIVE, ready=WAITING_LOGS) for _ in range(3)]
    messages = [step.args[0] for step in PUBLISH_SUBSCRIBE.steps] + ["error: Disk full"]
    for message in messages:
        sender = emit(sandbox, EMIT, message)
        # Bound queues took it: accepted, and the sender prints what pika's does, nothing more.
        assert (sender.stdout, sender.stderr) == ([f" [x] Sent {message}"], [])
    for receiver in receivers:
        receiver.wait_for(line(f" [x] {messages[-1]}"))  # in order: the last one is the last
    assert [logs(receiver) for receiver in receivers] == [[f" [x] {m}" for m in messages]] * 3
    for receiver in receivers:
        stopped_by_ctrl_c(receiver)


@SINCE_4_0
def test_a_receiver_started_after_a_message_was_sent_does_not_get_it(sandbox):
    early = sandbox.start(RECEIVE, ready=WAITING_LOGS)
    emit(sandbox, EMIT, "info: before the second receiver")
    early.wait_for(line(" [x] info: before the second receiver"))
    late = sandbox.start(RECEIVE, ready=WAITING_LOGS)
    emit(sandbox, EMIT, "info: after it started")
    for receiver in (early, late):
        receiver.wait_for(line(" [x] info: after it started"))
    assert logs(early) == [" [x] info: before the second receiver", " [x] info: after it started"]
    assert logs(late) == [" [x] info: after it started"]


@SINCE_4_0
@pytest.mark.parametrize(
    "stop", [ScriptProcess.interrupt, ScriptProcess.kill], ids=["Ctrl+C", "SIGKILL"]
)
def test_a_receivers_own_exclusive_queue_disappears_when_it_exits(sandbox, stop):
    receiver = sandbox.start(RECEIVE, ready=WAITING_LOGS)
    (queue,) = sandbox.broker.management.get("queues", sandbox.vhost)
    # As the script says: named by the client, exclusive, and (this client declares no other)
    # durable, which RabbitMQ allows for an exclusive queue.
    assert queue["name"].startswith("client.gen-")
    assert (queue["exclusive"], queue["durable"], queue["type"]) == (True, True, "classic")
    stop(receiver)
    wait_until(lambda: sandbox.queue_names() == set(), 10, f"queue {queue['name']} to go")


# -- Routing and Topics: the chapters' own tables ----------------------------------------------


@SINCE_4_0
@pytest.mark.parametrize("step", AMQP10_ROUTING.steps, ids=[s.says for s in ROUTING.steps])
def test_each_severity_reaches_exactly_the_receivers_bound_to_it(routing, step):
    assert routing.arrivals(step) == AMQP10_ROUTING.promised(step, AMQP10_ROUTING.steps[-1])


@SINCE_4_0
def test_two_queues_bound_with_the_same_key_both_get_the_message(sandbox):
    first, second = (sandbox.start(RECEIVE_DIRECT, "warning", ready=WAITING_LOGS) for _ in "12")
    emit(sandbox, EMIT_DIRECT, "warning", "Disk 90% full")
    for receiver in (first, second):
        receiver.wait_for(line(" [x] warning:Disk 90% full"))
    assert logs(first) == logs(second) == [" [x] warning:Disk 90% full"]


@SINCE_4_0
@pytest.mark.parametrize("step", TOPIC_ROWS, ids=[s.says for s in TOPIC_ROWS])
def test_a_routing_key_reaches_the_queues_whose_patterns_match_it_once(topics, step):
    assert topics.arrivals(step) == AMQP10_TOPICS.promised(step, AMQP10_TOPICS.steps[-1])


# -- A message no queue takes ----------------------------------------------------------------

# What no queue takes: the sender (with no receiver, or one bound to other keys) and its
# arguments; the line the pika script prints too, and the one it cannot: RabbitMQ settles such a
# message 'released' (4.0 as 4.3). Then one the receiver is bound to, and what it prints for it.
UNROUTED = {
    "fanout": (
        (EMIT, "nobody listens"),
        None,
        [" [x] Sent nobody listens"],
        [" [!] Released: no queue is bound to 'logs'"],
        None,
    ),
    "direct": (
        (EMIT_DIRECT, "debug", "Nobody is bound to debug"),
        (RECEIVE_DIRECT, "error"),
        [" [x] Sent debug:Nobody is bound to debug"],
        [" [!] Released: no queue is bound to 'debug'"],
        (EMIT_DIRECT, "error", "Run."),
    ),
    "topic": (
        (EMIT_TOPIC, "quick.brown.fox", "matches no key"),
        (RECEIVE_TOPIC, "*.orange.*"),
        [" [x] Sent quick.brown.fox:matches no key"],
        [" [!] Released: no binding matches 'quick.brown.fox'"],
        (EMIT_TOPIC, "quick.orange.fox", "matches Q1"),
    ),
}


@SINCE_4_0
@pytest.mark.parametrize("kind", UNROUTED)
def test_a_message_no_queue_takes_is_reported_released_and_reaches_nobody(sandbox, kind):
    unrouted, receiver, stdout, stderr, routed = UNROUTED[kind]
    receiving = sandbox.start(*receiver, ready=WAITING_LOGS) if receiver else None
    sending = emit(sandbox, *unrouted)
    # The pika script's stdout, and exit 0 (a log nobody listens to is no error); one line
    # more, on stderr, that the pika script could not print.
    assert (sending.stdout, sending.stderr) == (stdout, stderr)
    if receiving:
        # Then one it is bound to: once that is in, the first is not coming (queues keep order).
        assert emit(sandbox, *routed).stderr == []
        receiving.wait_for(r"^ \[x\] ")
        assert logs(receiving) == [f" [x] {routed[1]}:{routed[2]}"]
        stopped_by_ctrl_c(receiving)


# -- Both protocols on the same exchanges ----------------------------------------------------


@SINCE_4_0
@pytest.mark.parametrize(
    ("receiver", "bindings", "exchange", "key", "printed"),
    [
        (RECEIVE, (), "logs", "", " [x] from AMQP 0-9-1"),
        (RECEIVE_DIRECT, ("warning",), "direct_logs", "warning", " [x] warning:from AMQP 0-9-1"),
        (
            RECEIVE_TOPIC,
            ("*.orange.*",),
            "topic_logs",
            "a.orange.b",
            " [x] a.orange.b:from AMQP 0-9-1",
        ),
    ],
    ids=["fanout", "direct", "topic"],
)
def test_a_message_published_with_pika_reaches_an_amqp10_receiver_with_its_key(
    sandbox, receiver, bindings, exchange, key, printed
):
    """RabbitMQ annotates an AMQP 0-9-1 message with its routing key for an AMQP 1.0 consumer."""
    receiving = sandbox.start(receiver, *bindings, ready=WAITING_LOGS)
    with sandbox.connection() as connection:  # publishing only: the exchange is the script's
        connection.channel().basic_publish(exchange, key, b"from AMQP 0-9-1")
    receiving.wait_for(line(printed))
    stopped_by_ctrl_c(receiving)
    assert logs(receiving) == [printed]


@SINCE_4_0
@pytest.mark.parametrize(
    ("sender", "args", "exchange", "key"),
    [
        (EMIT, ("from AMQP 1.0",), "logs", ""),
        (EMIT_DIRECT, ("warning", "from AMQP 1.0"), "direct_logs", "warning"),
        (EMIT_TOPIC, ("a.orange.b", "from AMQP 1.0"), "topic_logs", "a.orange.b"),
    ],
    ids=["fanout", "direct", "topic"],
)
def test_a_message_an_amqp10_sender_publishes_reaches_a_pika_consumer_as_sent(
    sandbox, sender, args, exchange, key
):
    emit(sandbox, sender, *args)  # declares the exchange; nothing bound yet: released
    with sandbox.connection() as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key=key)
        assert emit(sandbox, sender, *args).stderr == []  # accepted: our queue took it
        method, _, body = channel.basic_get(queue, auto_ack=True)
    assert (method.exchange, method.routing_key, body) == (exchange, key, b"from AMQP 1.0")


# The scripts of both tracks meet on each exchange: the pika chapters declare theirs durable,
# as RabbitMQ's AMQP 1.0 client declares every exchange (declared otherwise, the second to come
# would be refused: pika's declaration with 406 PRECONDITION_FAILED, the client's with 409).
@SINCE_4_0
@pytest.mark.parametrize(
    ("sender", "receiver", "args", "bindings", "line"),
    [
        ("publish_subscribe/emit_log.py", RECEIVE, (), (), " [x] info: Hello World!"),
        (EMIT, "publish_subscribe/receive_logs.py", (), (), " [x] info: Hello World!"),
        ("routing/emit_log_direct.py", RECEIVE_DIRECT, (), ("info",), " [x] info:Hello World!"),
        (EMIT_DIRECT, "routing/receive_logs_direct.py", (), ("info",), " [x] info:Hello World!"),
        (
            "topics/emit_log_topic.py",
            RECEIVE_TOPIC,
            (),
            ("#",),
            " [x] anonymous.info:Hello World!",
        ),
        (
            EMIT_TOPIC,
            "topics/receive_logs_topic.py",
            (),
            ("#",),
            " [x] anonymous.info:Hello World!",
        ),
    ],
    ids=[f"{c}: {d}" for c in ("fanout", "direct", "topic") for d in ("pika->1.0", "1.0->pika")],
)
def test_a_sender_of_one_track_reaches_a_receiver_of_the_other_on_the_same_exchange(
    sandbox, sender, receiver, args, bindings, line
):
    receiving = sandbox.start(receiver, *bindings, ready=WAITING_LOGS)
    sending = sandbox.run(sender, *args)
    assert (sending.process.returncode, sending.stderr) == (0, [])
    receiving.wait_for(re.escape(line))
    stopped_by_ctrl_c(receiving)
    assert logs(receiving) == [line]


# -- One line for what goes wrong --------------------------------------------------------------


@pytest.mark.parametrize(
    "receiver", ["routing/receive_logs_direct.py", "topics/receive_logs_topic.py"]
)
def test_a_receiver_with_no_key_prints_the_pika_scripts_usage_line(receiver):
    # Before any connection: the same on every broker, and with none at all.
    amqp10, pika = run_script(f"amqp10/{receiver}"), run_script(receiver)
    assert (amqp10.process.returncode, amqp10.stdout, amqp10.stderr) == (
        pika.process.returncode,
        pika.stdout,
        pika.stderr,
    )
    assert amqp10.process.returncode == 1
    assert amqp10.stderr[0].startswith("Usage: ")


LONG_KEY = "k" * 256


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("routing/emit_log_direct.py", (LONG_KEY, "x")),
        ("routing/receive_logs_direct.py", ("error", LONG_KEY)),
        ("topics/emit_log_topic.py", (LONG_KEY, "x")),
        ("topics/receive_logs_topic.py", ("a.*", LONG_KEY)),
    ],
)
def test_a_key_over_255_bytes_is_refused_in_the_pika_scripts_words(script, args):
    amqp10, pika = run_script(f"amqp10/{script}", args), run_script(script, args)
    assert amqp10.process.returncode == pika.process.returncode == 1
    assert amqp10.stderr == pika.stderr
    assert len(amqp10.stderr) == 1
    assert "longer than 255 bytes" in amqp10.stderr[0]


@SINCE_4_0
@pytest.mark.parametrize("receiver", RECEIVERS)
def test_a_receiver_whose_queue_is_deleted_says_so_and_exits_1(sandbox, receiver):
    proc = sandbox.start(receiver, *SCRIPTS[receiver], ready=WAITING_LOGS)
    (queue,) = sandbox.queue_names()
    if sandbox.broker.source == "url":  # exclusive: only rabbitmqctl may delete it
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    sandbox.rabbitmqctl("delete_queue", "-p", sandbox.vhost, queue)
    assert proc.wait() == 1
    # Its last line (before it, the client logs the broker's detach: amqp:resource-deleted).
    assert proc.stderr[-1] == f" [!] RabbitMQ ended the consumer: was the queue {queue} deleted?"
    assert "Traceback" not in proc.output
