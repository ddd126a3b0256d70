"""Benchmark of the escalation tick: what does one ``run_due()`` cost, with many open incidents?

Run from the project root:

    .venv/bin/python bench/escalation_tick.py
    .venv/bin/python bench/escalation_tick.py --sizes 500,5000 --rounds 2   # a quicker try

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_escalation_tick), creates it if missing and
migrates it. Its incident tables (and with them escalations, fired steps and notifications) are
emptied at the start, so it refuses a database whose name does not contain "bench". Wake-ups
and notification sends are enqueued, as in production, to Redis (REDIS_URL, default
redis://127.0.0.1:6379/14); no worker runs, and that Redis database is flushed at the start and
at the end (so do not run this beside bench/escalation_lateness.py, which uses the same one).

1. Open incidents that are not due, bulk-inserted (incident + escalation row with the P1
   policy snapshot; next_due_at a few minutes to hours ahead for 70 %, NULL - nothing left to
   fire - for 30 %): run_due() at each size (default 1,000 and 10,000), SQL queries and median
   wall time of N runs (default 7) after one warm-up. The query count must not grow.
2. Then, in each of R rounds (default 3), 100 incidents declared through
   incidents.services.declare_incident as P1 (the default policy: the on-call engineer at once,
   a rotation of two people) are due, beside the others; one run_due() fires them (one step
   and one email each): queries, wall time, queries per due incident, and the SQL grouped by
   normalized statement. The incidents fired in one round are open and not due in the next.

"queries" is CaptureQueriesContext's count (it includes BEGIN, COMMIT and the savepoints);
"SQL ms" is the time spent in cursor.execute, from an execute wrapper (so without BEGIN and
COMMIT). Times include the Redis round trips of the on-commit wake-up and send dispatch, as in a
worker. The exit status is 1 when the none-due query count differs between sizes.
"""

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import empty_incident_tables, ensure_database, setup_django  # noqa: E402
from harness import flush_redis  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["DEBUG"] = "true"
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_escalation_tick"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ["LOG_LEVEL"] = "WARNING"  # one "fired" log line per step would time the console

DEFAULT_SIZES = (1_000, 10_000)
DUE = 100
ROUNDS = 3
RUNS = 7
PER_DAY = 200  # bulk incidents per UTC day, on days before today (declare uses today)
CHUNK = 5_000
SEVERITY = "P1"
REDIS_DB = 14


# --- setting up -------------------------------------------------------------------------------


def prepare_organisation():
    """Default scale and policies; a weekly on-call rotation of two people behind the
    on-call-engineer role, and a holder for each lead role."""
    from django.contrib.auth import get_user_model

    from escalation import services
    from escalation.loader import load_preset_policies
    from escalation.models import OrgRole, Rotation
    from incidents.models import SeverityLevel
    from incidents.policy import load_policy

    load_policy("default", only_if_empty=True)
    codes = list(SeverityLevel.objects.filter(preset="default").values_list("code", flat=True))
    load_preset_policies("default", codes)  # reset whatever a previous run may have edited
    User = get_user_model()
    people = {}
    for name in ("olive", "otto", "dev", "back", "front", "em", "cto", "sec", "declarer"):
        people[name], _ = User.objects.get_or_create(
            username=f"bench-esc-{name}",
            defaults={
                "email": f"bench-esc-{name}@example.com",
                "first_name": name.title(),
                "last_name": "Bench",
            },
        )
    rotation, created = Rotation.objects.get_or_create(
        name="Bench escalation primary", defaults={"starts_on": date(2026, 1, 5)}
    )
    if created:
        services.set_rotation_members(
            rotation,
            [people["olive"], people["otto"]],
            effective_at=datetime(2025, 12, 1, tzinfo=UTC),
        )
    OrgRole.objects.filter(slug="on-call-engineer").update(rotation=rotation)
    for slug, name in (
        ("devops-lead", "dev"),
        ("backend-lead", "back"),
        ("frontend-lead", "front"),
        ("engineering-manager", "em"),
        ("cto", "cto"),
        ("security-team", "sec"),
    ):
        role = OrgRole.objects.filter(slug=slug).first()
        if role is not None:
            role.holders.set([people[name]])
    return people


