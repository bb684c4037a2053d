"""What each chapter runs and what must arrive where: described once, for the tour and the tests.

A chapter starts its receiving scripts (each stands for a terminal a learner opens), then runs its
sending scripts one after another with the arguments the notes use. Each step says which lines
must then appear in which terminal. A terminal not named for a line must not print it.

The last step of every chapter reaches every receiver. Queues deliver in order, so once that last
message has arrived everywhere, anything that was going to arrive has: a line that is still
missing, or that came where it should not, is a real mismatch, not a slow broker.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

WAITING_MESSAGES = r"^ \[\*\] Waiting for messages\. To exit press CTRL\+C$"
WAITING_LOGS = r"^ \[\*\] Waiting for logs\. To exit press CTRL\+C$"
AWAITING_RPC = r"^ \[x\] Awaiting RPC requests$"
WAITING_STREAM = r"^Press control \+ C to close$"  # as the official stream receive.py
SENDER = "sender"  # in an Expect, the terminal of the step's own script


@dataclass(frozen=True)
class Terminal:
    """A receiving script a learner keeps open in a terminal of its own."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    ready: str = WAITING_LOGS  # printed once it is declared, bound and consuming
    message: str = r"^ \[x\] "  # the lines that report a message that arrived
    finished: str | None = None  # printed when the work for a message is done

    @property
    def command(self) -> str:
        return shlex.join(["python", self.script, *self.args])


@dataclass(frozen=True)
class Expect:
    """``line`` is printed once in each of ``where`` (``one_of``: in exactly one of them).

    With ``regex``, ``line`` is a regular expression for the whole line: for what differs from
    run to run, such as the offsets in a stream.
    """

    line: str
    where: tuple[str, ...] = ()
    one_of: bool = False
    regex: bool = False

    @property
    def pattern(self) -> str:
        return f"^(?:{self.line})$" if self.regex else f"^{re.escape(self.line)}$"


@dataclass(frozen=True)
class Step:
    """One run of a sending script, and what it must cause."""

    script: str
    args: tuple[str, ...] = ()
    expect: tuple[Expect, ...] = ()
    says: str = ""  # one line for the tour: what this step shows

    @property
    def command(self) -> str:
        return shlex.join(["python", self.script, *self.args])


QUORUM = (("x-queue-type", "quorum"),)
Arguments = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Chapter:
    slug: str  # the folder
    title: str
    terminals: tuple[Terminal, ...]
    steps: tuple[Step, ...]
    showed: str  # one line for the tour: what the chapter showed
    # What its scripts declare, as they declare it (`make doctor` compares a broker's with it):
    # named queues, all durable, with their arguments; exchanges with their types; streams
    # with their arguments, as the stream protocol takes them.
    queues: tuple[tuple[str, Arguments], ...] = ()
    exchanges: tuple[tuple[str, str], ...] = ()
    streams: tuple[tuple[str, Arguments], ...] = ()
    # The client its scripts use: "pika" (AMQP, RABBITMQ_URL) or "rstream" (the RabbitMQ
    # Stream protocol, RABBITMQ_STREAM_URL).
    client: str = "pika"

    def promised(self, *steps: Step) -> dict[str, list[str]]:
        """The message lines each terminal must print for ``steps``, in order."""
        return {
            term.name: [e.line for step in steps for e in step.expect if term.name in e.where]
            for term in self.terminals
        }


def route(key: str, message: str, *where: str, script: str = "topics/emit_log_topic.py") -> Step:
    """A log sent with a routing key, and the terminals it must reach."""
    reached = ", ".join(where) if where else "no queue: dropped"
    return Step(
        script,
        (key, message),
        (Expect(f" [x] {key}:{message}", where), Expect(f" [x] Sent {key}:{message}", (SENDER,))),
        says=f"{key} -> {reached}",
    )


HELLO_WORLD = Chapter(
    "hello_world",
    "Hello World",
    terminals=(Terminal("receive", "hello_world/receive.py", ready=WAITING_MESSAGES),),
    steps=(
        Step(
            "hello_world/send.py",
            expect=(
                Expect(" [x] Sent 'Hello World!'", (SENDER,)),
                Expect(" [x] Received Hello World!", ("receive",)),
            ),
            says="send.py puts one message on queue hello; receive.py prints it",
        ),
    ),
    showed="the message sent to queue 'hello' reached the receiver once",
    queues=(("hello", QUORUM),),
)

