"""The stream chapters, 8 and 9: the RabbitMQ Stream tutorials, on rstream (RABBITMQ_STREAM_URL)."""

from __future__ import annotations

from tutorial_tools.chapter_types import SENDER, WAITING_STREAM, Chapter, Expect, Step, Terminal

STREAM_HELLO_WORLD = Chapter(
    "stream_hello_world",
    "Stream Hello World",
    terminals=tuple(
        Terminal(
            f"receive {n}",
            "stream_hello_world/receive.py",
            ready=WAITING_STREAM,
            message=r"^Got message: ",
        )
        for n in (1, 2)
    ),
    steps=(
        Step(
            "stream_hello_world/send.py",
            expect=(
                Expect(" [x] Hello, World! message sent", (SENDER,)),
                Expect(
                    "Got message: Hello, World! from stream hello-python-stream",
                    ("receive 1", "receive 2"),
                ),
            ),
            says="send.py appends one message to the stream 'hello-python-stream'; both read it",
        ),
    ),
    showed="both receivers read the message from 'hello-python-stream': reading removes nothing",
    streams=(("hello-python-stream", (("max-length-bytes", 5_000_000_000),)),),
    client="rstream",
)

_SEND_WAVE = Step(
    "stream_offset_tracking/offset_tracking_send.py",
    expect=(
        Expect("Publishing 100 messages...", (SENDER,)),
        Expect("Messages confirmed: true.", (SENDER,)),
    ),
    says="offset_tracking_send.py appends a wave of 100 messages, the last a marker",
)
_STARTED = Expect("Started consuming: Press control +C to close", (SENDER,))
_FIRST = Expect("First message received.", (SENDER,))

STREAM_OFFSET_TRACKING = Chapter(
    "stream_offset_tracking",
    "Stream offset tracking",
    terminals=(),  # the receiver stops at each wave's marker: each run of it is a step
    steps=(
        _SEND_WAVE,
        Step(
            "stream_offset_tracking/offset_tracking_receive.py",
            expect=(
                _STARTED,
                Expect("Offset not previously stored.", (SENDER,)),
                _FIRST,
                Expect("Done consuming, first offset 0, last offset 99.", (SENDER,)),
            ),
            says="no offset stored yet: read from offset 0 to the marker (99), store 99",
        ),
        _SEND_WAVE,
        Step(
            "stream_offset_tracking/offset_tracking_receive.py",
            expect=(
                _STARTED,
                _FIRST,
                # After the stored offsets, which take offsets of their own: 100 and a few more.
                Expect(
                    r"Done consuming, first offset 1\d\d, last offset 2\d\d\.",
                    (SENDER,),
                    regex=True,
                ),
            ),
            says="resume after the stored offset 99: the second wave only, nothing twice",
        ),
    ),
    showed="the second run of the receiver resumed right after the offset the first one stored",
    streams=(("stream-offset-tracking-python", (("max-length-bytes", 2_000_000_000),)),),
    client="rstream",
)
