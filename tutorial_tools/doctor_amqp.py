"""make doctor's AMQP half: what stands between the pika chapter scripts (1 to 7) and the broker.

The URL; that RabbitMQ answers at its host and port in AMQP; the login and the virtual host; the
broker's product and version; resource alarms; each queue and exchange the chapters declare;
their dead-letter settings and the parking lot (doctor_dead_letters.py); on a cluster, its
nodes and the chapter quorum queues' replicas (doctor_cluster.py); and connections the broker
closed for missed heartbeats (doctor_heartbeats.py).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import pika

from tutorial_tools.addresses import DEFAULT_URL, management_url_for, printable
from tutorial_tools.chapters import CHAPTERS
from tutorial_tools.doctor_amqp10 import check_amqp10
from tutorial_tools.doctor_cluster import check_cluster
from tutorial_tools.doctor_dead_letters import PARKING_LOT, check_dead_letters, parking_lot_note
from tutorial_tools.doctor_heartbeats import check_heartbeats
from tutorial_tools.doctor_report import (
    TIMEOUT,
    Report,
    Stop,
    ctl,
    grant_command,
    listener_answer,
)
from tutorial_tools.management import ManagementApi, ManagementError
from tutorial_tools.probes import probe_blocked, server_properties
from tutorial_tools.url_broker import UrlBroker

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
IS_IT_AMQP = "is it RabbitMQ's AMQP port (usually 5672; the management UI's 15672 is not)?"
HOW_TO_START = "start one ('docker compose up -d', or 'make broker' and its export line)"
T = TypeVar("T")


class AmqpChecks:
    """The broker at RABBITMQ_URL, over AMQP (and the management API where it answers)."""

    def __init__(self, report: Report, url: str, management_url: str | None) -> None:
        self.report = report
        self.url, self.where = url, printable(url)
        self.management_url = management_url

    def run(self) -> None:
        """Every check in turn; Stop where one fails that the later ones need."""
        params = self.check_url()
        self.check_listener(params)
        connection = self.check_login(params)
        try:
            version = self.check_versions(connection)
            self.check_alarms()
            Declarations(self.report, connection, params.virtual_host).check()
            check_dead_letters(self.report, self.management(), params.virtual_host)
            check_cluster(self.report, self.management(), params.virtual_host)
            check_heartbeats(self.report, self.management())
            check_amqp10(self.report, self.url, params, version)
        finally:
            if connection.is_open:
                connection.close()

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
            self.report.fail(f"RABBITMQ_URL is not a valid AMQP URL ({error}): e.g. {DEFAULT_URL}")
            raise Stop from error
        params.socket_timeout = params.stack_timeout = TIMEOUT
        self.report.ok(
            f"RABBITMQ_URL is {self.where}: host {params.host}, port {params.port}, "
            f"virtual host {params.virtual_host!r}, user {params.credentials.username!r}"
        )
        return params

    def check_listener(self, params: pika.URLParameters) -> None:
        """Something listens at host:port, and it speaks AMQP (not HTTP, not silence)."""
        address = f"{params.host}:{params.port}"
        hello = b"" if params.ssl_options else AMQP_HEADER  # under TLS, bytes are no greeting
        try:
            answer = listener_answer(
                self.report,
                params.host,
                params.port,
                hello,
                variable="RABBITMQ_URL",
                silent="the AMQP greeting",
                ask=IS_IT_AMQP,
            )
        except ConnectionRefusedError:
            self.report.fail(f"nothing listens on {address}: {HOW_TO_START}, or set RABBITMQ_URL")
            raise Stop from None
        if params.ssl_options:
            self.report.ok(f"{address} accepts connections (TLS: the login below tells more)")
            return
        if answer.startswith(b"HTTP/"):
            self.report.fail(
                f"{address} is an HTTP server (the management UI?), not AMQP: RabbitMQ's AMQP "
                "port is usually 5672"
            )
            raise Stop
        if not answer:
            self.report.fail(f"{address} hung up on the AMQP greeting: {IS_IT_AMQP}")
            raise Stop
        self.report.ok(f"RabbitMQ answers on {address}")

    def check_login(self, params: pika.URLParameters) -> pika.BlockingConnection:
        user, vhost = params.credentials.username, params.virtual_host
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.ProbableAuthenticationError:
            self.report.fail(
                f"RabbitMQ refused user {user!r} (ACCESS_REFUSED): a wrong password, or 'guest' "
                "from another host (guest may log in from localhost only); make a user with "
                "'rabbitmqctl add_user NAME PASSWORD' and put it in RABBITMQ_URL"
            )
            raise Stop from None
        except pika.exceptions.ProbableAccessDeniedError:
            grant = grant_command(vhost, user)
            exists = self.vhost_exists(params)
            if exists:
                self.report.fail(
                    f"user {user!r} has no permissions on virtual host {vhost!r}: {grant}"
                )
            else:
                known = "does not exist" if exists is False else "does not exist, or grants nothing"
                self.report.fail(
                    f"user {user!r} may not use virtual host {vhost!r}: it {known} (NOT_ALLOWED); "
                    f"make it with 'rabbitmqctl add_vhost {vhost}', then {grant}"
                )
            raise Stop from None
        except pika.exceptions.AMQPError as error:
            self.report.fail(f"could not open an AMQP connection to {self.where}: {error!r}")
            raise Stop from None
        self.report.ok(f"user {user!r} logged in to virtual host {vhost!r}")
        return connection

    def management(self) -> ManagementApi:
        management_url = self.management_url or management_url_for(self.url)
        return UrlBroker(self.url, management_url=management_url).management

    def vhost_exists(self, params: pika.URLParameters) -> bool | None:
        """Ask the management API; None when it does not answer (the plugin may be off)."""
        try:
            vhosts = self.management().get("vhosts") or []
        except ManagementError:
            return None
        return params.virtual_host in {vhost["name"] for vhost in vhosts}

    # -- the broker itself --------------------------------------------------------------

    def check_versions(self, connection: pika.BlockingConnection) -> tuple[int, ...]:
        properties = server_properties(connection)

        def text(key: str) -> str:
            return properties.get(key, "?")

        version, platform = text("version"), text("platform").replace("Erlang/OTP ", "")
        major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
        if text("product") != "RabbitMQ" or major_minor < (3, 10):
            self.report.fail(
                f"{text('product')} {version} on Erlang {platform}: the chapters need "
                "RabbitMQ 3.10 or newer"
            )
        else:
            self.report.ok(f"RabbitMQ {version} on Erlang {platform}")
        return major_minor

    def check_alarms(self) -> None:
        """Publish one message that no queue takes: under a resource alarm, RabbitMQ answers
        with connection.blocked and a reason. (The management API's alarm flags lag by up to
        its statistics interval, 5 s.)"""
        reasons = probe_blocked(self.url, TIMEOUT)
        if not reasons:
            self.report.ok("no resource alarm: publishers are not blocked")
        fixes = {
            "memory": "free memory, or raise the limit: "
            "'rabbitmqctl set_vm_memory_high_watermark 0.6'",
            "disk": "free disk space (it wants its disk_free_limit free: 50 MB unless "
            "configured), or on a development machine lower the limit: "
            "'rabbitmqctl set_disk_free_limit 10MB'",
        }
        for reason in reasons:
            kind = "memory" if "memory" in reason else "disk" if "disk" in reason else reason
            self.report.fail(
                f"RabbitMQ is blocking publishers ({reason}): a {kind} alarm is in effect, and "
                f"every publisher waits until it clears; {fixes.get(kind, 'see its log')}"
            )


class Declarations:
    """Each queue and exchange the chapters declare: absent, the same, or a 406 to come."""

    def __init__(self, report: Report, connection: pika.BlockingConnection, vhost: str) -> None:
        self.report, self.connection, self.vhost = report, connection, vhost
        self.absent: list[str] = []  # "queue NAME", "exchange NAME": the scripts declare them

    def check(self) -> None:
        # A queue that several chapters share (task_queue: chapter 2 and the resilient worker)
        # is checked once, under all their names; they declare it alike.
        queues: dict[str, tuple[list[str], dict]] = {}
        for chapter in CHAPTERS:
            for name, arguments in chapter.queues:
                queues.setdefault(name, ([], dict(arguments)))[0].append(chapter.slug)
        for name, (slugs, arguments) in queues.items():
            self.check_queue(", ".join(slugs), name, arguments)
        for chapter in CHAPTERS:
            for name, kind in chapter.exchanges:
                self.check_exchange(chapter.slug, name, kind)
        if self.absent:
            self.report.ok(
                f"not declared yet (the chapter scripts declare them): {', '.join(self.absent)}"
            )

    def existing(self, kind: str, name: str, slug: str, declare: Callable[..., T]) -> T | None:
        """``declare``'s answer to a passive declaration; None where there is nothing to compare:
        the queue or exchange does not exist yet (kept for the last line), or it failed (said)."""
        try:
            return declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            if closed.reply_code == 404:
                self.absent.append(f"{kind} {name}")
            else:
                self.report.fail(f"{kind} {name!r} ({slug}): {closed.reply_text}")
            return None

    def check_queue(self, slug: str, name: str, args: dict) -> None:
        found = self.existing("queue", name, slug, self.connection.channel().queue_declare)
        if found is None:
            return
        try:
            # The chapter's own declaration: a no-op if the queue is as the chapter wants it.
            self.connection.channel().queue_declare(name, durable=True, arguments=args)
        except pika.exceptions.ChannelClosedByBroker as closed:
            self.report.fail(
                f"queue {name!r} exists with other arguments than {slug} declares "
                f"({closed.reply_text}): delete it with '{ctl(self.vhost, 'delete_queue', name)}'"
            )
            return
        ready = found.method.message_count
        if ready and name == PARKING_LOT:
            self.report.note(parking_lot_note(ready))
        elif ready:
            self.report.note(
                f"queue {name!r} ({slug}) holds {ready} message(s) from earlier runs: its consumer "
                f"gets them first; to drop them: '{ctl(self.vhost, 'purge_queue', name)}'"
            )
        else:
            self.report.ok(f"queue {name!r} ({slug}) is as the chapter declares it, and empty")

    def check_exchange(self, slug: str, name: str, kind: str) -> None:
        found = self.existing("exchange", name, slug, self.connection.channel().exchange_declare)
        if found is None:
            return
        try:
            self.connection.channel().exchange_declare(name, exchange_type=kind, durable=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            api = f"/api/exchanges/{urllib.parse.quote(self.vhost, safe='')}/{name}"
            self.report.fail(
                f"exchange {name!r} exists with other settings than {slug} declares "
                f"({closed.reply_text}): delete it in the management UI, or with "
                f"'curl -u USER:PASSWORD -X DELETE http://HOST:15672{api}'"
            )
            return
        self.report.ok(
            f"exchange {name!r} ({slug}) is a {kind} exchange, as the chapter declares it"
        )
