"""Benchmark of the metrics dashboard: two years of incidents, how many queries, how long?

Run from the project root:

    .venv/bin/python bench/metrics.py                     # 100,000 incidents over two years
    .venv/bin/python bench/metrics.py --incidents 10000   # a quicker try
    .venv/bin/python bench/metrics.py --keep              # measure again without refilling

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_metrics), creates it if missing and migrates it.
Its incident tables (with reviews and action items) are emptied and refilled at the start, so it
refuses a database whose name does not contain "bench".

The fill is bulk inserts, not declare_incident: incidents spread evenly over the last 730 days
(P0 3 %, P1 12 %, P2 35 %, P3 50 %; the ten runbook types, the security and data-loss ones
rarer; one or two of ten services; 3 % more security), deadlines from the real SLA rules (P3 in
business days), acknowledged and resolved at 5-115 % of their window (about one in eight misses
each), recent ones often still open, 1 % of old ones never resolved; a commander for each
acknowledged incident; a review for every P0, every P1 that lasted over 4 hours, every security
or data-loss incident and 3 % more (recurring), most of the old ones completed (a quarter of
those late), with 0-3 action items each.

It then measures ``incidents.metrics.dashboard()`` and the page ``/admin/metrics/`` through
django.test.Client, for a superuser and for a Viewer (who may not see security incidents, so
every figure carries the visibility filter), over the two years, the default 90 days and one
severity: SQL queries and the median wall time of N runs (default 5) after one warm-up, with
the time spent in the database. Last, one CSV export of the two years, streamed to the end.
"""

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import (  # noqa: E402
    empty_incident_tables,
    ensure_database,
    pick_status,
    setup_django,
    update_daily_sequences,
)

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["DEBUG"] = "true"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_metrics")
# django.test.Client talks to the host "testserver".
os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"

DAYS = 730
CHUNK = 10_000
AIM_SECONDS = 1.0
SEVERITY_WEIGHTS = {"P0": 3, "P1": 12, "P2": 35, "P3": 50}
SERVICES = (
    "Checkout API",
    "Web app",
    "Identity",
    "Primary database",
    "Payments gateway",
    "Search",
    "Worker fleet",
    "Email",
    "Mobile API",
    "Admin console",
)
TITLES = (
    "Checkout API returns 502",
    "Login fails for SSO users",
    "Replication lag on the primary database",
    "Payment webhooks delayed",
    "Error spike after release",
    "Search latency above SLO",
)


# --- filling ----------------------------------------------------------------------------------


@dataclass
class World:
    severities: dict
    types: list
    services: list
    people: list
    superuser: object
    viewer: object
    calendar: object  # incidents.clock.WorkingCalendar

    @property
    def type_weights(self) -> list[int]:
        # Types that imply a security or data-loss incident (which always gets a review) are
        # rarer than outages and error spikes.
        return [1 if kind.implies_security or kind.implies_data_loss else 10 for kind in self.types]


def prepare_world() -> World:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from incidents.models import IncidentType, Service, SeverityLevel
    from incidents.policy import load_playbooks, load_policy
    from incidents.services import business_calendar
    from ops.groups import VIEWER

    load_policy("default", only_if_empty=True)
    load_playbooks()
    User = get_user_model()
    superuser, _ = User.objects.get_or_create(
        username="bench-admin",
        defaults={"is_staff": True, "is_superuser": True, "email": "bench-admin@example.com"},
    )
    viewer, _ = User.objects.get_or_create(
        username="bench-viewer", defaults={"is_staff": True, "first_name": "Vera"}
    )
    viewer.groups.add(Group.objects.get(name=VIEWER))
    existing = set(
        User.objects.filter(username__startswith="bench-person-").values_list("username", flat=True)
    )
    User.objects.bulk_create(
        User(username=f"bench-person-{n:02d}", is_staff=True, password="!")
        for n in range(30)
        if f"bench-person-{n:02d}" not in existing
    )
    for name in SERVICES:
        Service.objects.get_or_create(name=name)
    return World(
        severities={
            level.code: level
            for level in SeverityLevel.objects.filter(code__in=SEVERITY_WEIGHTS, is_active=True)
        },
        types=list(IncidentType.objects.order_by("slug")),
        services=list(Service.objects.filter(name__in=SERVICES)),
        people=list(User.objects.filter(username__startswith="bench-person-")),
        superuser=superuser,
        viewer=viewer,
        calendar=business_calendar().spec(),
    )


