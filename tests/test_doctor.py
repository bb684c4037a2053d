"""make doctor: one line per check, the exact command that fixes each problem, exit 1 on any.

Every problem is made for real on the test's broker (a wrong password, a missing virtual host,
a classic `hello` left by older tutorial code, a memory alarm...), and where the doctor names a
fix, the test carries it out and checks that the chapter script then works. The stream checks
(chapters 8 and 9) are tested the same way, at the end.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import urllib.parse

import pytest
import stream_broker
from dead_ends import dead_ends

from tutorial_tools import tour
from tutorial_tools.addresses import StreamAddress, amqp_url, masked, stream_url
from tutorial_tools.chapters import CHAPTERS
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


def lines(proc: ScriptProcess, status: str) -> list[str]:
    return [line[6:] for line in proc.stdout if line.startswith(f"{status:<5} ")]


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


def test_a_broker_with_nothing_wrong_passes_every_check(sandbox, streams):
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    assert lines(proc, "FAIL") == []
    assert lines(proc, "note") == []
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


@pytest.fixture
def port():
    """The "refused" and "silent" loopback ports of dead_ends(), for the test's length."""
    with dead_ends() as ports:
        yield ports


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


@pytest.mark.parametrize("chap", CHAPTERS, ids=lambda c: c.slug)
def test_what_the_doctor_expects_is_what_each_chapter_declares(sandbox, chap, request):
    """The doctor's table (chapters.py) matches the broker after the chapter has run."""
    if chap.client == "rstream":
        request.getfixturevalue("streams")  # skipped where the broker serves no streams
    assert tour.run_chapter(chap, sandbox.url, stream_url=sandbox.stream_url).problems == []
    found = sandbox.broker.management.get("queues", sandbox.vhost)
    queues = {
        q["name"]: (q["durable"], q["arguments"])
        for q in found
        if not q["exclusive"] and q["type"] != "stream"
    }
    # A stream is a queue of type stream; what the stream protocol calls max-length-bytes,
    # the queue's arguments call x-max-length-bytes.
    streams = {q["name"]: q["arguments"] for q in found if q["type"] == "stream"}
    assert streams == {
        name: {"x-queue-type": "stream", **{f"x-{key}": value for key, value in arguments}}
        for name, arguments in chap.streams
    }
    exchanges = {
        e["name"]: e["type"]
        for e in sandbox.broker.management.get("exchanges", sandbox.vhost)
        if e["name"] and not e["name"].startswith("amq.")
    }
    assert queues == {name: (True, dict(arguments)) for name, arguments in chap.queues}
    assert exchanges == dict(chap.exchanges)


# -- the stream port (chapters 8 and 9) ------------------------------------------------------


def stream_lines(proc: ScriptProcess) -> list[str]:
    """The lines of the stream section: from the one about the stream URL on."""
    first = next(i for i, line in enumerate(proc.stdout) if "URL is rabbitmq-stream://" in line)
    return proc.stdout[first:]


def test_no_stream_url_and_nothing_on_5552_is_a_note_not_a_failure(sandbox):
    with socket.socket() as probe:
        if probe.connect_ex(("localhost", 5552)) == 0:
            pytest.skip("something listens on localhost:5552 on this machine")
    proc = doctor(sandbox.url, sandbox.broker.management_url)  # RABBITMQ_STREAM_URL unset
    assert proc.process.returncode == 0, proc.output
    assert stream_lines(proc)[0].startswith(
        "ok    the stream chapters' default URL is rabbitmq-stream://guest:****@localhost:5552/%2F"
    )
    [note] = lines(proc, "note")
    assert note.startswith("nothing listens on localhost:5552, where the stream chapters")
    assert "chapters 1 to 7 do not need it" in note
    assert lines(proc, "FAIL") == []


