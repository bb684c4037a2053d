"""make doctor, its AMQP half: one line per check, the exact command that fixes each problem,
exit 1 on any.

Every problem is made for real on the test's broker (a wrong password, a missing virtual host,
a classic `hello` left by older tutorial code, a memory alarm...), and where the doctor names a
fix, the test carries it out and checks that the chapter script then works. The stream half is
tested in test_doctor_streams.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import urllib.parse

import pytest
from doctor_runs import PASSWORD, after_the_fix, checked, doctor, fix_command, lines
from test_dead_letters import park_a_poison_task

from tutorial_tools.addresses import StreamAddress, amqp_url, masked
from tutorial_tools.processes import ROOT


def test_a_broker_with_nothing_wrong_passes_every_check(sandbox, streams, rabbitmq_version):
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    assert lines(proc, "FAIL") == []
    # AMQP 1.0, for the amqp10/ track: spoken since 4.0; before, a note and not a failure.
    assert lines(proc, "note") == []
    where = sandbox.url.rpartition("@")[2].partition("/")[0]
    amqp10 = [line[6:] for line in proc.stdout if "amqp10/" in line]
    if rabbitmq_version >= (4, 0):
        assert amqp10 == [f"RabbitMQ speaks AMQP 1.0 on {where} (the amqp10/ track)"]
    else:
        assert amqp10 == [
            f"AMQP 1.0 (the amqp10/ track): RabbitMQ {'.'.join(map(str, rabbitmq_version))} "
            "does not speak it; the track needs RabbitMQ 4.0 or newer (chapters 1 to 10 do not)"
        ]
    overview = sandbox.broker.management.get("overview")
    version = f"RabbitMQ {overview['rabbitmq_version']} on Erlang "
    assert any(line.startswith(version) for line in lines(proc, "ok")), proc.output
    # The stream port, after the AMQP checks: every one of its checks is there, and passed.
    where = StreamAddress.parse(sandbox.stream_url)
    stream_checks = [
        f"RABBITMQ_STREAM_URL is {masked(sandbox.stream_url)}: host {where.host}, ",
        f"RabbitMQ answers the stream protocol on {where.host}:{where.port}",
        f"user 'guest' logged in to virtual host '{sandbox.vhost}' over the stream protocol",
        "RabbitMQ advertises ",
        "not declared yet (the stream scripts declare them): stream hello-python-stream, "
        "stream stream-offset-tracking-python",
    ]
    ok = lines(proc, "ok")
    stream_ok = ok[-len(stream_checks) :]
    assert [line[: len(start)] for line, start in zip(stream_ok, stream_checks, strict=True)] == (
        stream_checks
    ), proc.output
    assert proc.stdout[-1] == "All checks passed."


@pytest.mark.rabbitmq(since=(4, 0), otherwise="it has no AMQP 1.0: the doctor only notes that")
def test_without_the_amqp10_client_the_doctor_fails_and_says_how_to_install_it(sandbox, tmp_path):
    # A package of the client's name that cannot be imported, ahead of the installed one on the
    # path: as where only pika was installed. A process of its own, not a fork of the launcher,
    # whose path is already set.
    (tmp_path / "rabbitmq_amqp_python_client").mkdir()
    (tmp_path / "rabbitmq_amqp_python_client" / "__init__.py").write_text("raise ImportError\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), RABBITMQ_URL=sandbox.url)
    env.update(RABBITMQ_MANAGEMENT_URL=sandbox.broker.management_url)
    env.update(RABBITMQ_STREAM_URL=sandbox.stream_url or "")
    proc = subprocess.run(
        [sys.executable, "-m", "tutorial_tools.doctor"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (1, ""), proc.stdout + proc.stderr
    # The version it names is the one pyproject.toml pins.
    (pin,) = re.findall(
        r'"(rabbitmq-amqp-python-client==[^"]+)"', (ROOT / "pyproject.toml").read_text()
    )
    assert [line for line in proc.stdout.splitlines() if line.startswith("FAIL")] == [
        f"FAIL  AMQP 1.0 (the amqp10/ track): its client is not installed: 'pip install {pin}'"
        " (make setup does)"
    ]


def test_messages_left_in_a_chapter_queue_are_a_note_with_how_to_drop_them(sandbox):
    for _ in range(2):
        assert sandbox.run("work_queues/new_task.py", "Left over").process.returncode == 0
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    [note] = [line for line in lines(proc, "note") if "task_queue" in line]
    assert "holds 2 message(s)" in note
    if sandbox.broker.source != "url":
        sandbox.rabbitmqctl(*fix_command(note))
        assert not [line for line in lines(checked(sandbox), "note") if "task_queue" in line]


def test_a_dead_letter_policy_and_a_parked_task_are_notes_that_say_what_to_do(sandbox):
    park_a_poison_task(sandbox)  # through a policy on task_queue, left in place
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    [parked] = [line for line in lines(proc, "note") if line.startswith("queue 'parking_lot'")]
    assert parked == (  # as dead_letters/README.md shows it
        "queue 'parking_lot' (dead_letters) holds 1 task(s) that no worker could do: 'python "
        "dead_letters/parking_lot.py' shows why, '--move' sends them back to task_queue"
    )
    policies = [line for line in lines(proc, "note") if line.startswith("queue 'task_queue'")]
    assert len(policies) == 1, proc.output
    [policy] = policies
    assert policy.startswith(
        "queue 'task_queue' has dead-letter settings from policy 'dead-letters': "
        "dead-letter-exchange '', dead-letter-routing-key 'parking_lot'; to remove them, "
    )
    if sandbox.broker.source != "url":
        sandbox.rabbitmqctl(*fix_command(policy))
        assert not [line for line in lines(checked(sandbox), "note") if "'task_queue'" in line]


def test_a_classic_hello_from_older_code_fails_with_the_command_that_deletes_it(sandbox):
    with sandbox.connection() as connection:
        # Older tutorial code declares a classic queue (and non-durable, which a strict 4.x
        # broker refuses outright): a classic durable one is enough for a mismatch.
        connection.channel().queue_declare("hello", durable=True)
    proc = checked(sandbox)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("queue 'hello' exists with other arguments than hello_world declares")
    assert "PRECONDITION_FAILED" in fail
    assert fix_command(fail) == ["delete_queue", "-p", sandbox.vhost, "hello"]
    after_the_fix(sandbox, fail, "hello_world/send.py", [" [x] Sent 'Hello World!'"])


def test_an_exchange_of_another_type_fails_with_how_to_delete_it(sandbox):
    with sandbox.connection() as connection:
        connection.channel().exchange_declare("logs", exchange_type="direct")
    proc = checked(sandbox)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert "exchange 'logs' exists with other settings than publish_subscribe" in fail
    path = re.search(r"-X DELETE http://HOST:15672(/api/exchanges/\S+)'", fail)[1]
    sandbox.broker.management.request("DELETE", path)  # what the curl command does
    assert checked(sandbox).process.returncode == 0
    assert sandbox.run("publish_subscribe/emit_log.py").process.returncode == 0


def test_a_transient_exchange_from_the_official_tutorial_fails_with_how_to_delete_it(sandbox):
    # The official tutorial declares 'logs' transient; the chapters here declare it durable.
    with sandbox.connection() as connection:
        connection.channel().exchange_declare("logs", exchange_type="fanout")
    proc = checked(sandbox)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert "exchange 'logs' exists with other settings than publish_subscribe" in fail
    assert "inequivalent arg 'durable'" in fail


def test_a_wrong_password_fails_at_login_and_stops_there(broker, sandbox):
    url = amqp_url(broker.host, broker.amqp_port, sandbox.vhost, password=PASSWORD)
    proc = doctor(url, broker.management_url, stream_url=sandbox.stream_url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RabbitMQ refused user 'guest' (ACCESS_REFUSED)")
    assert "rabbitmqctl add_user" in fail
    assert lines(proc, "note") == ["the remaining AMQP checks need what failed above"]


def test_a_missing_virtual_host_fails_with_the_commands_that_make_it(broker):
    if broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    vhost = "doctor-made-me"
    proc = doctor(broker.url_for(vhost), broker.management_url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert f"may not use virtual host '{vhost}': it does not exist (NOT_ALLOWED)" in fail
    commands = [shlex.split(c)[1:] for c in re.findall(r"'(rabbitmqctl [^']+)'", fail)]
    assert [c[0] for c in commands] == ["add_vhost", "set_permissions"]
    try:
        for command in commands:
            broker.rabbitmqctl(*command)
        assert doctor(broker.url_for(vhost), broker.management_url).process.returncode == 0
    finally:
        broker.delete_vhost(vhost)


def test_a_virtual_host_without_permissions_fails_with_the_command_that_grants_them(broker):
    vhost = "doctor-no-permissions"
    broker.management.put("vhosts", vhost)
    try:
        # The management API grants its own user on a virtual host it makes: take that back.
        broker.management.delete("permissions", vhost, broker.user)
        proc = doctor(broker.url_for(vhost), broker.management_url)
        assert proc.process.returncode == 1
        [fail] = lines(proc, "FAIL")
        assert fail.startswith(f"user 'guest' has no permissions on virtual host '{vhost}'")
        assert "rabbitmqctl set_permissions" in fail
    finally:
        broker.delete_vhost(vhost)


def test_a_memory_alarm_fails_and_says_publishers_are_blocked(sandbox):
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    sandbox.rabbitmqctl("set_vm_memory_high_watermark", "0.00001")
    try:
        proc = checked(sandbox)
    finally:
        sandbox.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RabbitMQ is blocking publishers (low on memory): a memory alarm")
    assert "rabbitmqctl set_vm_memory_high_watermark" in fail
    assert checked(sandbox).process.returncode == 0  # cleared


@pytest.mark.parametrize(
    "where, says",
    [
        ("refused", "nothing listens on 127.0.0.1:"),
        ("unknown host", "the host 'nonexistent.invalid' is unknown"),
        ("silent", "did not answer the AMQP greeting within 5 s"),
        ("management port", "is it RabbitMQ's AMQP port (usually 5672; the management UI"),
    ],
)
def test_no_broker_at_the_address_says_what_is_there_instead(broker, port, where, says):
    management = urllib.parse.urlsplit(broker.management_url or "")
    if where == "management port" and management.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("this broker has no management port on a loopback address")
    host, at = {
        "refused": ("127.0.0.1", port["refused"]),
        "unknown host": ("nonexistent.invalid", 5672),
        "silent": ("127.0.0.1", port["silent"]),
        "management port": (management.hostname, management.port),
    }[where]
    proc = doctor(amqp_url(host, at, "/", password=PASSWORD), stream_url=broker.stream_url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert says in fail


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://localhost/", "it must start with amqp:// or amqps://"),
        (f"amqp://guest:{PASSWORD}@[::1/", "Invalid IPv6 URL"),
        ("amqp://guest@localhost/", "a user needs a password"),
        ("amqp://localhost/?heartbeat=soon", "Invalid heartbeat value 'soon'"),
    ],
)
def test_an_invalid_url_is_one_fail_line(broker, url, says):
    proc = doctor(url, stream_url=broker.stream_url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RABBITMQ_URL is not a valid AMQP URL")
    assert says in fail