def fill_to(size: int, now: datetime, declarer) -> float:
    """Add open, not-due incidents (with their escalation rows) until there are ``size``."""
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from escalation.engine import policy_steps, step_to_dict
    from escalation.models import Escalation, EscalationPolicy
    from incidents.models import Incident, SeverityLevel, Status

    started = time.perf_counter()
    severity = SeverityLevel.objects.get(code=SEVERITY)
    policy = EscalationPolicy.objects.prefetch_related("steps").get(severity=severity)
    snapshot = [step_to_dict(step, policy.pk) for step in policy_steps(policy)]
    have = Incident.objects.count()
    yesterday = (now - timedelta(days=1)).date()
    with override_settings(DEBUG=False):  # no query log of the multi-megabyte inserts
        for start in range(have, size, CHUNK):
            incidents, escalations = [], []
            for i in range(start, min(size, start + CHUNK)):
                rng = random.Random(i)
                day = yesterday - timedelta(days=i // PER_DAY)
                declared_at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(86_400)
                )
                incidents.append(
                    Incident(
                        public_id=f"INC-{day:%Y%m%d}-{i % PER_DAY + 1:03d}",
                        day=day,
                        sequence=i % PER_DAY + 1,
                        title=f"Open bench incident {i}",
                        severity=severity,
                        status=rng.choice([Status.INVESTIGATING, Status.FIXING, Status.MONITORING]),
                        declared_at=declared_at,
                        declared_by=declarer,
                        detected_at=declared_at,
                        investigation_started_at=declared_at,
                        ack_due_at=declared_at + severity.response_time,
                        resolution_due_at=declared_at + severity.resolution_target,
                    )
                )
                # Not due: the next step is minutes to hours ahead, or nothing is left to fire.
                next_due = (
                    now + timedelta(seconds=rng.randrange(600, 8 * 3600))
                    if rng.random() < 0.7
                    else None
                )
                escalations.append((next_due, declared_at))
            with transaction.atomic():
                Incident.objects.bulk_create(incidents, batch_size=1000)
                Escalation.objects.bulk_create(
                    [
                        Escalation(
                            incident=incident,
                            steps=snapshot,
                            policies=[policy.name],
                            snapshot_at=declared_at,
                            next_due_at=next_due,
                            last_run_at=declared_at,
                        )
                        for incident, (next_due, declared_at) in zip(
                            incidents, escalations, strict=True
                        )
                    ],
                    batch_size=1000,
                )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident; ANALYZE escalation_escalation")
    return time.perf_counter() - started


def declare_due(count: int, by, offset: int) -> list:
    """``count`` incidents declared now through the service: their first step is due at once."""
    from incidents.models import SeverityLevel
    from incidents.services import declare_incident

    severity = SeverityLevel.objects.get(code=SEVERITY)
    return [
        declare_incident(title=f"Due bench incident {offset + n}", severity=severity, by=by)
        for n in range(count)
    ]


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Run:
    result: object
    ms: float  # wall time of run_due()
    queries: list = field(default_factory=list)  # CaptureQueriesContext's
    timed: list = field(default_factory=list)  # (sql, seconds) from an execute wrapper

    @property
    def sql_ms(self) -> float:
        return sum(seconds for _, seconds in self.timed) * 1000


def run_once() -> Run:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from escalation.engine import run_due

    timed = []

    def timer(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timed.append((sql, time.perf_counter() - started))

    # DEBUG keeps the last 9,000 queries; a full log would make the capture come out empty.
    reset_queries()
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
        started = time.perf_counter()
        result = run_due()
        elapsed = (time.perf_counter() - started) * 1000
    return Run(result, elapsed, list(captured.captured_queries), timed)


def measure_idle(runs: int) -> tuple[int, float, float, Run]:
    """Query count, median wall ms and median SQL ms of ``runs`` calls, and the last call."""
    run_once()  # warm-up
    done = [run_once() for _ in range(runs)]
    for run in done:
        if run.result.incidents or run.result.failed:
            sys.exit(f"run_due found work where none is due: {run.result.as_dict()}")
    counts = sorted({len(run.queries) for run in done})
    if len(counts) != 1:
        print(f"  (query count varied between runs: {counts})")
    return (
        counts[-1],
        statistics.median(run.ms for run in done),
        statistics.median(run.sql_ms for run in done),
        done[-1],
    )


def normalize(sql: str) -> str:
    sql = re.sub(r'SAVEPOINT "[^"]+"', "SAVEPOINT ?", sql)
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"\((\?(, )?)+\)", "(...)", sql)
    return re.sub(r"\s+", " ", sql)[:160]


def grouped(timed: list) -> list[tuple[str, int, float]]:
    counts, times = Counter(), Counter()
    for sql, seconds in timed:
        key = normalize(sql)
        counts[key] += 1
        times[key] += seconds * 1000
    return [(sql, counts[sql], times[sql]) for sql, _ in counts.most_common()]


