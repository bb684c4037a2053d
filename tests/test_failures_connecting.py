"""Every script fails well (issue 4), part 1: when RabbitMQ cannot be reached or says no.

Whatever goes wrong before the first message, a script prints one line that says what it tried
(the password masked), why it failed and what to do, and exits non-zero, never a traceback.
All of this lives in the block at the bottom of every chapter script, which must stay the same
everywhere: the last test checks that.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import re
import socket
import time
import urllib.parse

import pytest

from tutorial_tools.broker import amqp_url
from tutorial_tools.processes import ROOT, ScriptError, ScriptProcess, run_script

# Distinctive, so that finding it anywhere in the output means the password leaked.
PASSWORD = "s3cret-pw"

# Every sending and receiving script of the six chapters, with the arguments it needs.
CHAPTER_SCRIPTS = {
    "hello_world/send.py": (),
    "hello_world/receive.py": (),
    "work_queues/new_task.py": (),
    "work_queues/worker.py": (),
    "publish_subscribe/emit_log.py": (),
    "publish_subscribe/receive_logs.py": (),
    "routing/emit_log_direct.py": (),
    "routing/receive_logs_direct.py": ("info",),
    "topics/emit_log_topic.py": (),
    "topics/receive_logs_topic.py": ("#",),
    "rpc/rpc_client.py": (),
    "rpc/rpc_server.py": (),
}

# Where the scripts are sent when no broker is there. Only loopback addresses and a name that
# cannot resolve (.invalid is reserved for that): these tests never knock on another machine.
# Refused and unresolvable fail at once; where no AMQP answer comes (a port that accepts and
# stays silent, the management UI's HTTP port) a script gives up after its 5 s timeout.
FAST = ("nothing listening", "unknown host")
SLOW = ("no answer", "wrong port")
SLOW_SCRIPTS = ("hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py")
ROWS = [(script, target) for target in FAST for script in CHAPTER_SCRIPTS] + [
    (script, target) for target in SLOW for script in SLOW_SCRIPTS
]
HINT = "Start one with 'docker compose up -d' or 'make broker', or set RABBITMQ_URL."
CONNECT_TIME_LIMIT = 10.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def attempt(script: str, host: str, port: int) -> tuple[ScriptProcess, float]:
    """Run ``script`` against host:port; the finished process and the seconds it took."""
    started = time.monotonic()
    proc = ScriptProcess(
        script, CHAPTER_SCRIPTS[script], url=amqp_url(host, port, "/", password=PASSWORD)
    )
    try:
        proc.wait(timeout=2 * CONNECT_TIME_LIMIT)
    except ScriptError:
        pass  # still running: its row fails on the time limit
    seconds = time.monotonic() - started
    proc.stop()
    return proc, seconds


@dataclasses.dataclass
class Attempts:
    addresses: dict[str, tuple[str, int]]
    runs: dict[tuple[str, str], tuple[ScriptProcess, float]]  # (script, target): (it, seconds)


@pytest.fixture(scope="module")
def unreachable(broker) -> Attempts:
    """Every row of ROWS, run side by side: the 5 s timeouts are paid once, not once per row.

    The quick rows go first, so that starting many Pythons at once does not eat into the time
    of the rows that are timed against the scripts' own timeout.
    """
    with socket.socket() as refusing, socket.socket() as silent:
        refusing.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts connections that nobody ever answers
        addresses = {
            "nothing listening": ("127.0.0.1", refusing.getsockname()[1]),
            "unknown host": ("nonexistent.invalid", 5672),
            "no answer": ("127.0.0.1", silent.getsockname()[1]),
        }
        # The management UI's port: an HTTP server, the classic wrong port for a learner.
        management = urllib.parse.urlsplit(broker.management_url or "")
        if management.hostname and is_loopback(management.hostname):
            addresses["wrong port"] = (management.hostname, management.port)
        runs = {}
        for targets in (FAST, SLOW):
            rows = [row for row in ROWS if row[1] in targets and row[1] in addresses]
            with concurrent.futures.ThreadPoolExecutor(len(rows)) as pool:
                futures = {row: pool.submit(attempt, row[0], *addresses[row[1]]) for row in rows}
            runs.update({row: future.result() for row, future in futures.items()})
    return Attempts(addresses, runs)


@pytest.mark.parametrize("script, target", ROWS, ids=[f"{s}-{t}" for s, t in ROWS])
def test_no_broker_is_one_line_with_the_address_masked_and_a_hint(unreachable, script, target):
    if target not in unreachable.addresses:
        pytest.skip("this broker has no management port on a loopback address")
    host, port = unreachable.addresses[target]
    proc, seconds = unreachable.runs[script, target]
    assert seconds < CONNECT_TIME_LIMIT
    assert proc.process.returncode == 1
    assert proc.stdout == []
    [line] = proc.stderr
    assert line.startswith(f"Could not connect to RabbitMQ at amqp://guest:****@{host}:{port}/")
    assert line.endswith(HINT)
    assert PASSWORD not in proc.output
    assert "Traceback" not in proc.output


@pytest.mark.parametrize(
    "script", ["hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py"]
)
def test_a_wrong_password_is_access_refused_in_one_line(broker, sandbox, script):
    url = amqp_url(broker.host, broker.amqp_port, sandbox.vhost, password=PASSWORD)
    proc = run_script(script, url=url)
    assert proc.process.returncode == 1
    assert proc.stdout == []
    [line] = proc.stderr
    assert line.startswith("ACCESS_REFUSED: login refused for user 'guest'")
    assert "guest:****@" in line
    assert PASSWORD not in proc.output


@pytest.mark.parametrize(
    "script", ["hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py"]
)
def test_a_virtual_host_that_does_not_exist_is_not_allowed_in_one_line(broker, script):
    proc = run_script(script, url=broker.url_for("no-such-vhost"))
    assert proc.process.returncode == 1
    assert proc.stdout == []
    assert proc.stderr == [
        "NOT_ALLOWED: user 'guest' may not use virtual host 'no-such-vhost' at "
        f"amqp://guest:****@{broker.host}:{broker.amqp_port}/no-such-vhost"
    ]


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://x", "it must start with amqp:// or amqps://"),
        ("garbage", "it must start with amqp:// or amqps://"),
        ("amqp://guest:guest@localhost:notaport/", "'notaport'"),
        (f"amqp://guest:{PASSWORD}@[::1/", "Invalid IPv6 URL"),
        ("amqp://guest@localhost/", "a user needs a password"),
        ("amqp://localhost/?heartbeat=soon", "Invalid heartbeat value 'soon'"),
        ("amqp://localhost/?ssl_options={", "'{' was never closed"),
    ],
)
@pytest.mark.parametrize("script", ["hello_world/send.py", "hello_world/receive.py"])
def test_an_invalid_rabbitmq_url_is_one_line(script, url, why):
    proc = run_script(script, url=url)
    assert proc.process.returncode == 1
    assert proc.stdout == []
    [line] = proc.stderr
    assert line.startswith("RABBITMQ_URL is not a valid AMQP URL: ")
    assert why in line
    assert PASSWORD not in proc.output


# A queue declared earlier with other arguments (here: a classic queue from an older version
# of the tutorial) makes the broker refuse the chapter's quorum declaration.
OLD_QUEUES = [
    ("work_queues/new_task.py", "task_queue"),
    ("work_queues/worker.py", "task_queue"),
    ("hello_world/send.py", "hello"),
    ("hello_world/receive.py", "hello"),
    ("rpc/rpc_server.py", "rpc_queue"),
]


def declare_classic_queue(sandbox, queue: str) -> None:
    with sandbox.connection() as connection:
        connection.channel().queue_declare(
            queue, durable=True, arguments={"x-queue-type": "classic"}
        )


@pytest.mark.parametrize("script, queue", OLD_QUEUES)
def test_a_queue_with_other_arguments_is_named_with_how_to_reset_it(sandbox, script, queue):
    declare_classic_queue(sandbox, queue)
    proc = sandbox.run(script)
    assert proc.process.returncode == 1
    assert proc.stdout == []
    [line] = proc.stderr
    assert line.startswith(" [!] PRECONDITION_FAILED - inequivalent arg 'x-queue-type' ")
    assert f"for queue '{queue}' in vhost '{sandbox.vhost}'" in line
    assert line.endswith(
        f"To reset it, delete it with 'rabbitmqctl delete_queue {queue}' "
        f"(in vhost '{sandbox.vhost}': add -p {sandbox.vhost})"
    )


def test_following_the_reset_hint_lets_the_script_run(sandbox):
    if sandbox.broker.source == "url":
        pytest.skip("rabbitmqctl cannot reach the broker named by RABBITMQ_URL")
    declare_classic_queue(sandbox, "task_queue")
    [line] = sandbox.run("work_queues/new_task.py").stderr
    command = re.search(r"'rabbitmqctl (.*?)'.*add (-p \S+)\)$", line)
    assert command, line
    sandbox.rabbitmqctl(*command[1].split(), *command[2].split())
    proc = sandbox.run("work_queues/new_task.py", "Again.")
    assert (proc.process.returncode, proc.stdout) == (0, [" [x] Sent Again."])
    assert sandbox.message_count("task_queue") == 1


MARKER = "# --- Connection and error handling: identical in every script of this project. ---"


def bottom_block(path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.find(MARKER)
    end = text.find('if __name__ == "__main__":', max(start, 0))
    assert 0 <= start < end, f"{path.relative_to(ROOT)} has no bottom block"
    return text[start:end]


def test_the_connection_block_is_the_same_in_every_chapter_script():
    scripts = sorted(
        path
        for path in ROOT.glob("*/*.py")
        if path.parent.name not in ("tests", "tutorial_tools")
        and not path.parent.name.startswith(".")
    )
    assert {path.relative_to(ROOT).as_posix() for path in scripts} >= set(CHAPTER_SCRIPTS)
    blocks = {path.relative_to(ROOT).as_posix(): bottom_block(path) for path in scripts}
    reference = blocks["hello_world/send.py"]
    assert [name for name, block in blocks.items() if block != reference] == []
