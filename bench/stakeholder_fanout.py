"""Benchmark of the stakeholder fan-out (issue 7): one update to 2,000 stakeholders by email.

Run from the project root:

    .venv/bin/python bench/stakeholder_fanout.py                      # 2,000 stakeholders
    .venv/bin/python bench/stakeholder_fanout.py --stakeholders 500 --batch-size 25
    .venv/bin/python bench/stakeholder_fanout.py --workers 4

Everything is real except the mail server: a Celery worker on the ``notifications`` queue,
started as the Procfile's ``notifier`` (``celery -A config worker --queues notifications
--concurrency N --pool prefork``), Redis as the broker (REDIS_URL, default
redis://127.0.0.1:6379/12, flushed at the start and at the end: it must be the benchmark's own
database) and PostgreSQL (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_fanout, created if missing and migrated; its
incident tables and stakeholder lists are emptied at the start, so it refuses a database whose
name does not contain "bench"). The mail server is aiosmtpd, in this process, on a free local
port (EMAIL_URL=smtp://127.0.0.1:<port> for the worker); it counts the SMTP connections opened
(one SMTP session object per accepted connection), the EHLO/HELO greetings, and for each
message the time DATA completed, its recipients and the client's (host, port).

The default severity scale and the runbook types are loaded, one P0 incident is declared
through ``incidents.services.declare_incident``, and one stakeholder list subscribed to P0 gets
``--stakeholders`` members. Each run posts one update with ``comms.services.post_update(...,
audiences=("stakeholders",))``: its transaction writes one outbox row per stakeholder and, on
commit, ``comms.outbox.dispatch`` queues one ``send_notifications`` task per
``OUTBOX_BATCH_SIZE`` rows (set in this process, where the dispatch runs). The time runs from
the call to the last message received. Runs:

1. **batched**: ``OUTBOX_BATCH_SIZE`` = ``--batch-size`` (default 50, the setting's default);
2. **baseline**: ``OUTBOX_BATCH_SIZE`` = 1, one task (so one connection) per message, through
   the same worker.

A small update to another list (P3 incident) warms the worker's processes up first. The exit
status is 1 when a run lost or repeated a message.
"""

import argparse
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import empty_incident_tables, ensure_database, setup_django  # noqa: E402
from harness import (  # noqa: E402
    Proc,
    celery_env,
    celery_process,
    flush_redis,
    free_port,
    machine_cpu,
    smtp_server,
    wait_until,
)

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["DEBUG"] = "true"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_fanout")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")

STAKEHOLDERS = 2_000
BATCH_SIZE = 50
WORKERS = 2
WARMUP = 20  # warm-up messages, in batches of WARMUP_BATCH
WARMUP_BATCH = 5
TIMEOUT = 300.0  # seconds to wait for a run's messages
REDIS_DB = 12

# --- the mail server --------------------------------------------------------------------------