WORK_QUEUES = Chapter(
    "work_queues",
    "Work queues",
    terminals=tuple(
        Terminal(
            f"worker {n}",
            "work_queues/worker.py",
            ready=WAITING_MESSAGES,
            message=r"^ \[x\] Received ",
            finished=r"^ \[x\] Done$",
        )
        for n in (1, 2)
    ),
    steps=tuple(
        Step(
            "work_queues/new_task.py",
            (task,),
            (
                Expect(f" [x] Sent {task}", (SENDER,)),
                Expect(f" [x] Received {task}", ("worker 1", "worker 2"), one_of=True),
            ),
            says=f"task {task!r}: {task.count('.')} s of work for whichever worker is free",
        )
        for task in ("First task.", "Second task..", "Third task.", "Fourth task..")
    ),
    showed="four tasks on 'task_queue' were shared by the two workers, each done once",
    queues=(("task_queue", QUORUM),),
)

PUBLISH_SUBSCRIBE = Chapter(
    "publish_subscribe",
    "Publish/Subscribe",
    terminals=(
        Terminal("receiver 1", "publish_subscribe/receive_logs.py"),
        Terminal("receiver 2", "publish_subscribe/receive_logs.py"),
    ),
    steps=tuple(
        Step(
            "publish_subscribe/emit_log.py",
            (message,),
            (
                Expect(f" [x] Sent {message}", (SENDER,)),
                Expect(f" [x] {message}", ("receiver 1", "receiver 2")),
            ),
            says=f"{message!r} -> fanout exchange 'logs' -> every bound queue",
        )
        for message in ("info: Hello World!", "warning: disk 90% full")
    ),
    showed="every log on the fanout exchange 'logs' reached both receivers",
    exchanges=(("logs", "fanout"),),
)

ROUTING = Chapter(
    "routing",
    "Routing",
    terminals=(
        Terminal("errors only", "routing/receive_logs_direct.py", ("error",)),
        Terminal("all severities", "routing/receive_logs_direct.py", ("info", "warning", "error")),
    ),
    steps=(
        route("info", "Starting up", "all severities", script="routing/emit_log_direct.py"),
        route("warning", "Disk 90% full", "all severities", script="routing/emit_log_direct.py"),
        route("debug", "Nobody is bound to debug", script="routing/emit_log_direct.py"),
        route(
            "error",
            "Run. Run. Or it will explode.",
            "errors only",
            "all severities",
            script="routing/emit_log_direct.py",
        ),
    ),
    showed="each severity reached exactly the queues bound to it; 'debug' was dropped",
    exchanges=(("direct_logs", "direct"),),
)

TOPICS = Chapter(
    "topics",
    "Topics",
    terminals=(
        Terminal("Q1 *.orange.*", "topics/receive_logs_topic.py", ("*.orange.*",)),
        Terminal("Q2 *.*.rabbit lazy.#", "topics/receive_logs_topic.py", ("*.*.rabbit", "lazy.#")),
        Terminal("Q3 #", "topics/receive_logs_topic.py", ("#",)),
    ),
    steps=(
        route("quick.orange.fox", "matches Q1 only", "Q1 *.orange.*", "Q3 #"),
        route("lazy.brown.fox", "matches Q2 only", "Q2 *.*.rabbit lazy.#", "Q3 #"),
        route("lazy.pink.rabbit", "matches both keys of Q2", "Q2 *.*.rabbit lazy.#", "Q3 #"),
        route("quick.brown.fox", "matches no key", "Q3 #"),
        route("orange", "too few words", "Q3 #"),
        route("quick.orange.new.rabbit", "too many words", "Q3 #"),
        route("lazy.orange.new.rabbit", "lazy.# takes any length", "Q2 *.*.rabbit lazy.#", "Q3 #"),
        route(
            "quick.orange.rabbit",
            "matches both",
            "Q1 *.orange.*",
            "Q2 *.*.rabbit lazy.#",
            "Q3 #",
        ),
    ),
    showed="each routing key reached the queues whose patterns match it, once; '#' got them all",
    exchanges=(("topic_logs", "topic"),),
)

RPC = Chapter(
    "rpc",
    "RPC",
    terminals=(
        Terminal("rpc_server", "rpc/rpc_server.py", ready=AWAITING_RPC, message=r"^ \[\.\] fib"),
    ),
    steps=tuple(
        Step(
            "rpc/rpc_client.py",
            args,
            (
                Expect(f" [x] Requesting fib({n})", (SENDER,)),
                Expect(f" [.] fib({n})", ("rpc_server",)),
                Expect(f" [.] Got {answer}", (SENDER,)),
            ),
            says=f"fib({n}) asked on 'rpc_queue', answered on the client's own reply queue",
        )
        for args, n, answer in (((), 30, 832040), (("10",), 10, 55))
    ),
    showed="each request on 'rpc_queue' got its own answer back through reply_to",
    queues=(("rpc_queue", QUORUM),),
)


