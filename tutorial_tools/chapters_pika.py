"""The pika chapters, 1 to 7: the AMQP tutorials, on queues and exchanges (RABBITMQ_URL)."""

from __future__ import annotations

from dataclasses import dataclass

from tutorial_tools.chapter_types import (
    AWAITING_RPC,
    QUORUM,
    SENDER,
    WAITING_MESSAGES,
    Chapter,
    Expect,
    Step,
    Terminal,
)


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

RESILIENT_WORKER = Chapter(
    "resilient_worker",
    "Resilient worker",
    terminals=(
        Terminal(
            "resilient worker",
            "resilient_worker/resilient_worker.py",
            ready=WAITING_MESSAGES,
            message=r"^ \[x\] Received ",
            finished=r"^ \[x\] Done$",
        ),
    ),
    steps=tuple(
        Step(
            "resilient_worker/resilient_new_task.py",
            (task,),
            (
                Expect(f" [x] Sent {task}", (SENDER,)),
                Expect(f" [x] Received {task}", ("resilient worker",)),
            ),
            says=f"task {task!r}, confirmed, with a message_id; done in a thread of its own",
        )
        for task in ("First task.", "Second task...")
    ),
    showed="each task was confirmed to the publisher, done once and acked from the I/O thread",
    queues=(("task_queue", QUORUM),),
)

POISON = "A poison task"  # the chapter's workers cannot do a task with 'poison' in it
RETRY_WAIT = (("x-message-ttl", 2000), ("x-dead-letter-exchange", ""))
DEAD_LETTERS = Chapter(
    "dead_letters",
    "Dead letters and retries",
    terminals=(
        Terminal(
            "retry worker",
            "dead_letters/retry_worker.py",
            ready=WAITING_MESSAGES,
            message=r"^ \[x\] Received ",
            finished=r"^ \[x\] Done$|^ \[!\] Failed: ",
        ),
    ),
    steps=(
        Step(
            "work_queues/new_task.py",
            ("First task.",),
            (
                Expect(" [x] Sent First task.", (SENDER,)),
                Expect(" [x] Received First task.", ("retry worker",)),
            ),
            says="a task the worker can do: done once",
        ),
        Step(
            "work_queues/new_task.py",
            (POISON,),
            (
                Expect(f" [x] Sent {POISON}", (SENDER,)),
                Expect(f" [x] Received {POISON}", ("retry worker",)),
                Expect(f" [x] Received {POISON} (attempt 2 of 3)", ("retry worker",)),
                Expect(f" [x] Received {POISON} (attempt 3 of 3)", ("retry worker",)),
                # Printed once the parking lot has it: parking_lot.py, next, finds it there.
                Expect(
                    " [!] Failed: ValueError('cannot do a poison task'); parked after 3 attempts",
                    ("retry worker",),
                ),
            ),
            says="a task it cannot do: tried 3 times, 2 s apart (task_queue_wait), then parked",
        ),
        Step(
            "dead_letters/parking_lot.py",
            expect=(
                Expect(
                    f" [x] Parked {POISON} (x-attempts: 3, last error: "
                    "ValueError('cannot do a poison task'))",
                    (SENDER,),
                ),
                Expect(" [*] 1 task(s) in the parking lot", (SENDER,)),
            ),
            says="parking_lot.py shows the parked task and why it is there",
        ),
        Step(
            "work_queues/new_task.py",
            ("Last task.",),
            (
                Expect(" [x] Sent Last task.", (SENDER,)),
                Expect(" [x] Received Last task.", ("retry worker",)),
            ),
            says="the next task: the worker goes on",
        ),
    ),
    showed="the task it could not do was tried 3 times, then parked; the others were done once",
    queues=(
        ("task_queue", QUORUM),
        ("task_queue_wait", (*QUORUM, *RETRY_WAIT, ("x-dead-letter-routing-key", "task_queue"))),
        ("parking_lot", (("x-queue-type", "classic"),)),
    ),
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
