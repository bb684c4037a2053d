"""The stream scripts fail as the others do: one line on stderr and exit status 1 when RabbitMQ
is not there, speaks no stream protocol there, says no, or ends the subscription; Ctrl+C and
SIGTERM end a waiting receiver with ' [*] Interrupted' and exit status 0.

All of it lives in the tail that the four stream scripts share: the last test checks that it
is the same in each, as tests/test_failures_connecting.py does for the pika scripts' tail.
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import time

import common_tail
import pytest
import stream_broker
from dead_ends import dead_ends

from tutorial_tools.addresses import StreamAddress, stream_url
from tutorial_tools.chapters import STREAM_SCRIPTS, WAITING_STREAM, chapter
from tutorial_tools.processes import ScriptError, ScriptProcess

pytestmark = pytest.mark.usefixtures("streams")

PASSWORD = "s3cret-pw"  # distinctive: found anywhere in the output, it leaked
HINT = " (run 'make doctor' to diagnose)"
SCRIPTS = tuple(STREAM_SCRIPTS)  # the four, from tutorial_tools/chapters.py
RECEIVERS = {  # each receiver, and the line it prints once it waits
    "stream_hello_world/receive.py": WAITING_STREAM,
    "stream_offset_tracking/offset_tracking_receive.py": r"^Offset not previously stored\.$",
}

# Where the scripts are sent when no stream broker is there, and what each says. Loopback
# addresses only, and a name that cannot resolve. Refused (a broker that is down, or that runs
# no stream plugin) and unresolvable fail at once; where something accepts the connection and
# no stream protocol answers (a silent port, or RabbitMQ's AMQP port given by mistake), rstream
# gives up after its request timeout of 10 s.
TARGETS = {
    "nothing listening": (r"ConnectionRefusedError\(.*\)", 8.0),
    "unknown host": (r"gaierror\(.*\)", 8.0),
    "no answer": (r"TimeoutError\(\)", 15.0),
    "the AMQP port": (r"TimeoutError\(\)", 15.0),
}


def stream_of(script: str) -> str:
    """The stream that the script's chapter declares (tutorial_tools/chapters.py)."""
    [(name, _)] = chapter(script.split("/")[0]).streams
    return name


def one_line(proc: ScriptProcess, reason: str, where: str = r"\S+") -> None:
    """It printed nothing but one line on stderr, naming the reason and where it looked (a
    regular expression; by default any address); it leaked no password."""
    assert proc.process.returncode == 1
    assert proc.stdout == []
    [line] = proc.stderr
    assert re.fullmatch(rf" \[!\] {reason} at {where}{re.escape(HINT)}", line), line
    assert PASSWORD not in proc.output


def attempt(script: str, url: str) -> tuple[ScriptProcess, float]:
    started = time.monotonic()
    proc = ScriptProcess(script, stream_url=url)
    try:
        proc.wait(timeout=30)
    except ScriptError:
        pass  # still running: its row fails on the time limit
    seconds = time.monotonic() - started
    proc.stop()
    return proc, seconds


@pytest.fixture(scope="module")
def unreachable(broker) -> dict[tuple[str, str], tuple[ScriptProcess, float, str]]:
    """Every script against every target, side by side: the 10 s waits are paid once. Each
    row: the finished script, the seconds it took, and where it was sent (host:port/vhost)."""
    with dead_ends() as port:
        hosts = {
            "nothing listening": ("127.0.0.1", port["refused"]),
            "unknown host": ("nonexistent.invalid", 5552),
            "no answer": ("127.0.0.1", port["silent"]),
            "the AMQP port": (broker.host, broker.amqp_port),
        }
        rows = [(script, target) for target in TARGETS for script in SCRIPTS]
        # A few at a time: dozens of Pythons starting at once on two cores would spend
        # seconds of each row's time starting.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = {
                (script, target): pool.submit(
                    attempt, script, stream_url(*hosts[target], password=PASSWORD)
                )
                for script, target in rows
            }
        return {
            (script, target): (*future.result(), "{}:{}/%2F".format(*hosts[target]))
            for (script, target), future in futures.items()
        }


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_no_stream_broker_there_is_one_line_in_a_few_seconds(unreachable, script, target):
    proc, seconds, where = unreachable[script, target]
    reason, limit = TARGETS[target]
    one_line(proc, reason, where=re.escape(where))  # it says where it looked
    assert seconds < limit


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_wrong_password_is_refused_in_one_line(sandbox, script):
    where = StreamAddress.parse(sandbox.stream_url)
    url = stream_url(where.host, where.port, where.vhost, where.user, PASSWORD)
    one_line(sandbox.run(script, stream_url=url), r"AuthenticationFailure\(\)")