def deadlines(world: World, severity, declared_at: datetime) -> tuple[datetime, datetime]:
    """The real SLA deadlines (P3 counts business days of the business calendar)."""
    from incidents.clock import deadline

    return (
        deadline(
            declared_at,
            severity.response_time,
            in_business_days=severity.response_in_business_days,
            calendar=world.calendar,
        ),
        deadline(
            declared_at,
            severity.resolution_target,
            in_business_days=severity.resolution_in_business_days,
            calendar=world.calendar,
        ),
    )


def fill(count: int, world: World, now: datetime) -> float:
    from django.db import transaction

    started = time.perf_counter()
    rng = random.Random(20260310)
    start = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / count
    sequences: dict[date, int] = {}
    codes = [code for code, weight in SEVERITY_WEIGHTS.items() for _ in range(weight)]
    for first in range(0, count, CHUNK):
        with transaction.atomic():
            insert_chunk(
                range(first, min(first + CHUNK, count)),
                world,
                now,
                rng,
                start,
                step,
                sequences,
                codes,
            )
        print(f"  {min(first + CHUNK, count):,} incidents", flush=True)
    update_daily_sequences()
    return time.perf_counter() - started


def insert_chunk(indexes, world, now, rng, start, step, sequences, codes) -> None:
    from incidents.models import ActionItem, Incident, IncidentRole, Review, Status

    incidents = []
    for index in indexes:
        declared_at = start + step * index + timedelta(seconds=rng.randrange(0, 300))
        day = declared_at.date()
        sequences[day] = sequences.get(day, 0) + 1
        severity = world.severities[rng.choice(codes)]
        incident_type = rng.choices(world.types, weights=world.type_weights)[0]
        ack_due_at, resolution_due_at = deadlines(world, severity, declared_at)
        age = now - declared_at
        status = pick_status(rng, age, old_open=0.01, old_resolved=0.09)
        detected_at = declared_at - timedelta(minutes=rng.randrange(0, 10))
        acknowledged_at = declared_at + (ack_due_at - declared_at) * rng.uniform(0.05, 1.15)
        if acknowledged_at > now or (status == Status.INVESTIGATING and rng.random() < 0.3):
            acknowledged_at = None
        resolved_at = closed_at = None
        if status in (Status.RESOLVED, Status.CLOSED):
            window = resolution_due_at - declared_at
            resolved_at = min(declared_at + window * rng.uniform(0.05, 1.15), now)
            acknowledged_at = min(acknowledged_at or resolved_at, resolved_at)
        if status == Status.CLOSED:
            closed_at = min(resolved_at + timedelta(days=rng.uniform(0.5, 5)), now)
        incidents.append(
            Incident(
                public_id=f"INC-{day:%Y%m%d}-{sequences[day]:03d}",
                day=day,
                sequence=sequences[day],
                title=rng.choice(TITLES),
                severity=severity,
                status=status,
                incident_type=incident_type,
                is_security=incident_type.implies_security or rng.random() < 0.03,
                is_data_loss=incident_type.implies_data_loss or rng.random() < 0.01,
                declared_at=declared_at,
                declared_by=rng.choice(world.people),
                acknowledged_by=rng.choice(world.people) if acknowledged_at else None,
                detected_at=detected_at,
                acknowledged_at=acknowledged_at,
                investigation_started_at=declared_at,
                service_restored_at=resolved_at,
                resolved_at=resolved_at,
                closed_at=closed_at,
                ack_due_at=ack_due_at,
                resolution_due_at=resolution_due_at,
                time_to_acknowledge=acknowledged_at - declared_at if acknowledged_at else None,
                time_to_resolve=resolved_at - detected_at if resolved_at else None,
            )
        )
    Incident.objects.bulk_create(incidents, batch_size=2000)

    links, roles, reviews = [], [], []
    Link = Incident.affected_services.through
    for incident in incidents:
        for service in rng.sample(world.services, rng.randrange(1, 3)):
            links.append(Link(incident_id=incident.pk, service_id=service.pk))
        if incident.acknowledged_at:
            roles.append(
                IncidentRole(
                    incident=incident,
                    role=IncidentRole.Role.COMMANDER,
                    user=incident.acknowledged_by,
                    assigned_at=incident.acknowledged_at,
                )
            )
        review = make_review(incident, rng, now)
        if review is not None:
            reviews.append(review)
    Link.objects.bulk_create(links, batch_size=5000)
    IncidentRole.objects.bulk_create(roles, batch_size=5000)
    Review.objects.bulk_create(reviews, batch_size=2000)
    items = []
    for review in reviews:
        for _ in range(rng.randrange(0, 4)):
            due = (review.created_at + timedelta(days=rng.uniform(7, 30))).date()
            status = ActionItem.State.OPEN
            if due < now.date() - timedelta(days=30):
                status = rng.choices(
                    [
                        ActionItem.State.DONE,
                        ActionItem.State.WONT_DO,
                        ActionItem.State.OPEN,
                        ActionItem.State.IN_PROGRESS,
                    ],
                    weights=[80, 5, 10, 5],
                )[0]
            items.append(
                ActionItem(
                    review=review,
                    action="Add a canary stage to config pushes",
                    owner=rng.choice(world.people),
                    due_date=due,
                    priority=rng.choice(ActionItem.Priority.values),
                    status=status,
                    created_at=review.created_at,
                    closed_at=review.created_at + timedelta(days=5)
                    if status in (ActionItem.State.DONE, ActionItem.State.WONT_DO)
                    else None,
                )
            )
    ActionItem.objects.bulk_create(items, batch_size=5000)


