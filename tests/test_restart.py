"""What a broker restart keeps, and what the scripts do when their broker goes away: the claims
of several chapters, checked across one restart.

A restart is the slowest thing a test can ask of a broker (an Erlang VM boots again), so the
chapters share one. The fixture below prepares each claim in a virtual host of its own, restarts
the broker once, and each test then checks its claim. Right before, RabbitMQ's application is
stopped and started again the way the notes start over (`rabbitmqctl stop_app` / `start_app`),
which prints the start line a container's restart waits for: the restart must still wait for
one of its own.

All of it on one pytest worker (an xdist group), whose broker no other test uses meanwhile.
"""

from __future__ import annotations

import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import stream_broker
from conftest import Sandbox, new_sandbox
from stream_broker import up_to_marker
from test_broker import publish_kept_message, take_message
from test_publisher_confirms import take_all
from test_resilient_worker import CONNECTING_AGAIN, DONE_ALREADY, PUBLISHER, WORKER
from test_stream_failures import RECEIVERS as STREAM_RECEIVERS
from test_stream_failures import start_consuming
from test_stream_hello_world import GOT, RECEIVE, messages
from test_stream_hello_world import STREAM as HELLO_STREAM
from test_stream_hello_world import send as send_hello
from test_stream_offset_tracking import FIRST, STARTED, receive, send_wave, stored
from test_stream_offset_tracking import STREAM as OFFSETS_STREAM
from test_work_queues import DONE, send, tasks_taken, wait_for_depth

from tutorial_tools.chapters import RECEIVERS_THAT_GIVE_UP, WAITING_MESSAGES
from tutorial_tools.processes import ScriptError, ScriptProcess
from tutorial_tools.sources import Broker
from tutorial_tools.waiting import wait_until

pytestmark = [pytest.mark.restart, pytest.mark.xdist_group("restart")]

HINT = "(run 'make doctor' to diagnose)"
TASKS = ["Kept task 1", "Kept task 2", "Kept task 3"]
LONG_TASK = "Long task....."  # five seconds of work, held in hand while the broker restarts


class Typist:
    """Types tasks at the resilient publisher, five a second at most and each once the one
    before is confirmed, until stopped: a stream of tasks that no restart can fall between."""

    def __init__(self, publisher: ScriptProcess) -> None:
        self.publisher = publisher
        self.typed: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._type, daemon=True)
        self.thread.start()

    def _type(self) -> None:
        while not self.stopped.is_set():
            task = f"Stream task {len(self.typed) + 1}"
            self.publisher.type_line(task)
            self.typed.append(task)
            try:
                self.publisher.wait_for(rf"^ \[x\] Sent {task}$", timeout=90)
            except ScriptError:
                return  # the test's own wait for the publisher reports it
            self.stopped.wait(0.2)  # the pace of the stream: five tasks a second at most

    def stop(self) -> list[str]:
        self.stopped.set()
        self.thread.join(timeout=100)
        return self.typed


@dataclass
class Restarted:
    """The broker after the one restart, and what each claim prepared before it."""

    broker: Broker
    boxes: dict[str, Sandbox]
    receivers: dict[str, ScriptProcess] = field(default_factory=dict)  # running through it
    last_offset: int = -1  # where offset_tracking_receive.py had got to
    typist: Typist | None = None  # typing tasks at the resilient publisher, through it


@pytest.fixture(scope="module")
def restarted(restartable: Broker) -> Iterator[Restarted]:
    claims = (
        *("kept", "after start_app", "pika", "confirms", "streams", "hello", "offsets", "tasks"),
        "resilient",
    )
    boxes = {claim: new_sandbox(restartable, f"restart-{claim}") for claim in claims}
    state = Restarted(restartable, boxes)
    try:
        restartable.rabbitmqctl("stop_app")
        restartable.rabbitmqctl("start_app")
        publish_kept_message(boxes["kept"].url)
        for script, term in RECEIVERS_THAT_GIVE_UP.items():
            box = boxes["pika"]
            state.receivers[script] = box.start(script, *term.args, ready=term.ready)
        proc = boxes["confirms"].run("publisher_confirms/publish_async.py", "500")
        assert " [x] 500 of 500 messages confirmed" in proc.stdout, proc.output
        for script in STREAM_RECEIVERS:
            state.receivers[script] = start_consuming(boxes["streams"], script)
        send_hello(boxes["hello"])
        send_wave(boxes["offsets"])
        _, _, state.last_offset = receive(boxes["offsets"])
        send_wave(boxes["offsets"])
        for task in TASKS:
            send(boxes["tasks"], task)
        wait_for_depth(boxes["tasks"], len(TASKS))
        resilient = boxes["resilient"]
        worker = state.receivers[WORKER] = resilient.start(WORKER, ready=WAITING_MESSAGES)
        publisher = state.receivers[PUBLISHER] = resilient.start(
            PUBLISHER, keyboard=True, ready=r"^ \[\*\] Type a task"
        )
        publisher.type_line(LONG_TASK)
        worker.wait_for(rf"^ \[x\] Received {re.escape(LONG_TASK)}$")
        # The long task must still be in hand when the broker goes, however slow the machine:
        # the worker is held (SIGSTOP) until the broker is back, then finishes it.
        worker.process.send_signal(signal.SIGSTOP)
        state.typist = Typist(publisher)
        publisher.wait_for(r"^ \[x\] Sent Stream task 1$")

        try:
            restartable.restart()
        finally:
            worker.process.send_signal(signal.SIGCONT)
        yield state
    finally:
        if state.typist:
            state.typist.stop()
        for box in boxes.values():
            box.remove()


def recovered(box: Sandbox, stream: str) -> None:
    """Right after a restart a stream answers InternalError until its log is recovered."""
    wait_until(lambda: stream_broker.answers(box.stream_url, stream), 30, f"the stream {stream}")


