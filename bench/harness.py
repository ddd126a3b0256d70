"""What the benchmarks that run real processes share: a free port, a process group started and
stopped as one (a Celery worker and its pool, gunicorn and its workers), the CPU it used, the
local SMTP server, the Redis database they flush, and waiting for a condition."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, step: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --- processes --------------------------------------------------------------------------------


class Proc:
    """A process of ours in its own session, so that it and its children stop together by its
    process group id; its output goes to a log file."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path) -> None:
        self.name = name
        self.log = log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float) -> bool:
        """Whether ``needle`` showed in the log within ``timeout`` seconds (False once it exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.popen.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def expect(self, needle: str, timeout: float, what: str) -> None:
        """``wait_for``, or show the log's end and stop the benchmark."""
        if not self.wait_for(needle, timeout):
            print(self.text()[-3000:])
            sys.exit(f"{what} did not start (log above).")

    def cpu(self) -> float:
        return group_cpu(self.popen.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._file.close()


def celery_process(name: str, args: list[str], env: dict, logdir: Path) -> Proc:
    """``celery -A config <args>``, logging to ``<logdir>/<name>.log``."""
    command = [sys.executable, "-m", "celery", "-A", "config", *args]
    return Proc(name, command, env, logdir / f"{name}.log")


def celery_env(smtp_port: int) -> dict:
    """This process's environment for a Celery process sending mail to our SMTP server."""
    return dict(os.environ, DEBUG="true", EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    used = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:  # a process may end between the listing and the read
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            used += int(fields[11]) + int(fields[12])
    return used / os.sysconf("SC_CLK_TCK")


# --- the mail server and the broker -------------------------------------------------------------


def smtp_server(handler, port: int, *, on_connection=None, **options):
    """aiosmtpd on 127.0.0.1:``port`` in a thread of this process, started; ``on_connection``
    is called for each accepted connection."""
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command

    class BenchController(Controller):
        def factory(self):  # called once per accepted connection
            if on_connection is not None:
                on_connection()
            return super().factory()

    controller = BenchController(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller


def flush_redis(db: int, *, whose: str, needed: bool, unreachable: str = "") -> None:
    """Empty the benchmark's Redis database (REDIS_URL), and never another one.

    ``needed``: Celery workers use it as their broker, so a REDIS_URL naming another database
    stops the benchmark. Otherwise that database is left alone with a note, and a Redis that
    does not answer is reported with ``unreachable``, what the benchmark does without it.
    """
    import redis

    url = os.environ["REDIS_URL"]
    if url.rstrip("/").rsplit("/", 1)[-1] != str(db):
        if needed:
            sys.exit(
                f"REDIS_URL {url}: this benchmark flushes its Redis database before and after; "
                f"give it database {db} (redis://host:6379/{db}), {whose}."
            )
        print(f"Not flushing {url}: only Redis database {db} is {whose}.")
        return
    if needed:
        redis.Redis.from_url(url).flushdb()
        return
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError as exc:
        print(f"Redis at {url} unreachable ({exc}); {unreachable}")
