"""make doctor, for the AMQP 1.0 track (amqp10/): that RabbitMQ speaks AMQP 1.0 at RABBITMQ_URL,
with the same login and virtual host, through the client the track's scripts use."""

from __future__ import annotations

import pika

from tutorial_tools.doctor_report import Report
from tutorial_tools.probes import amqp10_connection

SINCE = (4, 0)


def check_amqp10(
    report: Report, url: str, params: pika.URLParameters, version: tuple[int, ...]
) -> None:
    where = f"{params.host}:{params.port}"
    if version < SINCE:
        have = ".".join(map(str, version))
        report.note(
            f"AMQP 1.0 (the amqp10/ track): RabbitMQ {have} does not speak it; "
            "the track needs RabbitMQ 4.0 or newer (chapters 1 to 10 do not)"
        )
        return
    try:
        amqp10_connection(url).close()
    except ImportError:
        report.fail(
            "AMQP 1.0 (the amqp10/ track): its client is not installed: "
            "'pip install rabbitmq-amqp-python-client==2.0.0b2' (make setup does)"
        )
        return
    except Exception as error:  # the client's reason, in one line
        report.fail(f"AMQP 1.0 (the amqp10/ track) fails on {where}: {error!r}")
        return
    report.ok(f"RabbitMQ speaks AMQP 1.0 on {where} (the amqp10/ track)")
