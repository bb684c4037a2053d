"""What the notes of the stream chapters (8 and 9) show besides the tour, run as they show it
(the rows of tests/shown.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import stream_broker
from shown import (
    HINT,
    STREAM_WHERE,
    Shown,
    check,
    printed,
    rows_of,
    run,
    script_and_args,
    shown,
    skip_unless_rabbitmqctl,
    start,
    where_nothing_listens,
    words,
)

from tutorial_tools import chapters
from tutorial_tools.addresses import stream_url
from tutorial_tools.processes import ROOT, run_script
from tutorial_tools.waiting import wait_until

# -- 8. Stream Hello World -----------------------------------------------------------------

STREAM_SENT = " [x] Hello, World! message sent"
STREAM_READY = "Press control + C to close"
GOT = "Got message: Hello, World! from stream hello-python-stream"


def stream_vhost_command(sandbox, command: str) -> list[str]:
    """A `docker compose exec rabbitmq rabbitmqctl ...` of the notes, as rabbitmqctl's words
    for the test's virtual host."""
    prefix = "docker compose exec rabbitmq rabbitmqctl "
    assert command.startswith(prefix), command
    name, *args = words(command.removeprefix(prefix))
    return [name, "-p", sandbox.vhost, *args]


@shown(
    "stream_hello_world",
    ["python stream_hello_world/send.py", "python stream_hello_world/receive.py"],
    [STREAM_SENT, STREAM_SENT, STREAM_SENT, STREAM_READY, GOT, GOT, GOT],
)
def send_first_read_later(sandbox, row, tmp_path):
    send, receive = row.commands
    senders = [run(sandbox, send) for _ in range(3)]
    receiver = start(sandbox, receive, ready=chapters.WAITING_STREAM)
    receiver.wait_for(re.escape(GOT), count=3)
    # One more, sent now: it comes after the three, and once it is there, nothing else is on
    # its way (a stream delivers in order).
    run(sandbox, send)
    receiver.wait_for(re.escape(GOT), count=4)
    assert receiver.interrupt() == 0
    assert receiver.matching(r"^Got message: ") == [GOT] * 4
    return printed(*senders, receiver)


@shown(
    "stream_hello_world",
    ["python stream_hello_world/send.py"],
    [
        # errno 111 on Linux, as the notes show it; 61 on macOS
        re.compile(
            re.escape(" [!] ConnectionRefusedError(")
            + r"(111|61)"
            + re.escape(", \"Connect call failed ('127.0.0.1', ")
            + r"\d+"
            + re.escape(')") at ')
            + r"\S+"
            + re.escape(f" {HINT}")
        )
    ],
)
def no_stream_broker(sandbox, row, tmp_path):
    (send,) = row.commands
    return printed(where_nothing_listens(send, stream_url))


@shown(
    "stream_hello_world",
    ["python stream_hello_world/send.py"],
    [f" [!] PreconditionFailed() at {STREAM_WHERE} {HINT}"],
)
def a_stream_declared_differently(sandbox, row, tmp_path):
    stream_broker.create(sandbox.stream_url, "hello-python-stream", {"max-length-bytes": 10**6})
    proc = run(sandbox, row.commands[0])
    assert proc.process.returncode == 1
    # make doctor names the stream and the command that deletes it.
    doctor = run_script(
        "tutorial_tools/doctor.py", url=sandbox.url, stream_url=sandbox.stream_url, timeout=60
    )
    assert doctor.matching(
        r"^FAIL  stream 'hello-python-stream' exists with other arguments .* delete it with "
        rf"'rabbitmqctl delete_queue -p {re.escape(sandbox.vhost)} hello-python-stream'$"
    ), doctor.output
    return printed(proc)


@shown(
    "stream_hello_world",
    ["python stream_hello_world/receive.py"],
    [" [!] Subscription ended: Metadata Update (run 'make doctor' to diagnose)"],
)
def delete_the_stream_under_a_receiver(sandbox, row, tmp_path):
    receiver = start(sandbox, row.commands[0], ready=chapters.WAITING_STREAM)
    run(sandbox, "python stream_hello_world/send.py")
    receiver.wait_for(re.escape(GOT))  # it has subscribed
    if sandbox.broker.source == "url":
        sandbox.broker.management.delete("queues", sandbox.vhost, "hello-python-stream")
    else:
        sandbox.rabbitmqctl("delete_queue", "-p", sandbox.vhost, "hello-python-stream")
    assert receiver.wait() == 1
    return printed(receiver)


# -- 9. Stream offset tracking -------------------------------------------------------------