def make_review(incident, rng: random.Random, now: datetime):
    """The runbook's review, when its rules (or a 3 % stand-in for "recurring") ask for one."""
    from incidents.models import Review

    if incident.resolved_at is None:
        return None
    lasted = incident.resolved_at - incident.detected_at
    code = incident.severity.code
    needed = (
        code == "P0"
        or (code == "P1" and lasted > timedelta(hours=4))
        or incident.is_security
        or incident.is_data_loss
        or rng.random() < 0.03
    )
    if not needed:
        return None
    due_at = incident.resolved_at + timedelta(hours=48)
    completed_at = None
    if due_at < now - timedelta(days=7) and rng.random() < 0.85:
        late = rng.random() < 0.25
        completed_at = incident.resolved_at + timedelta(
            hours=rng.uniform(49, 120) if late else rng.uniform(2, 47)
        )
    return Review(
        incident=incident,
        required=True,
        reasons=["benchmark"],
        state=Review.State.COMPLETE if completed_at else Review.State.DRAFT,
        created_at=incident.resolved_at,
        due_at=due_at,
        completed_at=completed_at,
    )


# --- measuring --------------------------------------------------------------------------------


class SqlTimer:
    """Wall time of each cursor.execute, to the microsecond (CaptureQueriesContext rounds)."""

    def __init__(self):
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - started, sql))

    @property
    def seconds(self) -> float:
        return sum(seconds for seconds, _ in self.queries)


@dataclass
class Measure:
    label: str
    queries: int
    median_s: float
    sql_s: float
    statements: list[tuple[float, str]]  # of the last run, slowest first


def measure(label: str, runs: int, call) -> Measure:
    from django.db import connection

    call()
    times, counts, sql_times, last = [], [], [], []
    for _ in range(runs):
        timer = SqlTimer()
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        counts.append(len(timer.queries))
        sql_times.append(timer.seconds)
        last = timer.queries
    statements = sorted(last, key=lambda query: -query[0])
    # Every run should agree; the largest count shows a flaky extra query.
    return Measure(
        label, max(counts), statistics.median(times), statistics.median(sql_times), statements
    )