def explain_claim() -> str:
    """PostgreSQL's plan of the claim query run_due() starts every loop with."""
    from django.db import connection, transaction
    from django.utils import timezone

    from incidents.models import Incident

    query = (
        Incident.objects.filter(escalation__next_due_at__lte=timezone.now())
        .select_related("severity")
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("escalation__next_due_at")[:1]
    )
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return "\n".join("    " + row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--due", type=int, default=DUE)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    name = ensure_database(os.environ["DATABASE_URL"], "incident tables")
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from comms.models import Notification
    from escalation.models import FiredStep

    print(f"Database {name}, Redis {os.environ['REDIS_URL']}, {os.cpu_count()} CPUs.")
    flush_redis(
        REDIS_DB,
        whose="the benchmarks' own",
        needed=False,
        unreachable="dispatches will fail fast and be skipped.",
    )
    empty_incident_tables()
    people = prepare_organisation()
    now = timezone.now()

    rows = []  # (label, open, due, queries, ms, sql ms, note)
    idle = {}
    for size in sizes:
        seconds = fill_to(size, now, people["declarer"])
        print(f"Filled to {size:,} open incidents, none due, in {seconds:.1f} s.")
        idle[size] = queries, ms, sql_ms, _ = measure_idle(args.runs)
        rows.append(
            (f"none due, {size:,} open", size, 0, queries, ms, sql_ms, f"median of {args.runs}")
        )
    largest = sizes[-1]
    print("\nClaim query plan at the largest size:\n" + explain_claim())

    due_runs = []
    open_now = largest
    for round_no in range(args.rounds):
        declared = declare_due(args.due, people["declarer"], round_no * args.due)
        run = run_once()
        fired_steps = FiredStep.objects.filter(incident__in=declared).count()
        emails = Notification.objects.filter(incident__in=declared, channel="email").count()
        if run.result.fired != args.due or fired_steps != args.due or run.result.failed:
            print(
                f"  round {round_no + 1}: expected {args.due} firings, got {run.result.as_dict()}"
            )
        open_now += args.due
        due_runs.append(run)
        rows.append(
            (
                f"{args.due} due, round {round_no + 1}",
                open_now,
                args.due,
                len(run.queries),
                run.ms,
                run.sql_ms,
                f"fired {run.result.fired}, {emails} emails",
            )
        )
    after_q, after_ms, after_sql, _ = measure_idle(args.runs)
    rows.append(
        (
            f"none due again, {open_now:,} open",
            open_now,
            0,
            after_q,
            after_ms,
            after_sql,
            "after the rounds",
        )
    )

    print("\n| run_due() | open | due | queries | ms | SQL ms | note |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, open_count, due, queries, ms, sql_ms, note in rows:
        print(
            f"| {label} | {open_count:,} | {due} | {queries} | {ms:.1f} | {sql_ms:.1f} | {note} |"
        )

    idle_counts = {size: idle[size][0] for size in sizes}
    flat = len(set(idle_counts.values())) == 1
    due_queries = statistics.median(len(run.queries) for run in due_runs)
    due_ms = statistics.median(run.ms for run in due_runs)
    due_sql = statistics.median(run.sql_ms for run in due_runs)
    per_incident_q = (due_queries - idle[largest][0]) / args.due
    print(
        f"\nnone due: queries {'/'.join(str(idle_counts[s]) for s in sizes)} at "
        f"{'/'.join(f'{s:,}' for s in sizes)} open (flat: {'yes' if flat else 'NO'}), "
        f"ms {'/'.join(f'{idle[s][1]:.2f}' for s in sizes)}; "
        f"{args.due} due: {due_queries:.0f} queries, {due_ms:.0f} ms of which SQL "
        f"{due_sql:.0f} ms (median of {args.rounds}), {per_incident_q:.1f} queries and "
        f"{due_ms / args.due:.1f} ms per due incident"
    )

    run = sorted(due_runs, key=lambda r: r.ms)[len(due_runs) // 2]
    print(f"\nSQL of the median {args.due}-due run, grouped by normalized statement:")
    print("| count | ms | statement |")
    print("| ---: | ---: | --- |")
    for sql, count, total in grouped(run.timed):
        print(f"| {count} | {total:.1f} | `{sql}` |")
    if not flat:
        print(f"\nSQL of the none-due run at {largest:,} open:")
        for sql, count, total in grouped(idle[largest][3].timed):
            print(f"| {count} | {total:.1f} | `{sql}` |")

    connection.close()
    flush_redis(
        REDIS_DB,
        whose="the benchmarks' own",
        needed=False,
        unreachable="dispatches will fail fast and be skipped.",
    )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
