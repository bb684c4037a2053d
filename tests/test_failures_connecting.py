"""Every script fails well, part 1: when RabbitMQ cannot be reached or says no.

Whatever goes wrong before the first message, a script prints one line on stderr that carries
pika's reason and points to `make doctor` (whose tests check the wording of the diagnosis), and
exits 1: never a traceback, never the password. All of this lives in the common tail of every
chapter script, at most 15 lines, the same everywhere: the last test checks that.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import time
import urllib.parse

import common_tail
import pytest
from dead_ends import dead_ends

from tutorial_tools.addresses import amqp_url
from tutorial_tools.chapters import SCRIPTS
from tutorial_tools.processes import ScriptError, ScriptProcess, run_script

# Distinctive, so that finding it anywhere in the output means the password leaked.
PASSWORD = "s3cret-pw"


# Where the scripts are sent when no broker is there. Only loopback addresses and a name that
# cannot resolve (.invalid is reserved for that): these tests never knock on another machine.
# Refused and unresolvable fail at once; where no AMQP answer comes (a port that accepts and
# stays silent, the management UI's HTTP port) a script gives up after its 5 s timeout.
FAST = ("nothing listening", "unknown host")
SLOW = ("no answer", "wrong port")
SLOW_SCRIPTS = ("hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py")
ROWS = [(script, target) for target in FAST for script in SCRIPTS] + [
    (script, target) for target in SLOW for script in SLOW_SCRIPTS
]
HINT = "(run 'make doctor' to diagnose)"
# A deadline below pika's own default (15 s), so that a script that waited it fails, with room
# for a loaded machine to start the scripts.
CONNECT_TIME_LIMIT = 12.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def attempt(script: str, host: str, port: int) -> tuple[ScriptProcess, float]:
    """Run ``script`` against host:port; the finished process and the seconds it took."""
    started = time.monotonic()
    proc = ScriptProcess(
        script, SCRIPTS[script].args, url=amqp_url(host, port, "/", password=PASSWORD)
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
    with dead_ends() as port:
        addresses = {
            "nothing listening": ("127.0.0.1", port["refused"]),
            "unknown host": ("nonexistent.invalid", 5672),
            "no answer": ("127.0.0.1", port["silent"]),
        }
        # The management UI's port: an HTTP server, the classic wrong port for a learner.
        management = urllib.parse.urlsplit(broker.management_url or "")
        if management.hostname and is_loopback(management.hostname):
            addresses["wrong port"] = (management.hostname, management.port)
        runs = {}
        for targets in (FAST, SLOW):
            rows = [row for row in ROWS if row[1] in targets and row[1] in addresses]
            # A few at a time: dozens of Pythons starting at once on two cores would spend
            # seconds of each row's time starting.
            with concurrent.futures.ThreadPoolExecutor(min(len(rows), 8)) as pool:
                futures = {row: pool.submit(attempt, row[0], *addresses[row[1]]) for row in rows}
            runs.update({row: future.result() for row, future in futures.items()})
    return Attempts(addresses, runs)


@pytest.mark.parametrize("script, target", ROWS, ids=[f"{s}-{t}" for s, t in ROWS])
def test_no_broker_is_one_line_within_the_scripts_timeout(unreachable, script, target):
    if target not in unreachable.addresses:
        pytest.skip("this broker has no management port on a loopback address")
    proc, seconds = unreachable.runs[script, target]
    assert seconds < CONNECT_TIME_LIMIT  # a deadline: a script must not wait pika's 15 s
    # The line says where the script looked: which broker refused, or never answered.
    host, port = unreachable.addresses[target]
    assert_one_line(proc, f" at {host}:{port}/%2F ")


def assert_one_line(proc: ScriptProcess, *reasons: str) -> str:
    """Exit 1, nothing on stdout, one line on stderr that says where the script looked, with
    the hint: the tail's promise."""
    assert proc.process.returncode == 1, proc.output
    assert proc.stdout == []
    [line] = proc.stderr
    assert line.startswith(" [!] ") and line.endswith(HINT), line
    assert " at " in line, line
    for reason in reasons:
        assert reason in line
    assert PASSWORD not in proc.output
    return line


@pytest.mark.parametrize(
    "script", ["hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py"]
)
def test_a_wrong_password_is_access_refused_in_one_line(broker, sandbox, script):
    url = amqp_url(broker.host, broker.amqp_port, sandbox.vhost, password=PASSWORD)
    assert_one_line(run_script(script, url=url), "ACCESS_REFUSED")


@pytest.mark.parametrize(
    "script", ["hello_world/send.py", "hello_world/receive.py", "rpc/rpc_client.py"]
)
def test_a_virtual_host_that_does_not_exist_is_not_allowed_in_one_line(broker, script):
    assert_one_line(run_script(script, url=broker.url_for("no-such-vhost")), "NOT_ALLOWED")


@pytest.mark.parametrize(
    "url",
    [
        "http://nonexistent.invalid",
        "garbage",
        "amqp://guest:guest@localhost:notaport/",
        f"amqp://guest:{PASSWORD}@[::1/",
        "amqp://guest@localhost/",
        "amqp://localhost/?heartbeat=soon",
        "amqp://localhost/?ssl_options={",
    ],
)
@pytest.mark.parametrize("script", ["hello_world/send.py", "hello_world/receive.py"])
def test_an_invalid_rabbitmq_url_is_one_line(script, url):
    assert_one_line(run_script(script, url=url))


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
def test_a_queue_with_other_arguments_is_one_line_naming_it(sandbox, script, queue):
    declare_classic_queue(sandbox, queue)
    assert_one_line(sandbox.run(script), "PRECONDITION_FAILED", f"for queue '{queue}'")


def test_every_pika_chapter_script_ends_with_the_same_tail_of_at_most_15_lines():
    tails = common_tail.tails("import pika", "# the same in every chapter script: ")
    assert set(tails) >= set(SCRIPTS)
    assert common_tail.differing(tails, "hello_world/send.py") == []
