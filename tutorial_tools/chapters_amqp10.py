"""The AMQP 1.0 track (amqp10/): the tutorials on RabbitMQ's own AMQP 1.0 client, which needs
RabbitMQ 4.0 or newer. The tour runs its work queue, the chapter where credit stands in for
prefetch and outcomes for acks; the tests run every chapter (tests/test_amqp10*.py)."""

from __future__ import annotations

from tutorial_tools.chapter_types import (
    QUORUM,
    SENDER,
    WAITING_MESSAGES,
    Chapter,
    Expect,
    Step,
    Terminal,
)

AMQP10 = Chapter(
    "amqp10",
    "AMQP 1.0: work queues",
    terminals=tuple(
        Terminal(
            f"worker {n}",
            "amqp10/work_queues/worker.py",
            ready=WAITING_MESSAGES,
            message=r"^ \[x\] Received ",
            finished=r"^ \[x\] Done$",
        )
        for n in (1, 2)
    ),
    steps=tuple(
        Step(
            "amqp10/work_queues/new_task.py",
            (task,),
            (
                Expect(f" [x] Sent {task}", (SENDER,)),
                Expect(f" [x] Received {task}", ("worker 1", "worker 2"), one_of=True),
            ),
            says=f"task {task!r} to /queues/task_queue, accepted; a worker with credit takes it",
        )
        for task in ("First task.", "Second task..", "Third task.", "Fourth task..")
    ),
    showed="four tasks sent over AMQP 1.0 were shared by the two workers, each accepted once",
    queues=(("task_queue", QUORUM),),
    client="amqp10",
    since=(4, 0),
    needs="AMQP 1.0 chapters need RabbitMQ 4.0 or newer",
)
