"""Offset tracking: offset_tracking_send.py appends waves of 100 messages, each ending in a
marker; offset_tracking_receive.py reads up to a marker and stores the offset it reached under
its name, so that its next run resumes right after it."""

from __future__ import annotations

import re

import pytest
import stream_broker
from stream_broker import up_to_marker

from tutorial_tools.waiting import wait_until

pytestmark = pytest.mark.usefixtures("streams")

STREAM = "stream-offset-tracking-python"
SUBSCRIBER = "subscriber_1"
SEND = "stream_offset_tracking/offset_tracking_send.py"
RECEIVE = "stream_offset_tracking/offset_tracking_receive.py"
STARTED = "Started consuming: Press control +C to close"
NOT_STORED = "Offset not previously stored."
FIRST = "First message received."
DONE = re.compile(r"^Done consuming, first offset (\d+), last offset (\d+)\.$")


def send_wave(sandbox) -> None:
    proc = sandbox.run(SEND)
    assert (proc.process.returncode, proc.stderr) == (0, [])
    assert proc.stdout == ["Publishing 100 messages...", "Messages confirmed: true."]


def receive(sandbox) -> tuple[list[str], int, int]:
    """Run the receiver to its marker: what it printed, and its first and last offset."""
    proc = sandbox.run(RECEIVE)
    assert (proc.process.returncode, proc.stderr) == (0, [])
    return proc.stdout, *offsets(proc.stdout[-1])


def offsets(done_line: str) -> tuple[int, int]:
    found = DONE.match(done_line)
    assert found, done_line
    return int(found[1]), int(found[2])


def stored(sandbox) -> int | None:
    return stream_broker.stored_offset(sandbox.stream_url, STREAM, SUBSCRIBER)


def test_the_first_run_reads_from_offset_0_to_the_marker_and_stores_its_offset(sandbox):
    send_wave(sandbox)

    printed, first, last = receive(sandbox)

    assert printed[:3] == [STARTED, NOT_STORED, FIRST]
    assert (first, last) == (0, 99)
    assert stored(sandbox) == 99  # kept by RabbitMQ, under the consumer's name


def test_a_consumer_started_again_resumes_after_the_last_message_it_processed(sandbox):
    send_wave(sandbox)
    _, _, last = receive(sandbox)
    send_wave(sandbox)

    printed, first, again_last = receive(sandbox)

    assert printed[:2] == [STARTED, FIRST]  # an offset was stored: no "not previously stored"
    # The stream holds both waves; the second run read exactly the second: nothing twice,
    # nothing skipped. (Its offsets are not 100 to 199: the stored offsets are entries in the
    # stream too, and take offsets of their own.)
    in_stream = stream_broker.read(sandbox.stream_url, STREAM, up_to_marker(2))
    second_wave = [offset for offset, _ in in_stream if offset > last]
    assert len(in_stream) == 200
    assert (first, again_last) == (second_wave[0], second_wave[-1])
    assert stored(sandbox) == again_last


@pytest.mark.parametrize("how", ["interrupt", "terminate"], ids=["Ctrl+C", "SIGTERM"])
def test_stopped_in_the_middle_it_stores_its_offset_and_the_next_run_repeats_nothing(sandbox, how):
    receiver = sandbox.start(RECEIVE, ready=re.escape(NOT_STORED))
    # 25 messages and no marker: the receiver reads them all and waits for more.
    stream_broker.append(sandbox.stream_url, STREAM, [f"hello: {i}".encode() for i in range(25)])
    receiver.wait_for(re.escape(FIRST))
    # It stores its offset every 10 messages: the 20th's is stored once it has read 20.
    twentieth, _ = stream_broker.read(sandbox.stream_url, STREAM, lambda got: len(got) == 20)[-1]
    wait_until(lambda: stored(sandbox) == twentieth, 20, "the offset of the 20th message stored")

    assert getattr(receiver, how)() == 0
    assert receiver.stdout[-1] == " [*] Interrupted"
    first, last = offsets(receiver.stdout[-2])
    assert first == 0
    assert stored(sandbox) == last  # the last message processed, not merely the last 10th

    send_wave(sandbox)
    _, again_first, _ = receive(sandbox)
    in_stream = [
        offset for offset, _ in stream_broker.read(sandbox.stream_url, STREAM, up_to_marker(1))
    ]
    assert again_first == min(offset for offset in in_stream if offset > last)


def test_the_stream_keeps_2_gb_as_both_scripts_declare(sandbox):
    send_wave(sandbox)
    stream = sandbox.broker.management.get("queues", sandbox.vhost, STREAM)
    assert stream["type"] == "stream"
    assert stream["arguments"]["x-max-length-bytes"] == 2_000_000_000


def test_retention_drops_the_oldest_whole_segments_and_the_offsets_of_the_rest_stay(sandbox):
    # The notes' experiment: a policy shrinks the stream's limits before it is created (for a
    # stream, the policy's limit overrides the declared one): 1,000 bytes in segments of 200.
    sandbox.set_policy(
        "tiny-stream", STREAM, {"max-length-bytes": 1000, "stream-max-segment-size-bytes": 200}
    )
    send_wave(sandbox)
    send_wave(sandbox)  # a second wave starts a new segment: the oldest now go
    wait_until(
        lambda: stream_broker.first_offset(sandbox.stream_url, STREAM) > 0,
        20,
        "retention to drop the oldest segment",
    )
    # What the stream holds now (read before the receiver runs: the offsets it stores are
    # writes too, which may start a segment and drop another).
    in_stream = stream_broker.read(sandbox.stream_url, STREAM, up_to_marker(1))

    printed, first, last = receive(sandbox)

    assert printed[:3] == [STARTED, NOT_STORED, FIRST]
    assert first > 0  # the first messages are gone: the receiver starts at the oldest left
    assert first == in_stream[0][0]
    # The newest remain, at the offsets they were written at: the second wave's marker is the
    # stream's 200th message, so it is at offset 199 or later, never moved down.
    assert last >= 199
    assert in_stream[-1] == (last, b"marker: 99")
    assert len(in_stream) < 200


def test_for_a_stream_a_policy_overrides_the_declared_limit_even_a_smaller_one(sandbox):
    # Two streams declared alike, with a tiny limit in small segments; one gets a policy with a
    # large limit. Once the other has dropped its oldest segment, the one with the policy
    # still has everything: the policy's limit won (for queues, the smaller of the two would).
    tiny = {"max-length-bytes": 1000, "stream-max-segment-size-bytes": 200}
    for stream in ("with-policy", "without"):
        stream_broker.create(sandbox.stream_url, stream, tiny)
    sandbox.set_policy("roomy", "with-policy", {"max-length-bytes": 100_000_000})
    for stream in ("with-policy", "without"):
        for _ in range(2):
            stream_broker.append(sandbox.stream_url, stream, [b"x" * 100] * 20)
    wait_until(
        lambda: stream_broker.first_offset(sandbox.stream_url, "without") > 0,
        20,
        "retention to drop the oldest segment of the stream without the policy",
    )
    assert stream_broker.first_offset(sandbox.stream_url, "with-policy") == 0