class Counter:
    """What the SMTP server saw; written from aiosmtpd's thread, read from the main one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections = 0  # SMTP sessions created: one per accepted TCP connection
        self.greetings = 0  # EHLO or HELO
        self.messages: list[tuple[float, tuple, int]] = []  # (perf_counter, peer, recipients)

    def connected(self) -> None:
        with self.lock:
            self.connections += 1

    def mark(self) -> tuple[int, int, int]:
        with self.lock:
            return self.connections, self.greetings, len(self.messages)

    def received(self) -> int:
        with self.lock:
            return len(self.messages)

    def since(self, mark: tuple[int, int, int]) -> dict:
        with self.lock:
            messages = self.messages[mark[2] :]
            return {
                "connections": self.connections - mark[0],
                "greetings": self.greetings - mark[1],
                "messages": len(messages),
                "recipients": sum(n for _, _, n in messages),
                "peers": len({peer for _, peer, _ in messages}),
                "first": min((t for t, _, _ in messages), default=None),
                "last": max((t for t, _, _ in messages), default=None),
            }


class Hooks:
    """aiosmtpd's handler (kept small: aiosmtpd looks at its attributes on every connection)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        with self.counter.lock:
            self.counter.greetings += 1
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: N802
        session.host_name = hostname
        with self.counter.lock:
            self.counter.greetings += 1
        return f"250 {server.hostname}"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        at = time.perf_counter()
        with self.counter.lock:
            self.counter.messages.append((at, session.peer, len(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


# --- the worker -------------------------------------------------------------------------------


def start_worker(name: str, concurrency: int, env: dict, logdir: Path) -> Proc:
    """``celery -A config worker --queues notifications``: it and its pool children stop
    together; its output goes to a log file."""
    args = ["worker", "--loglevel", "INFO", "--queues", "notifications"]
    args += ["--concurrency", str(concurrency), "--pool", "prefork"]
    args += ["--hostname", f"bench-fanout-{name}@%h"]
    return celery_process(name, args, env, logdir)


def cpu_snapshot(worker: Proc) -> dict:
    """Busy and total CPU seconds of the machine (/proc/stat), and those of the worker's
    processes and of this one (the SMTP server's thread is in it)."""
    busy, total = machine_cpu()
    return {"busy": busy, "total": total, "worker": worker.cpu(), "own": time.process_time()}


def cores(before: dict, after: dict) -> dict:
    """CPU cores in use on average between two snapshots: machine, worker, this process, the
    rest (PostgreSQL, Redis, anything else on the machine)."""
    wall = (after["total"] - before["total"]) / (os.cpu_count() or 1)
    if wall <= 0:
        return {"busy": 0.0, "worker": 0.0, "own": 0.0, "rest": 0.0}
    used = {key: (after[key] - before[key]) / wall for key in ("busy", "worker", "own")}
    used["rest"] = used["busy"] - used["worker"] - used["own"]
    return used


def task_runtimes(log: str) -> list[float]:
    return [
        float(s)
        for s in re.findall(
            r"Task comms\.tasks\.send_notifications\[[^\]]+\] succeeded in ([\d.]+)s", log
        )
    ]


# --- setting up -------------------------------------------------------------------------------


def prepare(stakeholders: int):
    """Empty tables, the default scale and types, the lists, a P0 and a P3 incident."""
    from django.contrib.auth import get_user_model

    from comms.models import Stakeholder, StakeholderList
    from incidents.models import SeverityLevel
    from incidents.policy import load_playbooks, load_policy
    from incidents.services import declare_incident

    # CASCADE takes notifications, updates, communications, timeline ... with them.
    empty_incident_tables("comms_stakeholderlist")
    load_policy("default")
    load_playbooks()
    p0 = SeverityLevel.objects.get(code="P0", is_active=True)
    p3 = SeverityLevel.objects.get(code="P3", is_active=True)
    fanout = StakeholderList.objects.create(name="Bench: everyone on P0")
    fanout.severities.set([p0])
    Stakeholder.objects.bulk_create(
        Stakeholder(
            stakeholder_list=fanout,
            name=f"Stakeholder {n}",
            email=f"stakeholder{n:05d}@bench.example.com",
        )
        for n in range(stakeholders)
    )
    warm = StakeholderList.objects.create(name="Bench: warm-up on P3")
    warm.severities.set([p3])
    Stakeholder.objects.bulk_create(
        Stakeholder(stakeholder_list=warm, email=f"warmup{n:03d}@bench.example.com")
        for n in range(WARMUP)
    )
    User = get_user_model()
    commander, _ = User.objects.get_or_create(
        username="bench-fanout-commander", defaults={"email": "commander@bench.example.com"}
    )
    incident = declare_incident(title="Bench: checkout down everywhere", severity=p0, by=commander)
    warmup = declare_incident(title="Bench: warm-up", severity=p3, by=commander)
    return incident, warmup, commander


# --- one run ----------------------------------------------------------------------------------


def post(incident, by, n: int, label: str) -> tuple:
    """post_update to the stakeholders: (update, seconds the call took, of which dispatching on
    commit, queries, stakeholders reached, perf_counter when the call started)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from comms import outbox
    from comms.services import UpdateInput, post_update

    dispatch = outbox.dispatch
    dispatched = [0.0]

    def timed_dispatch(ids, **kwargs):
        started = time.perf_counter()
        try:
            return dispatch(ids, **kwargs)
        finally:
            dispatched[0] += time.perf_counter() - started

    data = UpdateInput(
        progress=f"Run {n} ({label}): the payment provider's region failed over; checkout "
        "errors are falling.",
        public_text="Checkout is failing for some customers. We have found the cause and are "
        "fixing it; next update within 30 minutes.",
        audiences=("stakeholders",),
    )
    outbox.dispatch = timed_dispatch
    try:
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            update, sent = post_update(incident, data, by=by)
            took = time.perf_counter() - started
    finally:
        outbox.dispatch = dispatch
    return update, took, dispatched[0], len(queries), sent.stakeholders, started


def run(counter, worker, incident, by, *, n: int, label: str, batch: int, expected: int) -> dict:
    from django.conf import settings

    from comms.models import Notification

    time.sleep(0.5)  # let the previous run's connections end before counting
    mark = counter.mark()
    log_at = len(worker.text())
    settings.OUTBOX_BATCH_SIZE = batch
    before = cpu_snapshot(worker)
    update, took, dispatch_s, queries, reached, started = post(incident, by, n, label)
    called = cpu_snapshot(worker)
    done = wait_until(lambda: counter.received() - mark[2] >= expected, TIMEOUT, step=0.05)
    delivered = cpu_snapshot(worker)
    time.sleep(1.0)  # a repeat, or a straggling connection, would show up now
    seen = counter.since(mark)
    reason = f"update:{update.pk}:stakeholders"
    rows = Notification.objects.filter(reason=reason)
    states = dict.fromkeys(Notification.State.values, 0)
    for state in rows.values_list("state", flat=True):
        states[state] += 1
    runtimes = task_runtimes(worker.text()[log_at:])
    total = (seen.pop("last") - started) if seen["last"] else float("nan")
    first = seen.pop("first")
    return {
        "label": label,
        "batch": batch,
        "expected": expected,
        "reached": reached,
        "done": done,
        "seconds": total,
        "call": took,
        "dispatch": dispatch_s,
        "queries": queries,
        "first": (first - started) if first else float("nan"),
        "rate": seen["messages"] / total if total == total else 0.0,
        "tasks_expected": math.ceil(reached / batch),
        "tasks": len(runtimes),
        "task_p50": statistics.median(runtimes) if runtimes else float("nan"),
        "states": states,
        "retried": rows.filter(attempts__gt=1).count(),
        "cpu_call": cores(before, called),
        "cpu_delivery": cores(called, delivered),
        **seen,
    }


def show(result: dict) -> None:
    r, d = result, result["cpu_delivery"]
    per_conn = r["messages"] / r["connections"] if r["connections"] else float("nan")
    print(
        f"\n{r['label']}: batch size {r['batch']}, {r['reached']} stakeholders reached\n"
        f"  received {r['messages']} of {r['expected']} messages ({r['recipients']} recipients) "
        f"in {r['seconds']:.2f} s: {r['rate']:.0f} messages/s; first after {r['first']:.2f} s\n"
        f"  of which the post_update call {r['call'] * 1000:.0f} ms ({r['queries']} queries; "
        f"dispatching {r['tasks_expected']} tasks to Redis on commit {r['dispatch'] * 1000:.0f} ms)"
        f"\n  SMTP connections opened {r['connections']} (EHLO/HELO {r['greetings']}, distinct "
        f"client ports that sent {r['peers']}), {per_conn:.1f} messages per connection; "
        f"ceil(N / batch) = {r['tasks_expected']}\n"
        f"  worker: {r['tasks']} send_notifications tasks, p50 {r['task_p50'] * 1000:.0f} ms "
        f"each; outbox rows {r['states']}, sent more than once {r['retried']}\n"
        f"  CPU cores after the call until the last message: worker {d['worker']:.2f}, this "
        f"process (SMTP server) {d['own']:.2f}, everything else {d['rest']:.2f}, machine "
        f"{d['busy']:.2f} of {os.cpu_count()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stakeholders", type=int, default=STAKEHOLDERS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="the notifications worker's concurrency"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the Celery logs")
    args = parser.parse_args()

    port = free_port()
    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{port}"
    os.environ["OUTBOX_BATCH_SIZE"] = str(args.batch_size)
    name = ensure_database(os.environ["DATABASE_URL"], "incident tables and stakeholder lists")
    setup_django()
    import celery
    import django

    flush_redis(REDIS_DB, whose="its own", needed=True)
    incident, warmup, commander = prepare(args.stakeholders)
    print(
        f"Database {name}, Redis {os.environ['REDIS_URL']}, Django {django.__version__}, Celery "
        f"{celery.__version__}, {os.cpu_count()} CPUs; {args.stakeholders} stakeholders on "
        f"{incident.public_id} (P0), notifications worker concurrency {args.workers}, batch "
        f"size {args.batch_size}."
    )

    counter = Counter()
    smtp = smtp_server(
        Hooks(counter),
        port,
        on_connection=counter.connected,
        server_hostname="smtp.bench.invalid",
    )
    logdir = Path(tempfile.mkdtemp(prefix="stakeholder-fanout-"))
    env = celery_env(port)
    plan = [("batched", args.batch_size), ("baseline, one connection per message", 1)]
    results = []
    worker = start_worker("notifier", args.workers, env, logdir)
    try:
        worker.expect(" ready.", 60, "The notifier worker")
        # Warm-up: each pool process gets its imports, database connection and templates.
        warm = run(
            counter,
            worker,
            warmup,
            commander,
            n=0,
            label="warm-up",
            batch=WARMUP_BATCH,
            expected=WARMUP,
        )
        if not warm["done"]:
            sys.exit(f"Warm-up: {warm['messages']} of {WARMUP} emails arrived.")
        for n, (label, batch) in enumerate(plan, start=1):
            result = run(
                counter,
                worker,
                incident,
                commander,
                n=n,
                label=label,
                batch=batch,
                expected=args.stakeholders,
            )
            show(result)
            results.append(result)
    finally:
        worker.stop()
        smtp.stop()
        flush_redis(REDIS_DB, whose="its own", needed=True)

    batched, baseline = results[0], results[1]
    ratio = baseline["seconds"] / batched["seconds"]
    conn_ratio = baseline["connections"] / max(batched["connections"], 1)
    aim = batched["tasks_expected"]
    print(
        f"\nstakeholders {args.stakeholders}, batch size {args.batch_size}, workers "
        f"{args.workers}: batched {batched['seconds']:.2f} s ({batched['rate']:.0f} msg/s, "
        f"post_update {batched['call'] * 1000:.0f} ms), {batched['connections']} SMTP "
        f"connections (aim: ceil(N / batch) = {aim}: "
        + ("met" if batched["connections"] <= aim else "MISSED")
        + f"); one per message {baseline['seconds']:.2f} s ({baseline['rate']:.0f} msg/s), "
        f"{baseline['connections']} connections; baseline/batched time x{ratio:.2f}, "
        f"connections x{conn_ratio:.1f}"
    )
    ok = all(
        r["done"] and r["messages"] == r["expected"] and r["states"]["sent"] == r["expected"]
        for r in results
    )
    if args.keep_logs or not ok:
        print(f"Celery logs: {logdir}")
    else:
        for log in logdir.iterdir():
            log.unlink()
        logdir.rmdir()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
