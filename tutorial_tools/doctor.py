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

import asyncio
import os
import socket
import struct
import sys
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pika
import rstream

from tutorial_tools.addresses import (
    DEFAULT_STREAM_URL,
    DEFAULT_URL,
    StreamAddress,
    management_url_for,
    printable,
)
from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.management import ManagementError
from tutorial_tools.probes import server_properties
from tutorial_tools.url_broker import UrlBroker
from tutorial_tools.waiting import TimedOut, wait_until

TIMEOUT = 5.0  # seconds for a broker that does not answer, as in the chapter scripts
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
# The first frame of a stream client: PeerProperties (key 0x0011, version 1, correlation id 1)
# with no properties. RabbitMQ's stream port answers with PeerPropertiesResponse (0x8011).
STREAM_HELLO = struct.pack(">IHHII", 12, 0x0011, 1, 1, 0)
STREAM_ANSWER = b"\x80\x11"
T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]  # runs a coroutine of rstream's to its end, with TIMEOUT
HOW_TO_START = "start one ('docker compose up -d', or 'make broker' and its export line)"
ENABLE_STREAMS = "'rabbitmq-plugins enable rabbitmq_stream'"
# A stream that has just come back (after a restart) answers these until its log is recovered.
RECOVERING = (rstream.exceptions.StreamNotAvailable, rstream.exceptions.InternalError)


class Stop(Exception):
    """A check failed that the later checks need."""


class NoStreams(Exception):
    """Nothing serves streams where the stream chapters look by default: not a failure."""


@dataclass
class Line:
    status: str  # "ok", "note" or "FAIL"
    text: str

    def __str__(self) -> str:
        return f"{self.status:<5} {self.text}"


def ctl(vhost: str, *args: str) -> str:
    """A rabbitmqctl command line for the virtual host, as a learner would type it."""
    command, *rest = args
    return " ".join(["rabbitmqctl", command, *(["-p", vhost] if vhost != "/" else []), *rest])


def grant_command(vhost: str, user: str) -> str:
    """The rabbitmqctl command that lets the user do everything on the virtual host, quoted."""
    return f'\'rabbitmqctl set_permissions -p {vhost} {user} ".*" ".*" ".*"\''


