"""The AMQP 1.0 track (amqp10/): the tutorials on RabbitMQ's own AMQP 1.0 client, which needs
RabbitMQ 4.0 or newer. The tour runs its work queue, chapter 2's with the track's scripts: the
chapter where credit stands in for prefetch and outcomes for acks, and whose lines are the
same in both tracks. The tests run every chapter of the track (tests/test_amqp10*.py)."""

from __future__ import annotations

from dataclasses import replace

from tutorial_tools.chapters_pika import WORK_QUEUES


def _in_the_track(part):
    """A terminal or a step of chapter 2, with the track's script of the same name."""
    return replace(part, script=f"amqp10/{part.script}")


AMQP10 = replace(
    WORK_QUEUES,
    slug="amqp10",
    title="AMQP 1.0: work queues",
    terminals=tuple(map(_in_the_track, WORK_QUEUES.terminals)),
    steps=tuple(map(_in_the_track, WORK_QUEUES.steps)),
    showed="four tasks sent over AMQP 1.0 were shared by the two workers, each accepted once",
    client="amqp10",
    since=(4, 0),
    needs="AMQP 1.0 chapters need RabbitMQ 4.0 or newer",
)