# -- the tooling's restart ---------------------------------------------------------------


def test_restart_keeps_a_durable_quorum_queue_and_its_persistent_message(restarted):
    box = restarted.boxes["kept"]
    assert take_message(box.url) == b"still here"
    assert "kept" in restarted.broker.rabbitmqctl("list_queues", "-p", box.vhost, "name")


def test_restart_after_start_app_returns_once_the_broker_is_back(restarted):
    assert restarted.broker.management.get("overview")["rabbitmq_version"]
    publish_kept_message(restarted.boxes["after start_app"].url)


# -- what the chapters keep --------------------------------------------------------------


def test_persistent_tasks_in_the_durable_queue_survive_a_broker_restart(restarted):
    box = restarted.boxes["tasks"]
    wait_for_depth(box, len(TASKS))
    worker = box.start("work_queues/worker.py")
    worker.wait_for(DONE, count=len(TASKS))
    assert tasks_taken(worker) == TASKS


def test_confirmed_persistent_messages_survive_a_broker_restart(restarted) -> None:
    box = restarted.boxes["confirms"]
    # The queue is back once the broker has recovered it from disk.
    wait_until(lambda: box.message_count("confirms_async") == 500, 30, "the 500 messages")
    assert sorted(take_all(box, "confirms_async")) == sorted(f"async-{i}" for i in range(500))


def test_the_stream_and_its_message_survive_a_broker_restart(restarted):
    box = restarted.boxes["hello"]
    recovered(box, HELLO_STREAM)
    receiver = box.start(RECEIVE, ready=r"^Press control")
    send_hello(box)
    receiver.wait_for(GOT, count=2)
    assert receiver.interrupt() == 0
    assert messages(receiver) == [GOT] * 2


def test_the_stream_and_the_stored_offset_survive_a_broker_restart(restarted):
    box = restarted.boxes["offsets"]
    recovered(box, OFFSETS_STREAM)
    last = restarted.last_offset
    assert stored(box) == last
    printed, first, _ = receive(box)
    assert printed[:2] == [STARTED, FIRST]
    in_stream = stream_broker.read(box.stream_url, OFFSETS_STREAM, up_to_marker(2))
    assert len(in_stream) == 200  # both waves are still there
    assert first == min(offset for offset, _ in in_stream if offset > last)


# -- what the scripts do when their broker goes away -------------------------------------


@pytest.mark.parametrize("script", RECEIVERS_THAT_GIVE_UP)
def test_a_receiver_whose_broker_goes_away_says_so_in_one_line(restarted, script):
    proc = restarted.receivers[script]
    assert proc.wait(timeout=10) == 1, script
    [line] = proc.stderr
    # CONNECTION_FORCED when the broker says goodbye first, else the lost socket.
    assert re.fullmatch(rf" \[!\] .*(CONNECTION_FORCED|StreamLostError).* {re.escape(HINT)}", line)


@pytest.mark.parametrize("script", STREAM_RECEIVERS)
def test_a_stream_receiver_whose_broker_goes_away_says_so_in_one_line(restarted, script):
    proc = restarted.receivers[script]
    assert proc.wait(timeout=15) == 1
    assert proc.stderr == [f" [!] Subscription ended: Connection Closed {HINT}"]


# -- the resilient worker and publisher (resilient_worker/) ------------------------------


def done_per_task(worker: ScriptProcess) -> tuple[Counter, Counter]:
    """How many times the worker received each task, and how many times it did its work. It
    takes one task at a time, so the line that ends a task follows the one that received it."""
    received: Counter = Counter()
    done: Counter = Counter()
    task = None
    for line in worker.stdout:
        if line.startswith(" [x] Received "):
            task = line.removeprefix(" [x] Received ")
            received[task] += 1
        elif line == " [x] Done":
            done[task] += 1
    return received, done


def test_the_resilient_worker_and_publisher_lose_no_task_across_a_broker_restart(
    restarted, record_property
):
    worker, publisher = restarted.receivers[WORKER], restarted.receivers[PUBLISHER]
    typist = restarted.typist
    typed_before = len(typist.typed)
    # Five more tasks confirmed after the broker came back, then the end of the input.
    wait_until(lambda: len(typist.typed) > typed_before + 5, 90, "five tasks after the restart")
    tasks = [LONG_TASK, *typist.stop()]
    publisher.process.stdin.close()
    assert publisher.wait(timeout=90) == 0, publisher.output
    # Every task typed was confirmed: the one in flight when the broker went was sent again.
    assert publisher.matching(r"^ \[x\] Sent ") == [f" [x] Sent {task}" for task in tasks]
    assert publisher.matching(r"^ \[!\] .*; sending 'Stream task \d+' again in ")

    # Every task is done; the worker saw the restart and came back by itself.
    wait_until(lambda: set(done_per_task(worker)[1]) >= set(tasks), 90, "every task done")
    received, done = done_per_task(worker)
    assert worker.matching(CONNECTING_AGAIN)
    assert set(received) == set(tasks)  # none lost, nothing else
    assert max(done.values()) == 1  # none done twice: a task seen again is acked, not redone
    # The long task was in hand when the broker went: its ack was lost, it came back, and the
    # worker, which had done it, acked it then.
    assert received[LONG_TASK] == 2 and worker.matching(DONE_ALREADY)
    twice = sorted(task for task, times in received.items() if times > 1)
    lost = set(tasks) - set(received)
    record_property(
        "counted",
        f"{len(tasks)} tasks typed and confirmed, {len(received)} received, {sum(done.values())}"
        f" done, delivered more than once: {len(twice)} ({', '.join(twice)}), lost: {len(lost)}",
    )
