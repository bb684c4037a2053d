"""make doctor, its stream half (chapters 8 and 9): the stream URL, what answers on the stream
port, the login, the address the broker advertises, and the chapters' streams; each problem
made for real, as in test_doctor.py.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket

import pytest
import stream_broker
from doctor_runs import PASSWORD, after_the_fix, checked, doctor, fix_command, lines

from tutorial_tools import tour
from tutorial_tools.addresses import StreamAddress, stream_url
from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.processes import ScriptProcess


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