class Doctor:
    def __init__(
        self,
        url: str,
        management_url: str | None,
        say: Callable[[Line], None],
        stream_url: str | None = None,
    ) -> None:
        self.url, self.where = url, printable(url)
        self.management_url = management_url
        self.say = say
        self.failed = False
        # None: RABBITMQ_STREAM_URL is not set, and the stream scripts use their default.
        self.stream_given = stream_url
        self.stream_url = stream_url or DEFAULT_STREAM_URL

    def ok(self, text: str) -> None:
        self.say(Line("ok", text))

    def note(self, text: str) -> None:
        self.say(Line("note", text))

    def fail(self, text: str) -> None:
        self.failed = True
        self.say(Line("FAIL", text))

    def run(self) -> int:
        try:
            params = self.check_url()
            self.check_listener(params)
            connection = self.check_login(params)
            try:
                self.check_versions(connection)
                self.check_alarms()
                self.check_declarations(connection, params.virtual_host)
            finally:
                if connection.is_open:
                    connection.close()
        except Stop:
            self.note("the remaining AMQP checks need what failed above")
        try:
            self.check_streams()
        except Stop:
            self.note("the remaining stream checks need what failed above")
        except NoStreams:
            pass
        return 1 if self.failed else 0

    # -- the URL, the port, the login ---------------------------------------------------

    def check_url(self) -> pika.URLParameters:
        try:
            parts = urllib.parse.urlsplit(self.url)
            if parts.scheme not in ("amqp", "amqps"):
                raise ValueError("it must start with amqp:// or amqps://")
            if parts.username is not None and parts.password is None:
                raise ValueError("a user needs a password: amqp://USER:PASSWORD@HOST:PORT/VHOST")
            params = pika.URLParameters(self.url)
        except Exception as error:  # pika raises ValueError, TypeError, SyntaxError...
            self.fail(f"RABBITMQ_URL is not a valid AMQP URL ({error}): e.g. {DEFAULT_URL}")
            raise Stop from error
        params.socket_timeout = params.stack_timeout = TIMEOUT
        self.ok(
            f"RABBITMQ_URL is {self.where}: host {params.host}, port {params.port}, "
            f"virtual host {params.virtual_host!r}, user {params.credentials.username!r}"
        )
        return params

    def check_listener(self, params: pika.URLParameters) -> None:
        """Something listens at host:port, and it speaks AMQP (not HTTP, not silence)."""
        address = f"{params.host}:{params.port}"
        try:
            with socket.create_connection((params.host, params.port), timeout=TIMEOUT) as sock:
                if params.ssl_options:
                    self.ok(f"{address} accepts connections (TLS: the login below tells more)")
                    return
                sock.sendall(AMQP_HEADER)
                answer = sock.recv(8)
        except socket.gaierror:
            self.fail(f"the host {params.host!r} is unknown: check RABBITMQ_URL")
            raise Stop from None
        except ConnectionRefusedError:
            self.fail(f"nothing listens on {address}: {HOW_TO_START}, or set RABBITMQ_URL")
            raise Stop from None
        except TimeoutError:
            self.fail(
                f"{address} did not answer the AMQP greeting within {TIMEOUT:g} s: is it "
                "RabbitMQ's AMQP port (usually 5672; the management UI's 15672 is not)?"
            )
            raise Stop from None
        except OSError as error:
            self.fail(f"cannot reach {address}: {error.strerror or error}")
            raise Stop from None
        if answer.startswith(b"HTTP/"):
            self.fail(
                f"{address} is an HTTP server (the management UI?), not AMQP: RabbitMQ's AMQP "
                "port is usually 5672"
            )
            raise Stop
        if not answer:
            self.fail(
                f"{address} hung up on the AMQP greeting: is it RabbitMQ's AMQP port (usually "
                "5672; the management UI's 15672 is not)?"
            )
            raise Stop
        self.ok(f"RabbitMQ answers on {address}")

    def check_login(self, params: pika.URLParameters) -> pika.BlockingConnection:
        user, vhost = params.credentials.username, params.virtual_host
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.ProbableAuthenticationError:
            self.fail(
                f"RabbitMQ refused user {user!r} (ACCESS_REFUSED): a wrong password, or 'guest' "
                "from another host (guest may log in from localhost only); make a user with "
                "'rabbitmqctl add_user NAME PASSWORD' and put it in RABBITMQ_URL"
            )
            raise Stop from None
        except pika.exceptions.ProbableAccessDeniedError:
            grant = grant_command(vhost, user)
            exists = self.vhost_exists(params)
            if exists:
                self.fail(f"user {user!r} has no permissions on virtual host {vhost!r}: {grant}")
            else:
                known = "does not exist" if exists is False else "does not exist, or grants nothing"
                self.fail(
                    f"user {user!r} may not use virtual host {vhost!r}: it {known} (NOT_ALLOWED); "
                    f"make it with 'rabbitmqctl add_vhost {vhost}', then {grant}"
                )
            raise Stop from None
        except pika.exceptions.AMQPError as error:
            self.fail(f"could not open an AMQP connection to {self.where}: {error!r}")
            raise Stop from None
        self.ok(f"user {user!r} logged in to virtual host {vhost!r}")
        return connection

    # -- the broker itself --------------------------------------------------------------

    def check_versions(self, connection: pika.BlockingConnection) -> None:
        properties = server_properties(connection)

        def text(key: str) -> str:
            return properties.get(key, "?")

        version, platform = text("version"), text("platform").replace("Erlang/OTP ", "")
        major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
        if text("product") != "RabbitMQ" or major_minor < (3, 10):
            self.fail(
                f"{text('product')} {version} on Erlang {platform}: the chapters need "
                "RabbitMQ 3.10 or newer"
            )
        else:
            self.ok(f"RabbitMQ {version} on Erlang {platform}")

    def vhost_exists(self, params: pika.URLParameters) -> bool | None:
        """Ask the management API; None when it does not answer (the plugin may be off)."""
        management_url = self.management_url or management_url_for(self.url)
        api = UrlBroker(self.url, management_url=management_url).management
        try:
            vhosts = api.get("vhosts") or []
        except ManagementError:
            return None
        return params.virtual_host in {vhost["name"] for vhost in vhosts}

    def check_alarms(self) -> None:
        """Publish one message that no queue takes: under a resource alarm, RabbitMQ answers
        with connection.blocked and a reason. (The management API's alarm flags lag by up to
        its statistics interval, 5 s.)"""
        reasons = probe_blocked(self.url)
        if not reasons:
            self.ok("no resource alarm: publishers are not blocked")
        fixes = {
            "memory": "free memory, or raise the limit: "
            "'rabbitmqctl set_vm_memory_high_watermark 0.6'",
            "disk": "free disk space (it wants its disk_free_limit free: 50 MB unless "
            "configured), or on a development machine lower the limit: "
            "'rabbitmqctl set_disk_free_limit 10MB'",
        }
        for reason in reasons:
            kind = "memory" if "memory" in reason else "disk" if "disk" in reason else reason
            self.fail(
                f"RabbitMQ is blocking publishers ({reason}): a {kind} alarm is in effect, and "
                f"every publisher waits until it clears; {fixes.get(kind, 'see its log')}"
            )

    def check_declarations(self, connection: pika.BlockingConnection, vhost: str) -> None:
        """Each queue and exchange the chapters declare: absent, the same, or a 406 to come."""
        absent = []
        for chapter in CHAPTERS:
            for name, arguments in chapter.queues:
                if not self.check_queue(connection, vhost, chapter.slug, name, dict(arguments)):
                    absent.append(f"queue {name}")
            for name, kind in chapter.exchanges:
                if not self.check_exchange(connection, vhost, chapter.slug, name, kind):
                    absent.append(f"exchange {name}")
        if absent:
            self.ok(f"not declared yet (the chapter scripts declare them): {', '.join(absent)}")

    def check_queue(
        self, connection: pika.BlockingConnection, vhost: str, slug: str, name: str, args: dict
    ) -> bool:
        """False when the queue does not exist yet."""
        try:
            ready = connection.channel().queue_declare(name, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as closed:
            if closed.reply_code == 404:
                return False
            self.fail(f"queue {name!r} ({slug}): {closed.reply_text}")
            return True
        try:
            # The chapter's own declaration: a no-op if the queue is as the chapter wants it.
            connection.channel().queue_declare(name, durable=True, arguments=args)
        except pika.exceptions.ChannelClosedByBroker as closed:
            self.fail(
                f"queue {name!r} exists with other arguments than {slug} declares "
                f"({closed.reply_text}): delete it with '{ctl(vhost, 'delete_queue', name)}'"
            )
            return True
        if ready:
            self.note(
                f"queue {name!r} ({slug}) holds {ready} message(s) from earlier runs: its "
                f"consumer gets them first; to drop them: '{ctl(vhost, 'purge_queue', name)}'"
            )
        else:
            self.ok(f"queue {name!r} ({slug}) is as the chapter declares it, and empty")
        return True

    def check_exchange(
        self, connection: pika.BlockingConnection, vhost: str, slug: str, name: str, kind: str
    ) -> bool:
        """False when the exchange does not exist yet."""
        try:
            connection.channel().exchange_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            if closed.reply_code == 404:
                return False
            self.fail(f"exchange {name!r} ({slug}): {closed.reply_text}")
            return True
        try:
            connection.channel().exchange_declare(name, exchange_type=kind)
        except pika.exceptions.ChannelClosedByBroker as closed:
            api = f"/api/exchanges/{urllib.parse.quote(vhost, safe='')}/{name}"
            self.fail(
                f"exchange {name!r} exists with other settings than {slug} declares "
                f"({closed.reply_text}): delete it in the management UI, or with "
                f"'curl -u USER:PASSWORD -X DELETE http://HOST:15672{api}'"
            )
            return True
        self.ok(f"exchange {name!r} ({slug}) is a {kind} exchange, as the chapter declares it")
        return True

    # -- streams: chapters 8 and 9 ------------------------------------------------------

    def check_streams(self) -> None:
        address = self.check_stream_url()
        self.check_stream_listener(address.host, address.port)
        loop = asyncio.new_event_loop()  # rstream is asynchronous: one loop for these checks

        def run(call: Awaitable[T]) -> T:
            return loop.run_until_complete(asyncio.wait_for(call, TIMEOUT))

        producer = rstream.Producer(**address.client_args(), connection_name="tutorial-doctor")
        try:
            self.check_stream_login(run, producer, address)
            self.check_advertised(run(producer.default_client).server_properties or {})
            self.check_stream_declarations(run, producer, address.vhost)
        finally:
            try:
                run(producer.close())
            except Exception:
                pass  # a connection the broker refused has nothing left to close
            # What asyncio.run() does at the end: end what rstream left running (after a
            # refused login, older rstream leaves tasks behind), then close the loop.
            loop.run_until_complete(end_tasks(asyncio.all_tasks(loop)))
            loop.close()

    def check_stream_url(self) -> StreamAddress:
        name = "RABBITMQ_STREAM_URL" if self.stream_given else "the stream chapters' default URL"
        try:
            address = StreamAddress.parse(self.stream_url)
        except ValueError as error:
            hint = ""
            if self.stream_url.startswith(("amqp://", "amqps://")):
                hint = " (this is an AMQP URL: streams have a port of their own; 'make broker' "
                hint += "prints both)"
            self.fail(
                f"RABBITMQ_STREAM_URL is not a valid RabbitMQ Stream URL ({error}){hint}: e.g. "
                f"{DEFAULT_STREAM_URL}"
            )
            raise Stop from error
        self.ok(
            f"{name} is {printable(self.stream_url)}: host {address.host}, port {address.port}, "
            f"virtual host {address.vhost!r}, user {address.user!r}"
        )
        return address

    def check_stream_listener(self, host: str, port: int) -> None:
        """RabbitMQ's stream port answers at host:port (not nothing, not AMQP, not HTTP)."""
        address = f"{host}:{port}"
        try:
            answer = stream_greeting(host, port)
        except ConnectionRefusedError:
            if not self.stream_given:
                self.note(
                    f"nothing listens on {address}, where the stream chapters (8 and 9) look "
                    "when RABBITMQ_STREAM_URL is not set; chapters 1 to 7 do not need it. For "
                    "streams: 'docker compose up -d', or 'make broker' and its "
                    "RABBITMQ_STREAM_URL line"
                )
                raise NoStreams from None
            self.fail(
                f"nothing listens on {address}: the broker is down, or runs without the stream "
                f"plugin ({ENABLE_STREAMS}), or RABBITMQ_STREAM_URL names another port (the "
                "one 'make broker' prints)"
            )
            raise Stop from None
        except socket.gaierror:
            self.fail(f"the host {host!r} is unknown: check RABBITMQ_STREAM_URL")
            raise Stop from None
        except TimeoutError:
            self.fail(
                f"{address} did not answer the stream protocol within {TIMEOUT:g} s: is it "
                "RabbitMQ's stream port (usually 5552)?"
            )
            raise Stop from None
        except OSError as error:
            self.fail(f"cannot reach {address}: {error.strerror or error}")
            raise Stop from None
        if answer[4:6] == STREAM_ANSWER:
            self.ok(f"RabbitMQ answers the stream protocol on {address}")
            return
        if answer.startswith(b"AMQP"):
            what = "RabbitMQ's AMQP port (RABBITMQ_URL's), not its stream port"
        elif answer.startswith(b"HTTP/"):
            what = "an HTTP server (the management UI?), not RabbitMQ's stream port"
        elif not answer:
            what = "something that hung up on the stream protocol's first frame"
        else:
            what = "something that does not speak the stream protocol"
        self.fail(f"{address} is {what}: RabbitMQ's stream port is usually 5552")
        raise Stop

    def check_stream_login(
        self, run: Run, producer: rstream.Producer, address: StreamAddress
    ) -> None:
        user, vhost = address.user, address.vhost
        try:
            run(producer.start())
        except (
            rstream.exceptions.AuthenticationFailure,
            rstream.exceptions.SASLAuthenticationFailureLoopback,
        ) as error:
            self.fail(
                f"RabbitMQ refused user {user!r} on the stream port ({error!r}): a wrong "
                "password, or 'guest' from another host (guest may log in from localhost only); "
                "make a user with 'rabbitmqctl add_user NAME PASSWORD' and put it in "
                "RABBITMQ_STREAM_URL"
            )
            raise Stop from None
        except rstream.exceptions.VirtualHostAccessFailure:
            grant = grant_command(vhost, user)
            self.fail(
                f"user {user!r} may not use virtual host {vhost!r} (VirtualHostAccessFailure): it "
                f"does not exist, or grants nothing; make it with 'rabbitmqctl add_vhost "
                f"{vhost}', then {grant}"
            )
            raise Stop from None
        except Exception as error:  # asyncio's TimeoutError among them
            self.fail(f"could not log in on the stream port: {error!r}")
            raise Stop from None
        self.ok(f"user {user!r} logged in to virtual host {vhost!r} over the stream protocol")

    def check_advertised(self, properties: dict[str, str]) -> None:
        """A stream client connects next to the host and port the broker advertises (its
        connection properties say which)."""
        host = properties.get("advertised_host", "?")
        port = properties.get("advertised_port", "?")
        advertises = (
            f"RabbitMQ advertises {host}:{port} for its streams, where stream clients connect next"
        )
        fix = (
            "the broker must advertise an address this machine reaches: "
            "'stream.advertised_host = localhost' (and 'stream.advertised_port' for a published "
            "container port) in rabbitmq.conf, as docker-compose.yml does through "
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"
        )
        try:
            answer = stream_greeting(host, int(port))
        except socket.gaierror as error:
            self.fail(f"{advertises}, and this machine cannot resolve {host!r} ({error!r}): {fix}")
            raise Stop from None
        except (OSError, ValueError) as error:
            self.fail(f"{advertises}, and it does not answer from here ({error!r}): {fix}")
            raise Stop from None
        if answer[4:6] != STREAM_ANSWER:
            self.fail(f"{advertises}, and what answers there is not its stream port: {fix}")
            raise Stop
        self.ok(f"RabbitMQ advertises {host}:{port} for its streams, and it answers from here")

    def check_stream_declarations(self, run: Run, producer: rstream.Producer, vhost: str) -> None:
        """Each stream the chapters declare: absent, the same, or a PreconditionFailed to come."""
        absent = []
        for chapter in CHAPTERS:
            for name, arguments in chapter.streams:
                if not self.check_stream(run, producer, vhost, chapter.slug, name, dict(arguments)):
                    absent.append(f"stream {name}")
        if absent:
            self.ok(f"not declared yet (the stream scripts declare them): {', '.join(absent)}")

    def check_stream(
        self, run: Run, producer: rstream.Producer, vhost: str, slug: str, name: str, args: dict
    ) -> bool:
        """False when the stream does not exist yet."""
        try:
            if not recovered(lambda: run(producer.stream_exists(name))):
                return False
            # The chapter's own declaration: a no-op if the stream is as the chapter wants it.
            recovered(lambda: run(producer.create_stream(name, args, exists_ok=True)))
        except rstream.exceptions.PreconditionFailed:
            declared = ", ".join(f"{key} {value}" for key, value in args.items())
            self.fail(
                f"stream {name!r} exists with other arguments than {slug} declares ({declared}; "
                f"PreconditionFailed): delete it with '{ctl(vhost, 'delete_queue', name)}'"
            )
        except Exception as error:  # still recovering after TIMEOUT, or no answer
            self.fail(f"stream {name!r} ({slug}) does not answer as a stream should: {error!r}")
        else:
            self.ok(f"stream {name!r} ({slug}) is as the chapter declares it")
        return True


async def end_tasks(tasks: set[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def stream_greeting(host: str, port: int) -> bytes:
    """Send a stream client's first frame to host:port; the first bytes of the answer."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(STREAM_HELLO)
        return sock.recv(8)


def recovered(attempt: Callable[[], T]) -> T:
    """``attempt()``, made again while a stream is still recovering (for a moment after a
    restart it answers StreamNotAvailable or InternalError), for at most TIMEOUT seconds."""
    outcome: list = []

    def once() -> bool:
        try:
            outcome[:] = [attempt(), None]
        except RECOVERING as error:
            outcome[:] = [None, error]
        return outcome[1] is None

    try:
        wait_until(once, TIMEOUT, "the stream to recover")
    except TimedOut:
        raise outcome[1] from None
    return outcome[0]


def probe_blocked(url: str) -> list[str]:
    """Without the management API: publish one message that no queue takes, and see whether the
    broker answers with connection.blocked. The reasons it gives ('low on memory', ...)."""
    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = TIMEOUT
    params.blocked_connection_timeout = 1.0
    reasons: list[str] = []
    connection = pika.BlockingConnection(params)
    connection.add_on_connection_blocked_callback(
        lambda _connection, frame: reasons.append(frame.method.reason)
    )
    try:
        connection.channel().basic_publish("", "tutorial-doctor-probe-routes-nowhere", b"")
        connection.process_data_events(time_limit=1.0)
        connection.close()
    except pika.exceptions.AMQPError:
        pass  # a blocked connection cannot close cleanly; the reasons are what matters
    return reasons


def main() -> int:
    url = os.environ.get("RABBITMQ_URL") or DEFAULT_URL
    print(f"make doctor: the broker at {printable(url)}", flush=True)
    doctor = Doctor(
        url,
        os.environ.get("RABBITMQ_MANAGEMENT_URL"),
        lambda line: print(line, flush=True),
        os.environ.get("RABBITMQ_STREAM_URL") or None,
    )
    try:
        code = doctor.run()
    except KeyboardInterrupt:
        return 130
    print("All checks passed." if code == 0 else "Some checks failed: see FAIL above.")
    return code


if __name__ == "__main__":
    sys.exit(main())