OFFSET_SEND = "python stream_offset_tracking/offset_tracking_send.py"
OFFSET_RECEIVE = "python stream_offset_tracking/offset_tracking_receive.py"
PUBLISHING = ["Publishing 100 messages...", "Messages confirmed: true."]
STARTED = "Started consuming: Press control +C to close"
NOT_STORED = "Offset not previously stored."
FIRST = "First message received."


@shown(
    "stream_offset_tracking",
    [OFFSET_RECEIVE, OFFSET_SEND],
    [
        STARTED,
        NOT_STORED,
        FIRST,
        "Done consuming, first offset 0, last offset 99.",
        STARTED,
        " [*] Interrupted",
    ],
)
def stop_it_while_it_waits(sandbox, row, tmp_path):
    receive, send = row.commands
    waiting = start(sandbox, receive, ready=re.escape(NOT_STORED))
    run(sandbox, send)  # in another terminal
    assert waiting.wait() == 0  # it read the wave, to its marker
    again = start(sandbox, receive, ready=re.escape(STARTED))
    assert again.interrupt() == 0
    assert again.stdout == [STARTED, " [*] Interrupted"]  # it processed nothing
    return printed(waiting, again)


def edited_receiver(tmp_path: Path, old: str, new: str) -> str:
    """offset_tracking_receive.py with ``old`` changed to ``new``, as the notes suggest."""
    script = ROOT / "stream_offset_tracking" / "offset_tracking_receive.py"
    text = script.read_text()
    assert text.count(old) == 1, old
    edited = tmp_path / "stream_offset_tracking" / script.name
    edited.parent.mkdir(exist_ok=True)
    edited.write_text(text.replace(old, new))
    return str(edited)


@shown(
    "stream_offset_tracking",
    [OFFSET_SEND, OFFSET_RECEIVE],
    [*PUBLISHING, STARTED, NOT_STORED, FIRST, "Done consuming, first offset 42, last offset 99."],
)
def browse_from_offset_42(sandbox, row, tmp_path):
    send, receive = row.commands
    sender = run(sandbox, send)
    from_42 = edited_receiver(
        tmp_path, "OffsetType.OFFSET, stored_offset + 1", "OffsetType.OFFSET, 42"
    )
    receiver = sandbox.run(from_42, *script_and_args(receive)[1])
    assert receiver.process.returncode == 0
    # ...and with NEXT, it waits for the next wave: the one already there is not read.
    waiting = sandbox.start(
        edited_receiver(
            tmp_path,
            "ConsumerOffsetSpecification(OffsetType.OFFSET, stored_offset + 1)",
            "ConsumerOffsetSpecification(OffsetType.NEXT)",
        ),
        ready=re.escape(STARTED),
    )

    def another_wave_read() -> bool:
        # A wave sent before it has subscribed is not "next" for it: send until one is read.
        run(sandbox, send)
        return waiting.process.poll() is not None

    wait_until(another_wave_read, 60, "a wave sent after the NEXT receiver subscribed")
    assert waiting.wait() == 0
    first, _ = map(int, re.findall(r"\d+", waiting.stdout[-1]))
    assert first > 99, waiting.output
    return printed(sender, receiver)


@shown(
    "stream_offset_tracking",
    [
        "docker compose exec rabbitmq rabbitmqctl set_policy tiny-stream "
        "'^stream-offset-tracking-python$' "
        '\'{"max-length-bytes":1000,"stream-max-segment-size-bytes":200}\' --apply-to queues',
        OFFSET_SEND,
        OFFSET_RECEIVE,
    ],
    [
        *PUBLISHING,
        *PUBLISHING,
        STARTED,
        NOT_STORED,
        FIRST,
        re.compile(r"Done consuming, first offset [1-9]\d*, last offset 199\."),
    ],
)
def watch_retention_at_work(sandbox, row, tmp_path):
    skip_unless_rabbitmqctl(sandbox)
    policy, send, receive = row.commands
    sandbox.rabbitmqctl(*stream_vhost_command(sandbox, policy))
    senders = [run(sandbox, send) for _ in range(2)]
    # RabbitMQ deletes the oldest segments once a new one has begun, in the background: wait
    # until the first wave's marker (offset 99) is gone.
    wait_until(
        lambda: (
            stream_broker.first_offset(sandbox.stream_url, "stream-offset-tracking-python") > 99
        ),
        20,
        "retention to drop the first wave",
    )
    receiver = run(sandbox, receive)
    assert receiver.process.returncode == 0
    return printed(*senders, receiver)


# -- Every row, run --------------------------------------------------------------------


@pytest.mark.parametrize("row", rows_of(__name__))
def test_what_the_notes_show_is_what_the_scripts_print(sandbox, tmp_path, row: Shown):
    check(sandbox, tmp_path, row)
