"""Benchmark of escalation lateness: how long after a step falls due does its email arrive?

Run from the project root:

    .venv/bin/python bench/escalation_lateness.py                  # 1,000 steps over 60 s
    .venv/bin/python bench/escalation_lateness.py --concurrency 4
    .venv/bin/python bench/escalation_lateness.py --steps 200 --window 20   # a quicker try
    .venv/bin/python bench/escalation_lateness.py --steps 2000 --notify-concurrency 2

Everything is real except the mail server: a Celery beat and a Celery worker, started as the
Procfile starts them (``celery -A config worker --queues default,notifications --concurrency N``
and ``celery -A config beat --pidfile=``), Redis as the broker (REDIS_URL, default
redis://127.0.0.1:6379/14, flushed at the start and at the end: it must be the benchmark's own
database) and PostgreSQL (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_escalation, created if missing and migrated;
its incident tables are emptied at the start, so it refuses a database whose name does not
contain "bench"). The mail server is aiosmtpd, in this process, on a free local port
(EMAIL_URL=smtp://127.0.0.1:<port> for the worker); it records when each message arrives.

The P3 policy of the benchmark database is replaced by one step: ``D`` (10 minutes) after
declaration, if not acknowledged, email one address. 1,000 incidents are declared through
incidents.services.declare_incident with declaration times ``D`` before the due times wanted,
so their steps fall due evenly over the next minute (one every 60 ms), starting a few seconds
after the last declaration. Each firing writes exactly one notification; the engine's own
wake-ups (ETA ticks, sent when each declaration commits) and beat's 5-second tick fire them,
and the worker sends them. A few incidents due at once warm the worker up first and are not
counted.

It prints p50, p99 and max of lateness = received - due (``FiredStep.due_at``; a message is
matched to its step by its Message-ID, the notification's ``message_id``, whose ``reason`` is
``escalation:<incident>:<step>:<repetition>``), split into due -> fired (``FiredStep.fired_at``,
the ``now`` of the run_due that fired it) and fired -> received, per 10-second slice of the
window as well, and whether the aim (p99 <= 1 s, max <= 2 s) is met. The exit status is 1 when
the aim is missed or a message is missing.

It also prints the CPU (in cores) used by the worker(s), beat, this process and everything
else on the machine, per slice and over the window, and the worker's task run times from its
log, so that a miss can be told apart from other load. Options for experiments:
``--notify-concurrency N`` runs the notifications queue on a second worker of N processes (the
first then takes only the default queue); ``--cpu-hogs N`` runs N busy loops during the window.
"""

import argparse
import email
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
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
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_escalation")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")

STEPS = 1_000
WINDOW = 60.0  # seconds over which the steps fall due
DELAY = timedelta(minutes=10)  # the policy step's delay after declaration
WARMUP = 6  # incidents due at once before the window, to warm the worker's processes up
PROBE = 20  # incidents declared to time a declaration
GRACE = 60.0  # seconds to wait after the window for stragglers
SEVERITY = "P3"
ADDRESS = "oncall@bench.example.com"
AIM_P99, AIM_MAX = 1.0, 2.0  # seconds
SLICE = 10.0  # seconds per slice of the lateness-over-time table
REDIS_DB = 14


# --- the mail server --------------------------------------------------------------------------


