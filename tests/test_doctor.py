"""make doctor: one line per check, the exact command that fixes each problem, exit 1 on any.

Every problem is made for real on the test's broker (a wrong password, a missing virtual host,
a classic `hello` left by older tutorial code, a memory alarm...), and where the doctor names a
fix, the test carries it out and checks that the chapter script then works.
"""

from __future__ import annotations

import re
import shlex
import socket
import urllib.parse

import pytest

from tutorial_tools import tour
from tutorial_tools.broker import amqp_url
from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.processes import ScriptProcess, run_script

PASSWORD = "s3cret-pw"  # distinctive: found anywhere in the output, it leaked


def doctor(url: str, management_url: str | None = None, timeout: float = 60) -> ScriptProcess:
    env = {"RABBITMQ_MANAGEMENT_URL": management_url} if management_url else {}
    proc = run_script("tutorial_tools/doctor.py", url=url, env=env, timeout=timeout)
    assert "Traceback" not in proc.output
    assert PASSWORD not in proc.output
    assert proc.stderr == []
    return proc


def lines(proc: ScriptProcess, status: str) -> list[str]:
    return [line[6:] for line in proc.stdout if line.startswith(f"{status:<5} ")]


def checked(sandbox) -> ScriptProcess:
    return doctor(sandbox.url, sandbox.broker.management_url)


def fix_command(line: str) -> list[str]:
    """The rabbitmqctl command a FAIL line names, as words."""
    found = re.search(r"'(rabbitmqctl [^']+)'", line)
    assert found, line
    return shlex.split(found[1])[1:]


def test_a_broker_with_nothing_wrong_passes_every_check(sandbox):
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    assert lines(proc, "FAIL") == []
    overview = sandbox.broker.management.get("overview")
    version = f"RabbitMQ {overview['rabbitmq_version']} on Erlang "
    assert any(line.startswith(version) for line in lines(proc, "ok")), proc.output
    assert proc.stdout[-1] == "All checks passed."


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
    if sandbox.broker.source == "url":
        return  # rabbitmqctl cannot reach the broker named by RABBITMQ_URL
    sandbox.rabbitmqctl(*fix_command(fail))
    assert checked(sandbox).process.returncode == 0
    assert sandbox.run("hello_world/send.py").stdout == [" [x] Sent 'Hello World!'"]


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


def test_a_wrong_password_fails_at_login_and_stops_there(broker, sandbox):
    url = amqp_url(broker.host, broker.amqp_port, sandbox.vhost, password=PASSWORD)
    proc = doctor(url, broker.management_url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RabbitMQ refused user 'guest' (ACCESS_REFUSED)")
    assert "rabbitmqctl add_user" in fail
    assert lines(proc, "note") == ["the remaining checks need what failed above"]


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


@pytest.fixture
def silent_port():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel accepts connections that nobody answers
        yield silent.getsockname()[1]


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free again once closed: nothing listens there


@pytest.mark.parametrize(
    "where, says",
    [
        ("refused", "nothing listens on 127.0.0.1:"),
        ("unknown host", "the host 'nonexistent.invalid' is unknown"),
        ("silent", "did not answer the AMQP greeting within 5 s"),
        ("management port", "is it RabbitMQ's AMQP port (usually 5672; the management UI"),
    ],
)
def test_no_broker_at_the_address_says_what_is_there_instead(broker, silent_port, where, says):
    management = urllib.parse.urlsplit(broker.management_url or "")
    if where == "management port" and management.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("this broker has no management port on a loopback address")
    host, port = {
        "refused": ("127.0.0.1", refused_port()),
        "unknown host": ("nonexistent.invalid", 5672),
        "silent": ("127.0.0.1", silent_port),
        "management port": (management.hostname, management.port),
    }[where]
    proc = doctor(amqp_url(host, port, "/", password=PASSWORD))
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
def test_an_invalid_url_is_one_fail_line(url, says):
    proc = doctor(url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RABBITMQ_URL is not a valid AMQP URL")
    assert says in fail


@pytest.mark.parametrize("chap", CHAPTERS, ids=lambda c: c.slug)
def test_what_the_doctor_expects_is_what_each_chapter_declares(sandbox, chap):
    """The doctor's table (chapters.py) matches the broker after the chapter has run."""
    assert tour.run_chapter(chap, sandbox.url).problems == []
    queues = {
        q["name"]: (q["durable"], q["arguments"])
        for q in sandbox.broker.management.get("queues", sandbox.vhost)
        if not q["exclusive"]
    }
    exchanges = {
        e["name"]: e["type"]
        for e in sandbox.broker.management.get("exchanges", sandbox.vhost)
        if e["name"] and not e["name"].startswith("amq.")
    }
    assert queues == {name: (True, dict(arguments)) for name, arguments in chap.queues}
    assert exchanges == dict(chap.exchanges)