@pytest.mark.parametrize("script", SCRIPTS[:2])
def test_a_virtual_host_that_does_not_exist_is_refused_in_one_line(broker, script):
    proc = ScriptProcess(script, stream_url=broker.stream_url_for("no-such-vhost"))
    proc.wait()
    one_line(proc, r"VirtualHostAccessFailure\(\)")


@pytest.mark.parametrize(
    "url, reason",
    [
        (
            "amqp://guest:guest@localhost:5672/%2F",  # RABBITMQ_URL's value, pasted by mistake
            r"ValueError\('RABBITMQ_STREAM_URL must start with rabbitmq-stream://'\)",
        ),
        ("garbage", r"ValueError\('RABBITMQ_STREAM_URL must start with rabbitmq-stream://'\)"),
        ("rabbitmq-stream://localhost:notaport/", r"ValueError\(.*'notaport'.*\)"),
        (f"rabbitmq-stream://guest:{PASSWORD}@[::1/", r"ValueError\('Invalid IPv6 URL'\)"),
    ],
    ids=["an AMQP URL", "garbage", "a port that is no number", "a broken IPv6 address"],
)
def test_an_invalid_stream_url_is_one_line(url, reason):
    proc = ScriptProcess("stream_hello_world/send.py", stream_url=url)
    proc.wait()
    one_line(proc, reason)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_stream_declared_with_other_arguments_is_refused_in_one_line(sandbox, script):
    stream = stream_of(script)
    stream_broker.create(sandbox.stream_url, stream, {"max-length-bytes": 1_000_000})

    one_line(sandbox.run(script), r"PreconditionFailed\(\)")
    # RabbitMQ changed nothing: the stream keeps the retention it was created with.
    found = sandbox.broker.management.get("queues", sandbox.vhost, stream)
    assert found["arguments"]["x-max-length-bytes"] == 1_000_000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "SIGTERM"])
@pytest.mark.parametrize("script", RECEIVERS)
def test_a_waiting_receiver_stops_with_one_line_and_exit_0(sandbox, script, signum):
    proc = sandbox.start(script, ready=RECEIVERS[script])
    assert proc.send(signum) == 0
    assert proc.stdout[-1] == " [*] Interrupted"
    assert proc.matching("Interrupted") == [" [*] Interrupted"]
    assert proc.stderr == []


def start_consuming(sandbox, script: str) -> ScriptProcess:
    """Start a receiver and see it read a message: then it has subscribed."""
    proc = sandbox.start(script, ready=RECEIVERS[script])
    stream = stream_of(script)
    stream_broker.append(sandbox.stream_url, stream, [b"hello: subscribed?"])
    proc.wait_for(r"^(Got message: |First message received)")
    return proc


@pytest.mark.parametrize("script", RECEIVERS)
def test_a_receiver_whose_stream_is_deleted_says_so_in_one_line(sandbox, script):
    proc = start_consuming(sandbox, script)
    stream = stream_of(script)
    sandbox.broker.management.delete("queues", sandbox.vhost, stream)

    assert proc.wait(timeout=15) == 1
    # Metadata Update: what changed is where the stream lives, here: nowhere.
    assert proc.stderr == [f" [!] Subscription ended: Metadata Update{HINT}"]


def test_every_stream_script_ends_with_the_same_tail_of_at_most_15_lines():
    tails = common_tail.tails("from rstream import", "# the same in every stream script: ")
    assert sorted(tails) == sorted(SCRIPTS)
    assert common_tail.differing(tails, "stream_hello_world/send.py") == []