class Recorder:
    """aiosmtpd handler: keep each message with the time its DATA was complete."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[float, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        received = time.time()
        with self.lock:
            self.messages.append((received, envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def snapshot(self) -> list[tuple[float, bytes]]:
        with self.lock:
            return list(self.messages)


class CpuSampler(threading.Thread):
    """Every second: the machine's busy CPU seconds and those of our worker and beat process
    groups and of this process, so that load from anything else shows beside the figures."""

    def __init__(self, procs: list[Proc]) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.samples: list[dict] = []
        self.halt = threading.Event()

    def sample(self) -> None:
        busy, total = machine_cpu()
        row = {"at": time.time(), "busy": busy, "total": total, "own": time.process_time()}
        row.update({proc.name: proc.cpu() for proc in self.procs})
        self.samples.append(row)

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(1.0)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.sample()

    def between(self, start: float, end: float) -> dict | None:
        """CPU cores in use on average from ``start`` to ``end``: machine, ours, the rest."""
        inside = [row for row in self.samples if start - 0.5 <= row["at"] <= end + 0.5]
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        cpus = os.cpu_count() or 1
        wall = (last["total"] - first["total"]) / cpus
        if wall <= 0:
            return None
        used = {
            key: (last[key] - first[key]) / wall
            for key in ("busy", "own", *(proc.name for proc in self.procs))
        }
        used["rest"] = used["busy"] - sum(used[p.name] for p in self.procs) - used["own"]
        used["workers"] = sum(used[p.name] for p in self.procs if p.name != "beat")
        used["wall"] = wall
        return used


# --- setting up -------------------------------------------------------------------------------


def prepare_policy():
    """The default scale, and the P3 policy as one step emailing one address."""
    from django.contrib.auth import get_user_model

    from comms.models import Webhook
    from escalation.models import EscalationPolicy, EscalationStep
    from incidents.models import SeverityLevel
    from incidents.policy import load_policy

    load_policy("default", only_if_empty=True)
    severity = SeverityLevel.objects.get(code=SEVERITY, is_active=True)
    policy, _ = EscalationPolicy.objects.get_or_create(
        severity=severity, defaults={"name": f"{severity.code} {severity.name}"}
    )
    policy.repeat_from, policy.repeat_cycles = None, 0
    policy.save()
    policy.steps.all().delete()
    EscalationStep.objects.create(
        policy=policy,
        position=1,
        key="bench-page",
        label="Bench: one email when not acknowledged",
        delay=DELAY,
        condition="not_acknowledged",
        targets=[f"email:{ADDRESS}"],
        channels=["email"],
    )
    Webhook.objects.update(is_active=False)  # not used by the step; nothing else to send
    User = get_user_model()
    declarer, _ = User.objects.get_or_create(
        username="bench-esc-declarer", defaults={"email": "declarer@bench.example.com"}
    )
    return severity, declarer


def declare(severity, by, title: str, declared_at: datetime):
    from incidents.services import declare_incident

    return declare_incident(title=title, severity=severity, by=by, now=declared_at)


# --- measuring --------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    ms = [v * 1000 for v in values]
    return f"p50 {pct(ms, 50):.0f} / p99 {pct(ms, 99):.0f} / max {max(ms):.0f}"


def task_runtimes(log: str) -> dict[str, list[float]]:
    """Seconds each task took, by task name, from the worker's "succeeded in" lines."""
    found: dict[str, list[float]] = {}
    for name, seconds in re.findall(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s", log):
        found.setdefault(name.rsplit(".", 1)[-1], []).append(float(seconds))
    return dict(sorted(found.items(), key=lambda item: -len(item[1])))


def match(messages: list[tuple[float, bytes]], measured: set[int]) -> tuple[list[dict], dict]:
    """Each received message with its step's due and fired times; and what did not match."""
    from comms.models import Notification
    from escalation.models import FiredStep

    by_id = {}
    for received, content in messages:
        message_id = email.message_from_bytes(content).get("Message-ID", "").strip()
        by_id.setdefault(message_id, []).append(received)
    notes = {
        n.message_id: n
        for n in Notification.objects.filter(message_id__in=list(by_id)).only(
            "message_id", "reason", "incident_id", "sent_at", "attempts"
        )
    }
    fired = {
        (f.incident_id, f.step_key, f.repetition): f
        for f in FiredStep.objects.filter(incident_id__in=measured)
    }
    rows, problems = [], {"unknown": 0, "repeats": 0, "warmup": 0}
    for message_id, times in by_id.items():
        note = notes.get(message_id)
        if note is None:
            problems["unknown"] += len(times)
            continue
        problems["repeats"] += len(times) - 1
        _, incident_pk, step_key, repetition = note.reason.split(":", 3)
        if int(incident_pk) not in measured:
            problems["warmup"] += 1
            continue
        step = fired[(int(incident_pk), step_key, int(repetition))]
        received = min(times)
        due, at = step.due_at.timestamp(), step.fired_at.timestamp()
        rows.append(
            {
                "due": due,
                "late": received - due,
                "to_fire": at - due,
                "to_receive": received - at,
                "attempts": note.attempts,
            }
        )
    return rows, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--window", type=float, default=WINDOW, help="seconds")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--notify-concurrency",
        type=int,
        default=2,
        help="run notifications on a second worker of this concurrency (the first then takes "
        "only the default queue), as the Procfile does; 0 runs one worker for both queues",
    )
    parser.add_argument(
        "--cpu-hogs",
        type=int,
        default=0,
        help="busy-loop processes to run during the window (other load on the machine)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the Celery logs")
    args = parser.parse_args()

    port = free_port()
    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{port}"
    name = ensure_database(os.environ["DATABASE_URL"], "incident tables")
    setup_django()
    from django.db import close_old_connections
    from django.db.models import Count
    from django.utils import timezone

    from comms.models import Notification
    from escalation.models import FiredStep

    flush_redis(REDIS_DB, whose="the benchmarks' own", needed=True)
    empty_incident_tables()
    severity, declarer = prepare_policy()
    import celery

    print(
        f"Database {name}, Redis {os.environ['REDIS_URL']}, Celery {celery.__version__}, "
        f"{os.cpu_count()} CPUs; "
        f"{args.steps} steps due over {args.window:.0f} s, worker concurrency {args.concurrency}"
        + (
            f" (default queue) + {args.notify_concurrency} (notifications)"
            if args.notify_concurrency
            else ""
        )
        + (f", {args.cpu_hogs} busy-loop processes beside it" if args.cpu_hogs else "")
        + "."
    )

    recorder = Recorder()
    smtp = smtp_server(recorder, port)
    logdir = Path(tempfile.mkdtemp(prefix="escalation-lateness-"))
    env = celery_env(port)

    def start_worker(name: str, queues: str, concurrency: int) -> Proc:
        argv = ["worker", "--loglevel", "INFO", "--queues", queues]
        argv += ["--concurrency", str(concurrency), "--hostname", f"bench-{name}@%h"]
        return celery_process(name, argv, env, logdir)

    if args.notify_concurrency:
        workers = [
            start_worker("worker", "default", args.concurrency),
            start_worker("notify-worker", "notifications", args.notify_concurrency),
        ]
    else:
        workers = [start_worker("worker", "default,notifications", args.concurrency)]
    beat = celery_process("beat", ["beat", "--loglevel", "INFO", "--pidfile="], env, logdir)
    procs = [*workers, beat]
    hogs: list[subprocess.Popen] = []
    try:
        for worker in workers:
            worker.expect(" ready.", 60, f"The {worker.name}")
        beat.expect("beat: Starting", 30, "Beat")

        # Warm-up: a few incidents due at once, so each pool process has its connection, its
        # templates and its imports before the window.
        now = timezone.now()
        for n in range(WARMUP):
            declare(severity, declarer, f"Warm-up {n}", now - DELAY)
        if not wait_until(lambda: recorder.count() >= WARMUP, 30, step=0.25):
            sys.exit(f"Warm-up: {recorder.count()} of {WARMUP} emails arrived in 30 s.")
        # The declaration rate, from a few incidents declared now: their step is due long
        # after the run (its wake-up dies with the worker).
        took = []
        for n in range(PROBE):
            started = time.perf_counter()
            declare(severity, declarer, f"Rate probe {n}", timezone.now())
            took.append(time.perf_counter() - started)
        per_declaration = statistics.median(took)

        # The window starts a few seconds after the declarations should be done.
        lead = 3.0 + 1.5 * per_declaration * args.steps
        first_due = timezone.now() + timedelta(seconds=lead)
        spacing = timedelta(seconds=args.window / args.steps)
        started = time.perf_counter()
        measured = set()
        for n in range(args.steps):
            due = first_due + spacing * n
            incident = declare(severity, declarer, f"Lateness {n}", due - DELAY)
            measured.add(incident.pk)
        declared_in = time.perf_counter() - started
        margin = (first_due - timezone.now()).total_seconds()
        print(
            f"Declared {args.steps} incidents in {declared_in:.1f} s "
            f"({declared_in / args.steps * 1000:.1f} ms each); the first step is due "
            f"{margin:.1f} s later."
        )
        if margin < 0:
            print("  WARNING: declaring overlapped the window; its load is in the figures.")
        close_old_connections()

        end = (first_due + spacing * args.steps).timestamp()
        expected = WARMUP + args.steps
        time.sleep(max(0.0, first_due.timestamp() - time.time()))
        sampler = CpuSampler(procs)
        sampler.start()
        hogs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.cpu_hogs)
        ]
        wait_until(
            lambda: recorder.count() >= expected,
            timeout=max(0.0, end - time.time()) + GRACE,
            step=0.5,
        )
        sampler.stop()
        time.sleep(1.0)  # any repeat would arrive right after
    finally:
        for hog in hogs:
            hog.terminate()
            hog.wait()
        for proc in procs:
            proc.stop()
        smtp.stop()

    messages = recorder.snapshot()
    rows, problems = match(messages, measured)
    states = dict(
        Notification.objects.filter(incident_id__in=measured)
        .values_list("state")
        .annotate(n=Count("pk"))
    )
    fired = FiredStep.objects.filter(incident_id__in=measured).count()
    late = [row["late"] for row in rows]
    received = len(rows)

    split = f" + {args.notify_concurrency} (notifications)" if args.notify_concurrency else ""
    print(f"\nconcurrency {args.concurrency}{split}, received {received} of {args.steps}")
    print(
        f"fired steps {fired}, notifications by state {states}, repeats received "
        f"{problems['repeats']}, unmatched {problems['unknown']}, "
        f"sent more than once by the worker {sum(r['attempts'] > 1 for r in rows)}"
    )
    if not rows:
        print("Nothing arrived; logs in", logdir)
        return 1
    ms = [value * 1000 for value in late]
    p50, p99, worst = pct(ms, 50), pct(ms, 99), max(ms)
    print("\n| lateness (ms) | p50 | p99 | max |")
    print("| --- | ---: | ---: | ---: |")
    for label, key in (
        ("received - due", "late"),
        ("fired - due", "to_fire"),
        ("received - fired", "to_receive"),
    ):
        values = [row[key] * 1000 for row in rows]
        print(f"| {label} | {pct(values, 50):.0f} | {pct(values, 99):.0f} | {max(values):.0f} |")

    print(f"\nBy {SLICE:.0f}-second slice of the window (due time):")
    print(
        "| due in | steps | lateness p50 | p99 | max | fired - due max "
        "| CPU cores: workers | everything else |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    start = min(row["due"] for row in rows)
    slices: dict[int, list[dict]] = {}
    for row in rows:
        slices.setdefault(int((row["due"] - start) // SLICE), []).append(row)
    for index in sorted(slices):
        part = slices[index]
        values = [row["late"] * 1000 for row in part]
        cpu = sampler.between(start + index * SLICE, start + (index + 1) * SLICE)
        cores = f"{cpu['workers']:.2f} | {cpu['rest']:.2f}" if cpu else "- | -"
        print(
            f"| {index * SLICE:.0f}-{(index + 1) * SLICE:.0f} s | {len(part)} | "
            f"{pct(values, 50):.0f} | {pct(values, 99):.0f} | {max(values):.0f} | "
            f"{max(row['to_fire'] for row in part) * 1000:.0f} | {cores} |"
        )

    cpu = sampler.between(sampler.samples[0]["at"], sampler.samples[-1]["at"])
    cpus = os.cpu_count() or 1
    if cpu:
        print(
            f"\nCPU from the first due time to the last message ({cpu['wall']:.0f} s, {cpus} "
            f"CPUs), in cores: machine {cpu['busy']:.2f}, workers {cpu['workers']:.2f}, beat "
            f"{cpu['beat']:.2f}, this process (SMTP server) {cpu['own']:.2f}, everything else "
            f"(PostgreSQL, Redis, other work on the machine) {cpu['rest']:.2f}"
        )

    runtimes = task_runtimes("".join(worker.text() for worker in workers))
    print(
        "Task run time in the workers (from their logs), ms: "
        + "; ".join(
            f"{task} x{len(values)}: {summary(values)}" for task, values in runtimes.items()
        )
    )

    met = p99 <= AIM_P99 * 1000 and worst <= AIM_MAX * 1000 and received == args.steps
    to_fire = [row["to_fire"] for row in rows]
    to_receive = [row["to_receive"] for row in rows]
    share = statistics.mean(to_fire) / max(statistics.mean(late), 1e-9)
    print(
        f"\nlateness ms p50 {p50:.0f}, p99 {p99:.0f}, max {worst:.0f} (aim: p99 <= "
        f"{AIM_P99 * 1000:.0f}, max <= {AIM_MAX * 1000:.0f}): "
        + ("met" if met else "MISSED")
        + f"; concurrency {args.concurrency}"
        + (f"+{args.notify_concurrency}" if args.notify_concurrency else "")
        + f", received {received}/{args.steps}"
        + (f", {args.cpu_hogs} busy loops beside" if args.cpu_hogs else "")
        + "; "
        f"due -> fired {summary(to_fire)}, fired -> received {summary(to_receive)} "
        f"(firing is {share:.0%} of the mean lateness)"
    )
    status = 0 if met else 1
    flush_redis(REDIS_DB, whose="the benchmarks' own", needed=True)
    if args.keep_logs or not met:
        print(f"Celery logs: {logdir}")
    else:
        for proc in procs:
            proc.log.unlink(missing_ok=True)
        logdir.rmdir()
    return status


if __name__ == "__main__":
    sys.exit(main())
