"""make doctor run as a learner runs it, and read: what the doctor tests share."""

from __future__ import annotations

import re
import shlex

from tutorial_tools.processes import ScriptProcess, run_script

PASSWORD = "s3cret-pw"  # distinctive: found anywhere in the output, it leaked


def doctor(
    url: str, management_url: str | None = None, timeout: float = 60, stream_url: str = ""
) -> ScriptProcess:
    """make doctor with these URLs; ``stream_url`` "" leaves RABBITMQ_STREAM_URL unset."""
    env = {"RABBITMQ_MANAGEMENT_URL": management_url} if management_url else {}
    proc = run_script(
        "tutorial_tools/doctor.py", url=url, env=env, stream_url=stream_url, timeout=timeout
    )
    assert "Traceback" not in proc.output
    assert PASSWORD not in proc.output
    assert proc.stderr == []
    return proc


# Before RabbitMQ 4.0 every run ends its AMQP checks with this note, whatever a test is about:
# test_doctor.py's broker with nothing wrong reads it itself.
NO_AMQP10 = "AMQP 1.0 (the amqp10/ track): RabbitMQ "


def lines(proc: ScriptProcess, status: str) -> list[str]:
    """The lines of one status, but for NO_AMQP10, and for what the doctor read in the broker's
    log about missed heartbeats: a broker's log is shared by every test that ran on it, and the
    resilient worker's heartbeat experiment (tests/test_resilient_worker.py, which reads that
    line itself) leaves a note there for every doctor run after it."""
    return [
        line[6:]
        for line in proc.stdout
        if line.startswith(f"{status:<5} ")
        and "for missed heartbeats" not in line
        and not line[6:].startswith(NO_AMQP10)
    ]


def checked(sandbox) -> ScriptProcess:
    return doctor(sandbox.url, sandbox.broker.management_url, stream_url=sandbox.stream_url or "")


def fix_command(line: str) -> list[str]:
    """The rabbitmqctl command a FAIL line names, as words."""
    found = re.search(r"'(rabbitmqctl [^']+)'", line)
    assert found, line
    return shlex.split(found[1])[1:]


def after_the_fix(sandbox, fail: str, script: str, prints: list[str]) -> None:
    """Carry out the command the FAIL line names: then every check passes, and the chapter's
    ``script`` runs and prints ``prints``. (Not on a broker named by RABBITMQ_URL, which
    rabbitmqctl cannot reach.)"""
    if sandbox.broker.source == "url":
        return
    sandbox.rabbitmqctl(*fix_command(fail))
    assert checked(sandbox).process.returncode == 0
    assert sandbox.run(script).stdout == prints
