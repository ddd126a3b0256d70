"""Escalations and the outbox under real failures: killed workers, a Redis outage, racing ticks.

Every part is a real process: PostgreSQL, a private ``redis-server`` per test (stopping it
disturbs nobody else), Celery workers and beat (``celery -A config``), and an SMTP server
(aiosmtpd) that keeps what arrives. The clock is real too, since other processes cannot see a
simulated one: steps fall due within seconds because the test shortens the P0 policy's delays.

What a user checks is what reaches the mail server: every alert the portal decided to send, by
Message-ID and by (recipient, subject), each once, and a repeat only ever under the Message-ID
of its first delivery.
"""

import asyncio
import email.policy
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email.parser import BytesParser
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from django.urls import reverse
from django.utils import timezone
from kombu import pools

from comms.models import Notification
from config.celery import app
from escalation.models import Escalation, EscalationStep, FiredStep
from escalation.tasks import tick
from tests.conftest import CeleryProcess, wait_for
from tests.incidents.factories import declare, severity

# migration_data: each test starts from the migrations' data (org roles, groups), which the
# flush after an earlier transactional test removes.
pytestmark = [
    pytest.mark.needs_redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("migration_data"),
]

ALERT = "INCIDENT ALERT"
PAGED_AT_ONCE = 3  # a P0 pages the on-call engineer, the DevOps Lead and the Backend Lead
DECLARE = "admin:incidents_incident_declare"
TICK_LOG = re.compile(r"escalation tick: \{'incidents': \d+, 'fired': (\d+)")

