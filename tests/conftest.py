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

    def __init__(self, *args: str, log_path: Path):
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=process_env(),
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


@pytest.fixture(scope="session")
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