@dataclass(frozen=True)
class ConfirmStrategy:
    """One of chapter 7's ways to wait for the broker's confirms: a script and its queue."""

    script: str
    queue: str  # a quorum queue of its own; the script's messages are "<prefix>-<n>"
    how: str  # as the script puts it when it starts
    what: str  # one line for the tour and the bench
    done: str  # as the script puts it when it has finished: "Published N messages <done> in"

    @property
    def prefix(self) -> str:
        return self.queue.removeprefix("confirms_")


CONFIRM_STRATEGIES = (
    ConfirmStrategy(
        "publisher_confirms/publish_individually.py",
        "confirms_individually",
        "each waiting for its confirm",
        "confirm each message, one at a time",
        "individually",
    ),
    ConfirmStrategy(
        "publisher_confirms/publish_in_batches.py",
        "confirms_batches",
        "waiting for confirms every 100",
        "confirm in batches of 100",
        "in batches",
    ),
    ConfirmStrategy(
        "publisher_confirms/publish_async.py",
        "confirms_async",
        "confirms handled as they arrive",
        "confirm asynchronously",
        "asynchronously",
    ),
)

PUBLISHER_CONFIRMS = Chapter(
    "publisher_confirms",
    "Publisher confirms",
    terminals=(),  # what is checked is what the publishers print: the broker's confirms
    steps=(
        *(
            Step(
                strategy.script,
                ("1000",),
                (
                    Expect(
                        f" [*] Publishing 1,000 messages to '{strategy.queue}', {strategy.how}",
                        (SENDER,),
                    ),
                    Expect(" [x] 1,000 of 1,000 messages confirmed", (SENDER,)),
                    # The time it took varies from run to run.
                    Expect(
                        rf"Published 1,000 messages {strategy.done} in [\d,]+ ms",
                        (SENDER,),
                        regex=True,
                    ),
                ),
                says=f"1,000 persistent messages to quorum queue '{strategy.queue}': "
                f"{strategy.what}",
            )
            for strategy in CONFIRM_STRATEGIES
        ),
        Step(
            "publisher_confirms/returns_and_nacks.py",
            expect=tuple(
                Expect(line, (SENDER,))
                for line in (
                    " [x] 'Anyone?' was confirmed and dropped: no queue took it",
                    " [!] 'Hello?' (mandatory) was returned: 312 NO_ROUTE",
                    " [x] 'first' was confirmed: queue 'confirms_full' has it",
                    " [!] 'second' was nacked: queue 'confirms_full' is full (max length 1)",
                )
            ),
            says="no queue: confirmed and dropped, or returned if mandatory; a full queue nacks",
        ),
    ),
    showed="every message was confirmed; mandatory brought the unroutable one back; a full "
    "queue nacked",
    queues=(
        ("confirms_individually", QUORUM),
        ("confirms_batches", QUORUM),
        ("confirms_async", QUORUM),
        (
            "confirms_full",
            (("x-queue-type", "classic"), ("x-max-length", 1), ("x-overflow", "reject-publish")),
        ),
    ),
)

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

CHAPTERS: tuple[Chapter, ...] = (
    HELLO_WORLD,
    WORK_QUEUES,
    PUBLISH_SUBSCRIBE,
    ROUTING,
    TOPICS,
    RPC,
    PUBLISHER_CONFIRMS,
    STREAM_HELLO_WORLD,
    STREAM_OFFSET_TRACKING,
)


def _first_runs(client: str) -> dict[str, Terminal | Step]:
    found: dict[str, Terminal | Step] = {}
    for chap in CHAPTERS:
        if chap.client == client:
            for part in (*chap.terminals, *chap.steps):
                found.setdefault(part.script, part)
    return found


# Every pika chapter script once, with the arguments its chapter first runs it with: a
# terminal (a script that waits, with the line it prints once it does) or a step (one that
# ends). The stream scripts, on rstream, fail and stop in ways of their own: STREAM_SCRIPTS.
SCRIPTS = _first_runs("pika")
RECEIVERS = {script: part for script, part in SCRIPTS.items() if isinstance(part, Terminal)}
STREAM_SCRIPTS = _first_runs("rstream")


def chapter(slug: str) -> Chapter:
    for candidate in CHAPTERS:
        if candidate.slug == slug:
            return candidate
    raise KeyError(slug)