@pytest.mark.parametrize(
    "url, says",
    [
        (
            "amqp://guest:guest@localhost:5672/%2F",
            "(it must start with rabbitmq-stream://) (this is an AMQP URL: streams have a port of "
            "their own; 'make broker' prints both)",
        ),
        ("localhost:5552", "(it must start with rabbitmq-stream://)"),
        ("rabbitmq-stream://localhost:notaport/", "notaport"),
        (f"rabbitmq-stream://guest:{PASSWORD}@[::1/", "Invalid IPv6 URL"),
    ],
    ids=["an AMQP URL", "no scheme", "a port that is no number", "a broken IPv6 address"],
)
def test_an_invalid_stream_url_is_one_fail_line(sandbox, url, says):
    proc = doctor(sandbox.url, sandbox.broker.management_url, stream_url=url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RABBITMQ_STREAM_URL is not a valid RabbitMQ Stream URL")
    assert says in fail
    assert lines(proc, "note") == ["the remaining stream checks need what failed above"]


@pytest.mark.parametrize(
    "where, says",
    [
        (
            "refused",
            "nothing listens on 127.0.0.1:{port}: the broker is down, or runs without "
            "the stream plugin ('rabbitmq-plugins enable rabbitmq_stream')",
        ),
        ("unknown host", "the host 'nonexistent.invalid' is unknown"),
        ("silent", "127.0.0.1:{port} did not answer the stream protocol within 5 s"),
        ("AMQP port", "{host}:{port} is RabbitMQ's AMQP port (RABBITMQ_URL's), not its stream"),
    ],
)
def test_no_stream_port_at_the_address_says_what_is_there_instead(sandbox, port, where, says):
    broker = sandbox.broker
    host, at = {
        "refused": ("127.0.0.1", port["refused"]),
        "unknown host": ("nonexistent.invalid", 5552),
        "silent": ("127.0.0.1", port["silent"]),
        "AMQP port": (broker.host, broker.amqp_port),
    }[where]
    url = stream_url(host, at, sandbox.vhost, password=PASSWORD)
    proc = doctor(sandbox.url, broker.management_url, stream_url=url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert says.format(host=host, port=at) in fail
    # Set, RABBITMQ_STREAM_URL is where the learner wants streams: a failure, not a note.
    assert lines(proc, "note") == ["the remaining stream checks need what failed above"]


def test_a_wrong_password_on_the_stream_port_fails_at_login(sandbox, streams):
    where = StreamAddress.parse(sandbox.stream_url)
    url = stream_url(where.host, where.port, sandbox.vhost, password=PASSWORD)
    proc = doctor(sandbox.url, sandbox.broker.management_url, stream_url=url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith("RabbitMQ refused user 'guest' on the stream port (")
    assert "rabbitmqctl add_user" in fail


def test_a_missing_virtual_host_on_the_stream_port_fails_with_the_commands_that_make_it(
    sandbox, streams
):
    url = sandbox.broker.stream_url_for("doctor-no-such-vhost")
    proc = doctor(sandbox.url, sandbox.broker.management_url, stream_url=url)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert "may not use virtual host 'doctor-no-such-vhost' (VirtualHostAccessFailure)" in fail
    commands = [shlex.split(c)[1] for c in re.findall(r"'(rabbitmqctl [^']+)'", fail)]
    assert commands == ["add_vhost", "set_permissions"]


def test_a_stream_declared_with_other_retention_fails_with_the_command_that_deletes_it(
    sandbox, streams
):
    stream_broker.create(sandbox.stream_url, "hello-python-stream", {"max-length-bytes": 1_000_000})
    proc = checked(sandbox)
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith(
        "stream 'hello-python-stream' exists with other arguments than stream_hello_world "
        "declares (max-length-bytes 5000000000; PreconditionFailed)"
    )
    assert fix_command(fail) == ["delete_queue", "-p", sandbox.vhost, "hello-python-stream"]
    after_the_fix(sandbox, fail, "stream_hello_world/send.py", [" [x] Hello, World! message sent"])


def test_streams_as_the_chapters_declare_them_pass(sandbox, streams):
    for chap in CHAPTERS:
        if chap.streams:
            assert tour.run_chapter(chap, sandbox.url, stream_url=sandbox.stream_url).ok
    proc = checked(sandbox)
    assert proc.process.returncode == 0, proc.output
    assert stream_lines(proc)[-3:-1] == [
        "ok    stream 'hello-python-stream' (stream_hello_world) is as the chapter declares it",
        "ok    stream 'stream-offset-tracking-python' (stream_offset_tracking) is as the chapter "
        "declares it",
    ]


@contextlib.contextmanager
def advertising(broker, host: str):
    """The broker advertises ``host`` for its streams while the block runs. The stream plugin
    reads the setting for each new connection, so rabbitmqctl eval changes it at once."""
    key = "application:get_env(rabbitmq_stream, advertised_host)"
    before = broker.rabbitmqctl("eval", f"{key}.").strip()  # {ok,...}, or undefined
    broker.rabbitmqctl(
        "eval", f'application:set_env(rabbitmq_stream, advertised_host, <<"{host}">>).'
    )
    try:
        yield
    finally:
        if before.startswith("{ok,"):
            restore = f"application:set_env(rabbitmq_stream, advertised_host, {before[4:-1]})."
        else:
            restore = "application:unset_env(rabbitmq_stream, advertised_host)."
        broker.rabbitmqctl("eval", restore)
        assert broker.rabbitmqctl("eval", f"{key}.").strip() == before


def test_an_advertised_host_this_machine_cannot_resolve_fails_with_how_to_set_it(sandbox, streams):
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    with advertising(sandbox.broker, "nonexistent.invalid"):
        proc = checked(sandbox)
        # What a stream script meets there: the first connection works, the second fails.
        sender = sandbox.run("stream_hello_world/send.py")
    assert proc.process.returncode == 1
    [fail] = lines(proc, "FAIL")
    assert fail.startswith(
        f"RabbitMQ advertises nonexistent.invalid:{StreamAddress.parse(sandbox.stream_url).port}"
        " for its streams, where stream clients connect next, and this machine cannot resolve"
    )
    assert "gaierror" in fail and "stream.advertised_host = localhost" in fail
    assert sender.process.returncode == 1
    assert sender.stderr[0].startswith(" [!] gaierror("), sender.output
    assert checked(sandbox).process.returncode == 0  # advertising localhost again