def run_measures(world: World, now: datetime, runs: int) -> list[Measure]:
    from django.test import Client

    from incidents import metrics
    from incidents.models import Incident

    two_years = metrics.Period(now.date() - timedelta(days=DAYS), now.date())
    default = metrics.Period.last_days(now.date())
    p1 = world.severities["P1"]

    def figures(user, period, severity=None):
        def call():
            scope = Incident.objects.all() if user is None else Incident.objects.visible_to(user)
            return metrics.dashboard(scope, period, severity, now=now)

        return call

    def page(user, params):
        client = Client()
        client.force_login(user)

        def call():
            response = client.get("/admin/metrics/", params)
            assert response.status_code == 200, response.status_code

        return call

    years = {"start": two_years.start.isoformat(), "end": two_years.end.isoformat()}
    results = [
        measure("dashboard(), all incidents, 2 years", runs, figures(None, two_years)),
        measure("dashboard(), Viewer, 2 years", runs, figures(world.viewer, two_years)),
        measure("dashboard(), all incidents, 90 days", runs, figures(None, default)),
        measure("dashboard(), all incidents, P1, 2 years", runs, figures(None, two_years, p1)),
        measure("page, superuser, 2 years", runs, page(world.superuser, years)),
        measure("page, Viewer, 2 years", runs, page(world.viewer, years)),
        measure("page, superuser, default 90 days", runs, page(world.superuser, {})),
    ]
    client = Client()
    client.force_login(world.superuser)
    rows = 0

    def export():
        nonlocal rows
        response = client.get("/admin/metrics/export.csv", years)
        rows = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1

    results.append(measure("CSV export, superuser, 2 years", 1, export))
    results[-1].label += f" ({rows:,} rows)"
    return results


def describe(now: datetime) -> None:
    """What the two years hold, as the dashboard counts it."""
    from incidents import metrics
    from incidents.models import Incident

    period = metrics.Period(now.date() - timedelta(days=DAYS), now.date())
    figures = metrics.dashboard(Incident.objects.all(), period, now=now)
    print(
        f"{figures.count:,} incidents, {figures.breached:,} breached (ack "
        f"{figures.acknowledge.percent}, resolution {figures.resolution.percent} in time), "
        f"{figures.reviews.count:,} reviews ({figures.reviews.overdue:,} overdue), "
        f"{figures.action_items.count:,} action items ({figures.action_items.overdue:,} overdue)."
    )


def report(results: list[Measure], count: int) -> int:
    width = max(len(m.label) for m in results)
    print()
    print(f"{'measure'.ljust(width)}  queries  median ms  SQL ms")
    print(f"{'-' * width}  -------  ---------  ------")
    for m in results:
        print(
            f"{m.label.ljust(width)}  {m.queries:>7}  {m.median_s * 1000:>9.1f}  "
            f"{m.sql_s * 1000:>6.1f}"
        )
    first = results[0]
    print(f"\nStatements of '{first.label}', slowest first:")
    for seconds, sql in first.statements:
        print(f"  {seconds * 1000:7.1f} ms  {' '.join(sql.split())[:110]}")
    pages = [m for m in results if m.label.startswith(("dashboard", "page"))]
    worst = max(pages, key=lambda m: m.median_s)
    verdict = "yes" if worst.median_s < AIM_SECONDS else "no"
    print(
        f"\n{count:,} incidents: slowest dashboard measure {worst.median_s * 1000:.0f} ms "
        f"({worst.label}); under {AIM_SECONDS:.0f} s: {verdict}"
    )
    return 0 if worst.median_s < AIM_SECONDS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="measure the existing data again")
    args = parser.parse_args()

    name = ensure_database(os.environ["DATABASE_URL"], "incident tables")
    setup_django()
    from django.utils import timezone

    from incidents.models import Incident

    world = prepare_world()
    now = timezone.now()
    if args.keep:
        count = Incident.objects.count()
        print(f"Database {name}: measuring the {count:,} incidents already there.")
    else:
        print(f"Database {name}: filling {args.incidents:,} incidents over {DAYS} days ...")
        empty_incident_tables(
            "incidents_incident_affected_services",
            "incidents_incidentrole",
            "incidents_timelineentry",
            "incidents_checklistitem",
            "incidents_review",
            "incidents_actionitem",
            "incidents_historicalreview",
            "incidents_historicalactionitem",
        )
        seconds = fill(args.incidents, world, now)
        count = args.incidents
        print(f"Filled in {seconds:.1f} s.")
    describe(now)
    print(f"Measuring, median of {args.runs} runs after one warm-up ...", flush=True)
    return report(run_measures(world, now, args.runs), count)


if __name__ == "__main__":
    sys.exit(main())
