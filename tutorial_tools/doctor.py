"""make doctor: what stands between the chapter scripts and the broker, and how to fix it.

    python -m tutorial_tools.doctor            (make doctor)

Checks the broker at RABBITMQ_URL (the scripts' default, amqp://guest:guest@localhost:5672/%2F,
when unset), one line per check: `ok`, `note` (worth knowing, not a problem) or `FAIL` with the
command that fixes it. Where one check fails, the checks that need it are skipped. The
management plugin's HTTP API (RABBITMQ_MANAGEMENT_URL, default port 15672 on the same host) is
used where it answers, for the alarms and the virtual host; everything else goes over AMQP.

Then the stream port, for chapters 8 and 9, at RABBITMQ_STREAM_URL (the stream scripts'
default, rabbitmq-stream://guest:guest@localhost:5552/%2F, when unset), over the stream protocol:
the URL; that RabbitMQ answers there in the stream protocol (not AMQP, HTTP or silence); the
login and the virtual host; that the address the broker advertises for its streams, where a
stream client connects next, is reachable from here; and the chapters' streams. Streams are
optional for chapters 1 to 7: with RABBITMQ_STREAM_URL unset and nothing on localhost:5552,
that is a note, not a failure.

Exit status 1 when any check failed, else 0. No password is ever printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tutorial_tools.addresses import DEFAULT_URL, printable
from tutorial_tools.doctor_amqp import AmqpChecks
from tutorial_tools.doctor_report import Line, NoStreams, Report, Stop
from tutorial_tools.doctor_streams import StreamChecks


def run(
    url: str,
    management_url: str | None,
    say: Callable[[Line], None],
    stream_url: str | None = None,
) -> int:
    """The AMQP half, then the stream half whatever became of the first: chapters 1 to 7 need
    no streams, and 8 and 9 no AMQP. 1 when any check failed, else 0."""
    report = Report(say)
    try:
        AmqpChecks(report, url, management_url).run()
    except Stop:
        report.note("the remaining AMQP checks need what failed above")
    try:
        StreamChecks(report, stream_url).run()
    except Stop:
        report.note("the remaining stream checks need what failed above")
    except NoStreams:
        pass
    return 1 if report.failed else 0


def main() -> int:
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_URL
    print(f"make doctor: the broker at {printable(url)}", flush=True)
    try:
        code = run(
            url,
            os.environ.get("RABBITMQ_MANAGEMENT_URL"),
            lambda line: print(line, flush=True),
            os.environ.get("RABBITMQ_STREAM_URL") or None,
        )
    except KeyboardInterrupt:
        return 130
    print("All checks passed." if code == 0 else "Some checks failed: see FAIL above.")
    return code


if __name__ == "__main__":
    sys.exit(main())