# Fast recovery: a sender holds a row for 3 s; beat ticks and sweeps every second; the sweep
# re-sends a row pending for 2 s or whose lease ran out 2 s ago. An SMTP exchange must not
# outlive the lease, so the socket timeout stays below it.
RECOVERY_SETTINGS = {
    "NOTIFICATION_LEASE_SECONDS": "3",
    "OUTBOX_SWEEP_GRACE_SECONDS": "2",
    "OUTBOX_SWEEP_SECONDS": "1",
    "ESCALATION_TICK_SECONDS": "1",
    "EMAIL_TIMEOUT": "2",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- The processes ----------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` without persistence: a restart loses every queued message."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
                + ["--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False


class MailServer:
    """A real SMTP server on 127.0.0.1 that keeps each message it accepts, and when.

    With ``reply_delay`` it queues a message, then takes that long to answer "250", like a busy
    server. A sender killed in that window never learns the message was delivered: the one
    repeat the outbox allows, which must carry the same Message-ID.
    """

    def __init__(self, port: int):
        self.host, self.port = "127.0.0.1", port
        self.reply_delay = 0.0
        self.received: list[tuple[bytes, float]] = []  # (message, arrival time)
        self.answering = 0  # messages queued whose "250" is not sent yet
        self.controller = Controller(_Hooks(self), hostname=self.host, port=port)

    def alerts(self) -> list[tuple[str, str, str, float]]:
        """(Message-ID, To, Subject, arrival time) of each escalation alert received."""
        parser = BytesParser(policy=email.policy.default)
        headers = [(parser.parsebytes(raw, headersonly=True), at) for raw, at in self.received]
        return [
            (message["Message-ID"], message["To"], message["Subject"], at)
            for message, at in headers
            if message["Subject"].startswith(ALERT)
        ]

    def quiet(self, seconds: float = 1.0) -> None:
        """Wait until nothing has arrived for ``seconds``: a late repeat would land before."""

        def silent() -> bool:
            return time.time() - max((at for _, at in self.received), default=0) >= seconds

        wait_for(silent, 30, "the mail server to go quiet")


class _Hooks:
    """aiosmtpd's handler. Apart from MailServer because aiosmtpd reads every attribute of its
    handler on each connection (``inspect.getmembers``): a property that parses the mail
    received so far (the conftest server's ``messages``) makes each connection slower."""

    def __init__(self, server: MailServer):
        self.server = server

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        mail = self.server
        mail.received.append((envelope.original_content or envelope.content, time.time()))
        mail.answering += 1
        try:
            await asyncio.sleep(mail.reply_delay)
        finally:
            mail.answering -= 1
        return "250 Message accepted for delivery"


class Processes:
    """This test's workers and beat, on the private Redis, sending mail to ``mail``."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer, mail: MailServer):
        self.tmp_path = tmp_path
        self.env = {
            "REDIS_URL": redis_server.url,
            "EMAIL_URL": f"smtp://{mail.host}:{mail.port}",
            **RECOVERY_SETTINGS,
        }
        self.started: list[CeleryProcess] = []

    def worker(self, name: str, *, concurrency: int = 1, wait: bool = True) -> CeleryProcess:
        process = self._start(
            name,
            "worker",
            "--queues",
            "default,notifications",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        )
        if wait:
            self.ready(process)
        return process

    def beat(self) -> CeleryProcess:
        return self._start("beat", "beat", "--pidfile=")

    @staticmethod
    def ready(worker: CeleryProcess) -> None:
        wait_for(lambda: " ready." in worker.output() or worker.proc.poll() is not None, 60)
        assert worker.proc.poll() is None, worker.output()

    @staticmethod
    def kill(process: CeleryProcess) -> None:
        """SIGKILL the whole process group (main process and pool children): no cleanup at all."""
        os.killpg(process.proc.pid, signal.SIGKILL)
        process.proc.wait()
        process.stop()

    def _start(self, name: str, *args: str) -> CeleryProcess:
        process = CeleryProcess(*args, env=self.env, log_path=self.tmp_path / f"{name}.log")
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def fatal_error(process: CeleryProcess) -> str:
    """Why a process exited, from its log: Celery's "Unrecoverable error" line, or the tail."""
    output = process.output()
    fatal = [line for line in output.splitlines() if "Unrecoverable error" in line]
    return f"{process.log_path.stem} exited: " + (fatal[-1][:600] if fatal else output[-2000:])


def publish_to(url: str | None) -> None:
    """Point this process's Celery producer (the web side's wake-ups and sends) at ``url``;
    None: back to its settings."""
    pools.reset()  # closes the pooled connections to the previous broker
    if url:
        os.environ["CELERY_BROKER_URL"] = url  # Celery reads it before its settings
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    app._pool = None  # what Celery itself resets after a fork
    app.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    previous = os.environ.get("CELERY_BROKER_URL")
    publish_to(server.url)
    try:
        yield server
    finally:
        publish_to(previous)
        server.stop()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    smtp_log = logging.getLogger("mail.log")  # aiosmtpd logs every SMTP command at INFO
    level = smtp_log.level
    smtp_log.setLevel(logging.WARNING)
    server = MailServer(free_port())
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()
        smtp_log.setLevel(level)


@pytest.fixture
def processes(transactional_db, tmp_path, private_redis, mail) -> Iterator[Processes]:
    started = Processes(tmp_path, private_redis, mail)
    try:
        yield started
    finally:
        # Before the database is flushed: no process may hold a lock on it.
        started.stop_all()


# --- What the portal decided, what arrived ------------------------------------------------------


def p0_steps_due_after(**seconds: int) -> None:
    """Make the P0 policy's later steps (``p0_backup=10``) fall due seconds after declaring."""
    for key, delay in seconds.items():
        updated = EscalationStep.objects.filter(
            policy__severity=severity("P0"), key=key.replace("_", "-")
        ).update(delay=timedelta(seconds=delay))
        assert updated == 1, key


def decided() -> dict[str, tuple[str, str]]:
    """The email alerts the portal decided to send: Message-ID -> (recipient, subject)."""
    rows = Notification.objects.filter(channel="email", reason__startswith="escalation:")
    return {row.message_id: (row.recipient, row.subject) for row in rows}


def all_sent(count: int) -> bool:
    rows = Notification.objects.filter(channel="email", reason__startswith="escalation:")
    return rows.count() == count and not rows.exclude(state=Notification.State.SENT).exists()


def assert_each_delivered_once(received: list[tuple], expected: int) -> None:
    """Exactly the alerts the portal decided arrived, each once: counted by Message-ID and by
    (recipient, subject)."""
    decision = decided()
    assert len(decision) == expected
    assert_none_lost(received, decision)
    by_id = Counter(message_id for message_id, *_ in received)
    by_person = Counter((to, subject) for _, to, subject, _ in received)
    assert [message_id for message_id, times in by_id.items() if times > 1] == []
    assert [person for person, times in by_person.items() if times > 1] == []
    assert len(received) == expected


def assert_none_lost(received: list[tuple], decision: dict[str, tuple[str, str]]) -> None:
    """Every decided alert arrived, to its recipient, under its stored Message-ID; nothing else
    arrived (so a repeat can only be the same message, under the same Message-ID)."""
    arrived = {(message_id, to, subject) for message_id, to, subject, _ in received}
    assert arrived == {(message_id, *person) for message_id, person in decision.items()}


# --- (a) Workers killed while sending -----------------------------------------------------------


def test_workers_killed_while_sending_lose_nothing_and_a_repeat_keeps_its_message_id(
    processes, mail, organisation
):
    incidents, kills = 10, 5
    mail.reply_delay = 0.6  # long enough to kill a worker between "queued" and "250"
    processes.beat()
    worker = processes.worker("sender-0", concurrency=2)
    for number in range(incidents):
        declare(f"Payments failing in region {number}", code="P0", by=organisation["olive"])
    expected = incidents * PAGED_AT_ONCE

    for kill in range(1, kills + 1):
        wait_for(lambda: mail.answering, 30, "a message the worker is sending")
        processes.kill(worker)
        worker = processes.worker(f"sender-{kill}", concurrency=2)
    arrived_while_killing = len(mail.alerts())

    wait_for(lambda: all_sent(expected), 90, f"all {expected} alerts recorded as sent")
    mail.quiet()

    received, decision = mail.alerts(), decided()
    repeats = len(received) - len(decision)
    print(
        f"\nrepeats after {kills} SIGKILLs: {repeats} ({arrived_while_killing} arrived meanwhile)"
    )
    assert len(decision) == expected
    assert_none_lost(received, decision)
    # Each kill cut short a send the server had queued (so it repeats), and only those repeat:
    # at most one per pool process per kill.
    assert kills <= repeats <= kills * 2


# --- (b) Redis down for 30 seconds while steps fall due -------------------------------------------


def test_a_30_second_redis_outage_delays_due_steps_but_loses_and_repeats_nothing(
    processes, private_redis, mail, organisation, admin_client
):
    outage = 30.0
    p0_steps_due_after(p0_backup=10, p0_manager=20)  # bea, then em; the CTO stays hours away
    steps_per_incident = PAGED_AT_ONCE + 2
    worker = processes.worker("worker", concurrency=2)
    beat = processes.beat()
    for number in range(3):
        declare(f"Search is down {number}", code="P0", by=organisation["olive"])
    wait_for(lambda: len(mail.alerts()) == 3 * PAGED_AT_ONCE, 30, "the immediate pages")

    private_redis.stop()
    down_at, down = time.time(), timezone.now()
    # Responders keep declaring: the admin works without Redis (beat's tick catches up later).
    for number in range(2):
        started = time.monotonic()
        response = admin_client.post(
            reverse(DECLARE),
            {"title": f"Logins fail {number}", "severity": severity("P0").pk},
        )
        print(f"\ndeclared with Redis down in {time.monotonic() - started:.1f}s")
        assert response.status_code == 302, response.content.decode()[:2000]
    time.sleep(max(0.0, down_at + outage - time.time()))  # the outage itself, in real time
    private_redis.start()
    up_at, up = time.time(), timezone.now()
    # Worker and beat ride the outage out: nobody has to restart them.
    for process in (worker, beat):
        assert process.proc.poll() is None, fatal_error(process)

    expected = 5 * steps_per_incident
    wait_for(lambda: all_sent(expected), 90, f"all {expected} alerts recorded as sent")
    mail.quiet()

    received = mail.alerts()
    assert_each_delivered_once(received, expected)
    # Steps did fall due while Redis was down, and what was not sent before went after.
    fell_due = FiredStep.objects.filter(due_at__gt=down, due_at__lt=up)
    assert fell_due.count() >= 3 * 2 + 2  # backup and manager of the 3, the 2 declared
    late = [at for *_, at in received[3 * PAGED_AT_ONCE :]]
    assert min(late) >= up_at
    print(f"last alert {max(late) - up_at:.1f}s after Redis returned")


# --- (c) Two workers, two ticks, 200 due incidents ------------------------------------------------


def test_two_ticks_on_two_workers_notify_200_due_incidents_exactly_once(
    processes, private_redis, mail, organisation
):
    incidents = 200
    for number in range(incidents):
        declare(f"Checkout errors in shop {number}", code="P0", by=organisation["olive"])
    # Each declaration queued its own wake-up; drop them, so the two ticks below are the
    # only ones, racing for the same 200 due incidents.
    assert private_redis.client().delete("default") == 1
    assert Escalation.objects.filter(next_due_at__lte=timezone.now()).count() == incidents
    workers = [processes.worker(name, concurrency=2, wait=False) for name in ("a", "b")]
    for worker in workers:
        processes.ready(worker)

    tick.delay()
    tick.delay()

    expected = incidents * PAGED_AT_ONCE
    wait_for(lambda: all_sent(expected), 90, f"all {expected} alerts recorded as sent")
    mail.quiet()

    assert_each_delivered_once(mail.alerts(), expected)
    assert FiredStep.objects.count() == incidents
    # Both ticks really ran at once: each fired part of the 200.
    logs = "".join(worker.output() for worker in workers)
    fired = [int(n) for n in TICK_LOG.findall(logs)]
    print(f"\nfired per tick: {fired}")
    assert len(fired) == 2 and sum(fired) == incidents, fired
