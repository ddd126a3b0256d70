"""Fixtures shared by every test package: real Celery processes against the test database."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    """Poll a real process's effect; this waits for work, it does not stand in for time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DEBUG": "true"}
    env.update(extra)
    return env


class CeleryProcess:
    """A real ``celery -A config <worker|beat>`` process on the test database and test Redis."""

    def __init__(self, *args: str, log_path: Path, env: dict | None = None):
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=process_env(**(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def redis_flushed():
    """The spare Redis database the tests own, emptied so no earlier run's messages linger."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.flushdb()
    return client


# Module scope: a worker left running would keep working on the test database (ticks woken by
# later tests' declarations) while a transactional test flushes it.
@pytest.fixture(scope="module")
def celery_worker_process(
    django_db_setup, redis_flushed, tmp_path_factory
) -> Iterator[CeleryProcess]:
    worker = CeleryProcess(
        "worker",
        "--queues",
        "default,notifications",
        "--concurrency",
        "1",
        "--hostname",
        f"test-worker-{os.getpid()}@%h",
        "--without-mingle",
        "--without-gossip",
        log_path=tmp_path_factory.mktemp("celery") / "worker.log",
    )
    try:
        wait_for(lambda: " ready." in worker.output() or worker.proc.poll() is not None, 60)
        assert worker.proc.poll() is None, worker.output()
        yield worker
    finally:
        worker.stop()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """PBKDF2's deliberate slowness is for attackers, not for test users created by the hundred."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class SMTPServer:
    """A real SMTP server on 127.0.0.1: every message Django sends to it, as received."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.envelopes: list = []
        # One (host, port) per SMTP connection a client opened and sent on.
        self.peers: set = set()
        # Addresses answered "550 mailbox unavailable", as a real server refuses a bad address.
        self.refused: set[str] = set()

    @property
    def messages(self) -> list:
        """Parsed messages: ``msg["To"]``, ``msg["Subject"]``, ``msg.get_content()`` (the body).

        SMTP carries CRLF line ends; they are read back as ``\n`` so bodies compare as written.
        """
        import email
        import email.policy

        return [
            email.message_from_bytes(
                (envelope.original_content or envelope.content).replace(b"\r\n", b"\n"),
                policy=email.policy.default,
            )
            for envelope in self.envelopes
        ]


class SMTPHooks:
    """aiosmtpd's handler. Kept apart from SMTPServer: aiosmtpd reads every attribute of its
    handler on each connection, which would re-parse every message received so far."""

    def __init__(self, server: SMTPServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.server.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.server.envelopes.append(envelope)
        self.server.peers.add(session.peer)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings) -> Iterator[SMTPServer]:
    """Django's SMTP backend pointed at a real aiosmtpd server that keeps what it receives.

    Emails go out in ``transaction.on_commit`` callbacks: with the ``db`` fixture, run them with
    ``django_capture_on_commit_callbacks(execute=True)``, or use ``transactional_db``.
    """
    import socket

    from aiosmtpd.controller import Controller

    # aiosmtpd's controller connects to its own port to know it is up, so it cannot bind port 0
    # itself: ask the OS for a free port and hand that over.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = SMTPServer("127.0.0.1", port)
    controller = Controller(SMTPHooks(server), hostname=server.host, port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = server.host
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    try:
        yield server
    finally:
        controller.stop()


# The data migrations' rows (groups and their permissions, org roles, checklist defaults). A
# transactional test (live server, real worker) flushes every table when it ends, and Django's
# serialized_rollback cannot put them back once a flush has recreated the content types, so the
# tests that need them after a flush re-run the migrations' own functions.
DATA_MIGRATIONS = (
    ("incidents.migrations.0002_timeline_append_only_and_groups", "grant_groups"),
    ("incidents.migrations.0006_review_permissions", "forwards"),
    ("escalation.migrations.0002_default_org_roles_and_groups", "forwards"),
    ("escalation.migrations.0004_handoff_checklist_defaults", "forwards"),
    ("escalation.migrations.0005_on_call_engineer_role", "forwards"),
    ("escalation.migrations.0007_escalation_permissions", "forwards"),
    ("comms.migrations.0002_permissions", "forwards"),
    ("comms.migrations.0005_communication_permissions", "forwards"),
    ("integrations.migrations.0002_permissions", "forwards"),
    ("integrations.migrations.0004_alert_permissions", "forwards"),
)


def restore_migration_data() -> None:
    import importlib

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    apps = MigrationExecutor(connection).loader.project_state().apps
    for module, function in DATA_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture
def migration_data(transactional_db) -> None:
    """The migrations' data, for a transactional test that may run after a flush."""
    restore_migration_data()
