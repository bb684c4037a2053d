"""make doctor's stream half: what stands between the stream chapter scripts (8 and 9) and the
broker's stream port, at RABBITMQ_STREAM_URL or the stream scripts' default.

The URL; that RabbitMQ answers there in the stream protocol; the login and the virtual host; that
the address the broker advertises for its streams is reachable from here; the chapters' streams.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

import rstream

from tutorial_tools.addresses import DEFAULT_STREAM_URL, StreamAddress, printable
from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.doctor_report import (
    TIMEOUT,
    NoStreams,
    Report,
    Stop,
    ctl,
    grant_command,
    listener_answer,
)
from tutorial_tools.probes import greeting
from tutorial_tools.waiting import TimedOut, wait_until

# The first frame of a stream client: PeerProperties (key 0x0011, version 1, correlation id 1)
# with no properties. RabbitMQ's stream port answers with PeerPropertiesResponse (0x8011).
STREAM_HELLO = struct.pack(">IHHII", 12, 0x0011, 1, 1, 0)
STREAM_ANSWER = b"\x80\x11"
T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]  # runs a coroutine of rstream's to its end, with TIMEOUT
ENABLE_STREAMS = "'rabbitmq-plugins enable rabbitmq_stream'"
# A stream that has just come back (after a restart) answers these until its log is recovered.
RECOVERING = (rstream.exceptions.StreamNotAvailable, rstream.exceptions.InternalError)


class StreamChecks:
    """The broker's stream port, over the stream protocol (rstream, as the stream scripts)."""

    def __init__(self, report: Report, stream_url: str | None) -> None:
        self.report = report
        # None: RABBITMQ_STREAM_URL is not set, and the stream scripts use their default.
        self.given = stream_url
        self.url = stream_url or DEFAULT_STREAM_URL

    def run(self) -> None:
        """Every check in turn; Stop where one fails that the later ones need, NoStreams where
        nothing serves streams and none were asked for."""
        address = self.check_url()
        self.check_listener(address.host, address.port)
        loop = asyncio.new_event_loop()  # rstream is asynchronous: one loop for these checks

        def run(call: Awaitable[T]) -> T:
            return loop.run_until_complete(asyncio.wait_for(call, TIMEOUT))

        producer = rstream.Producer(**address.client_args(), connection_name="tutorial-doctor")
        try:
            self.check_login(run, producer, address)
            self.check_advertised(run(producer.default_client).server_properties or {})
            self.check_declarations(run, producer, address.vhost)
        finally:
            try:
                run(producer.close())
            except Exception:
                pass  # a connection the broker refused has nothing left to close
            # What asyncio.run() does at the end: end what rstream left running (after a
            # refused login, older rstream leaves tasks behind), then close the loop.
            loop.run_until_complete(end_tasks(asyncio.all_tasks(loop)))
            loop.close()

    def check_url(self) -> StreamAddress:
        name = "RABBITMQ_STREAM_URL" if self.given else "the stream chapters' default URL"
        try:
            address = StreamAddress.parse(self.url)
        except ValueError as error:
            hint = ""
            if self.url.startswith(("amqp://", "amqps://")):
                hint = " (this is an AMQP URL: streams have a port of their own; 'make broker' "
                hint += "prints both)"
            self.report.fail(
                f"RABBITMQ_STREAM_URL is not a valid RabbitMQ Stream URL ({error}){hint}: e.g. "
                f"{DEFAULT_STREAM_URL}"
            )
            raise Stop from error
        self.report.ok(
            f"{name} is {printable(self.url)}: host {address.host}, port {address.port}, "
            f"virtual host {address.vhost!r}, user {address.user!r}"
        )
        return address

    def check_listener(self, host: str, port: int) -> None:
        """RabbitMQ's stream port answers at host:port (not nothing, not AMQP, not HTTP)."""
        address = f"{host}:{port}"
        try:
            answer = listener_answer(
                self.report,
                host,
                port,
                STREAM_HELLO,
                variable="RABBITMQ_STREAM_URL",
                silent="the stream protocol",
                ask="is it RabbitMQ's stream port (usually 5552)?",
            )
        except ConnectionRefusedError:
            if not self.given:
                self.report.note(
                    f"nothing listens on {address}, where the stream chapters (8 and 9) look "
                    "when RABBITMQ_STREAM_URL is not set; chapters 1 to 7 do not need it. For "
                    "streams: 'docker compose up -d', or 'make broker' and its "
                    "RABBITMQ_STREAM_URL line"
                )
                raise NoStreams from None
            self.report.fail(
                f"nothing listens on {address}: the broker is down, or runs without the stream "
                f"plugin ({ENABLE_STREAMS}), or RABBITMQ_STREAM_URL names another port (the "
                "one 'make broker' prints)"
            )
            raise Stop from None
        if answer[4:6] == STREAM_ANSWER:
            self.report.ok(f"RabbitMQ answers the stream protocol on {address}")
            return
        if answer.startswith(b"AMQP"):
            what = "RabbitMQ's AMQP port (RABBITMQ_URL's), not its stream port"
        elif answer.startswith(b"HTTP/"):
            what = "an HTTP server (the management UI?), not RabbitMQ's stream port"
        elif not answer:
            what = "something that hung up on the stream protocol's first frame"
        else:
            what = "something that does not speak the stream protocol"
        self.report.fail(f"{address} is {what}: RabbitMQ's stream port is usually 5552")
        raise Stop

    def check_login(self, run: Run, producer: rstream.Producer, address: StreamAddress) -> None:
        user, vhost = address.user, address.vhost
        try:
            run(producer.start())
        except (
            rstream.exceptions.AuthenticationFailure,
            rstream.exceptions.SASLAuthenticationFailureLoopback,
        ) as error:
            self.report.fail(
                f"RabbitMQ refused user {user!r} on the stream port ({error!r}): a wrong "
                "password, or 'guest' from another host (guest may log in from localhost only); "
                "make a user with 'rabbitmqctl add_user NAME PASSWORD' and put it in "
                "RABBITMQ_STREAM_URL"
            )
            raise Stop from None
        except rstream.exceptions.VirtualHostAccessFailure:
            grant = grant_command(vhost, user)
            self.report.fail(
                f"user {user!r} may not use virtual host {vhost!r} (VirtualHostAccessFailure): it "
                f"does not exist, or grants nothing; make it with 'rabbitmqctl add_vhost "
                f"{vhost}', then {grant}"
            )
            raise Stop from None
        except Exception as error:  # asyncio's TimeoutError among them
            self.report.fail(f"could not log in on the stream port: {error!r}")
            raise Stop from None
        self.report.ok(
            f"user {user!r} logged in to virtual host {vhost!r} over the stream protocol"
        )

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
            answer = greeting(host, int(port), STREAM_HELLO, TIMEOUT)
        except socket.gaierror as error:
            self.report.fail(
                f"{advertises}, and this machine cannot resolve {host!r} ({error!r}): {fix}"
            )
            raise Stop from None
        except (OSError, ValueError) as error:
            self.report.fail(f"{advertises}, and it does not answer from here ({error!r}): {fix}")
            raise Stop from None
        if answer[4:6] != STREAM_ANSWER:
            self.report.fail(f"{advertises}, and what answers there is not its stream port: {fix}")
            raise Stop
        self.report.ok(
            f"RabbitMQ advertises {host}:{port} for its streams, and it answers from here"
        )

    def check_declarations(self, run: Run, producer: rstream.Producer, vhost: str) -> None:
        """Each stream the chapters declare: absent, the same, or a PreconditionFailed to come."""
        absent = []
        for chapter in CHAPTERS:
            for name, arguments in chapter.streams:
                if not self.check_stream(run, producer, vhost, chapter.slug, name, dict(arguments)):
                    absent.append(f"stream {name}")
        if absent:
            self.report.ok(
                f"not declared yet (the stream scripts declare them): {', '.join(absent)}"
            )

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
            self.report.fail(
                f"stream {name!r} exists with other arguments than {slug} declares ({declared}; "
                f"PreconditionFailed): delete it with '{ctl(vhost, 'delete_queue', name)}'"
            )
        except Exception as error:  # still recovering after TIMEOUT, or no answer
            self.report.fail(
                f"stream {name!r} ({slug}) does not answer as a stream should: {error!r}"
            )
        else:
            self.report.ok(f"stream {name!r} ({slug}) is as the chapter declares it")
        return True


async def end_tasks(tasks: set[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
