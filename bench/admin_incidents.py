"""Benchmark of the incidents admin: do the changelist and change page stay flat as incidents grow?

Run from the project root:

    .venv/bin/python bench/admin_incidents.py                  # 1,000 then 50,000 incidents
    .venv/bin/python bench/admin_incidents.py --sizes 200,2000 # a quick try

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench), creates it if missing and migrates it. The
incident tables of that database are emptied at the start, so it refuses a database whose name
does not contain "bench".

For each size it fills the table with bulk inserts (incidents plus a few timeline entries, roles,
checklist items and services each; not through declare_incident, which would take hours), logs
in a superuser and a Responder with django.test.Client and measures, for the changelist and one
incident's change page, the SQL query count and the median wall time of 5 requests after one
warm-up. It prints a table, the time ratio largest/smallest size, and, when the query count
changes between sizes or a page gets more than 2x slower, the SQL of the larger run grouped by
normalized statement, so the queries that grow are named.
"""

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench")
# django.test.Client talks to the host "testserver".
os.environ["ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"

DEFAULT_SIZES = (1_000, 50_000)
RUNS = 5
RATIO_LIMIT = 2.0
PER_DAY = 40  # incidents per UTC day: INC-YYYYMMDD-001 ... -040, one day after another
CHUNK = 5_000  # incidents built and inserted per transaction
TITLES = (
    "Checkout API returns 502",
    "Login fails for SSO users",
    "Replication lag on the primary database",
    "Payment webhooks delayed",
    "Error spike after release",
    "Search latency above SLO",
    "Disk filling on worker nodes",
    "Email delivery backlog",
    "Status page not updating",
    "Mobile app cannot sync",
)
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
# Severity code: relative weight. Most incidents are minor, a few are critical.
SEVERITY_WEIGHTS = {"P0": 3, "P1": 12, "P2": 35, "P3": 50}


# --- filling ----------------------------------------------------------------------------------


@dataclass
class World:
    """What the generated rows point at."""

    severities: dict
    types: list
    templates: dict  # type pk -> first checklist template items
    services: list
    people: list
    superuser: object
    responder: object
    target_pk: int | None = None
    newest_day: object = None


def prepare_world() -> World:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from incidents.models import ChecklistTemplateItem, IncidentType, Service, SeverityLevel
    from incidents.policy import load_playbooks, load_policy
    from ops.groups import RESPONDER

    load_policy("default", only_if_empty=True)
    load_playbooks()
    User = get_user_model()
    superuser, _ = User.objects.get_or_create(
        username="bench-admin",
        defaults={"is_staff": True, "is_superuser": True, "email": "bench-admin@example.com"},
    )
    responder, _ = User.objects.get_or_create(
        username="bench-responder",
        defaults={"is_staff": True, "first_name": "Rita", "last_name": "Responder"},
    )
    responder.groups.add(Group.objects.get(name=RESPONDER))
    existing = set(
        User.objects.filter(username__startswith="bench-person-").values_list("username", flat=True)
    )
    User.objects.bulk_create(
        User(
            username=f"bench-person-{n:02d}",
            first_name=f"Person{n:02d}",
            last_name="Bench",
            is_staff=True,
            password="!",  # unusable: these people never log in
        )
        for n in range(40)
        if f"bench-person-{n:02d}" not in existing
    )
    people = list(User.objects.filter(username__startswith="bench-person-").order_by("username"))
    people.append(responder)
    for name in SERVICES:
        Service.objects.get_or_create(name=name)
    types = list(IncidentType.objects.order_by("slug"))
    templates = defaultdict(list)
    for item in ChecklistTemplateItem.objects.order_by("incident_type", "position", "pk"):
        if len(templates[item.incident_type_id]) < 4:
            templates[item.incident_type_id].append(item)
    return World(
        severities={level.code: level for level in SeverityLevel.objects.filter(is_active=True)},
        types=types,
        templates=templates,
        services=list(Service.objects.filter(name__in=SERVICES)),
        people=people,
        superuser=superuser,
        responder=responder,
    )


def fill_to(size: int, world: World, now: datetime) -> float:
    """Add incidents until there are ``size``; return the seconds it took.

    Incident number ``i`` (0 = newest) is declared on day ``i // PER_DAY`` before yesterday,
    as sequence ``i % PER_DAY + 1``: public ids are unique, and filling to a larger size only
    adds older incidents, so the newest page and the measured incident stay the same.
    """
    from django.db import transaction
    from django.test.utils import override_settings

    from incidents.models import Incident

    started = time.perf_counter()
    have = Incident.objects.count()
    # Query logging would keep every multi-megabyte INSERT of the fill in memory.
    with override_settings(DEBUG=False):
        for start in range(have, size, CHUNK):
            with transaction.atomic():
                insert_chunk(range(start, min(size, start + CHUNK)), world, now)
        update_daily_sequences()
    return time.perf_counter() - started


def insert_chunk(indexes: range, world: World, now: datetime) -> None:
    from incidents.models import (
        ChecklistItem,
        Incident,
        IncidentRole,
        Status,
        TimelineEntry,
    )

    Kind, Role = TimelineEntry.Kind, IncidentRole.Role
    newest_day = (now - timedelta(days=1)).date()
    codes = list(SEVERITY_WEIGHTS)
    weights = list(SEVERITY_WEIGHTS.values())
    incidents, plans = [], []
    for i in indexes:
        rng = random.Random(i)
        day = newest_day - timedelta(days=i // PER_DAY)
        sequence = i % PER_DAY + 1
        slot = timedelta(days=1) / PER_DAY
        declared_at = (
            datetime(day.year, day.month, day.day, tzinfo=UTC)
            + slot * (sequence - 1)
            + timedelta(seconds=rng.randrange(int(slot.total_seconds())))
        )
        age = now - declared_at
        code = rng.choices(codes, weights)[0]
        if i == 0:  # the incident whose change page is measured: open, typed, staffed
            code = "P1"
        severity = world.severities[code]
        incident_type = rng.choice(world.types) if rng.random() < 0.8 else None
        if i == 0:
            incident_type = world.types[0]
        is_security = (incident_type is not None and incident_type.implies_security) or (
            rng.random() < 0.03
        )
        if i == 0:
            is_security = False
        status = pick_status(rng, age)
        if i == 0:
            status = Status.FIXING
        # P3's "1 business day" is taken as a calendar day: close enough for a benchmark.
        ack_due_at = declared_at + severity.response_time
        resolution_due_at = declared_at + severity.resolution_target
        acknowledged = status != Status.INVESTIGATING or rng.random() < 0.6
        acknowledged_at = (
            min(declared_at + severity.response_time * rng.uniform(0.1, 1.4), now)
            if acknowledged
            else None
        )
        resolved_at = closed_at = None
        if status in (Status.RESOLVED, Status.CLOSED):
            resolved_at = declared_at + severity.resolution_target * rng.uniform(0.2, 1.3)
            resolved_at = min(resolved_at, now - timedelta(minutes=5))
        if status == Status.CLOSED:
            closed_at = min(resolved_at + timedelta(days=rng.uniform(0.5, 5)), now)
        declared_by = rng.choice(world.people)
        title = rng.choice(TITLES)
        incidents.append(
            Incident(
                public_id=f"INC-{day:%Y%m%d}-{sequence:03d}",
                day=day,
                sequence=sequence,
                title=f"{title} ({rng.choice(SERVICES)})",
                summary=f"{title}. Generated for the admin benchmark.",
                severity=severity,
                status=status,
                incident_type=incident_type,
                detection_source=rng.choice(
                    ["monitoring_alert", "user_report", "health_check", "manual"]
                ),
                users_affected=rng.choice([None, rng.randrange(10, 50_000)]),
                is_security=is_security,
                is_data_loss=rng.random() < 0.02,
                declared_at=declared_at,
                declared_by=declared_by,
                acknowledged_by=rng.choice(world.people) if acknowledged else None,
                detected_at=declared_at - timedelta(minutes=rng.randrange(0, 10)),
                acknowledged_at=acknowledged_at,
                investigation_started_at=declared_at,
                root_cause_identified_at=(
                    declared_at + (resolved_at - declared_at) / 2 if resolved_at else None
                ),
                fix_applied_at=resolved_at - timedelta(minutes=10) if resolved_at else None,
                service_restored_at=resolved_at,
                verification_completed_at=resolved_at,
                resolved_at=resolved_at,
                closed_at=closed_at,
                ack_due_at=ack_due_at,
                resolution_due_at=resolution_due_at,
                time_to_acknowledge=acknowledged_at - declared_at if acknowledged_at else None,
                time_to_resolve=resolved_at - declared_at if resolved_at else None,
            )
        )
        plans.append(rng)
    Incident.objects.bulk_create(incidents, batch_size=1000)
    if indexes.start == 0:
        world.target_pk = incidents[0].pk

    timeline, roles, checklist, links = [], [], [], []
    Link = Incident.affected_services.through
    for incident, rng in zip(incidents, plans, strict=True):
        at = incident.declared_at
        by = incident.declared_by
        timeline.append(
            TimelineEntry(
                incident=incident,
                at=at,
                kind=Kind.DECLARED,
                author=by,
                body=f"declared {incident.severity.code}: {incident.title}",
                data={"severity": incident.severity.code},
            )
        )
        staff = rng.sample(world.people, 3)
        if incident.pk == world.target_pk:
            staff[2] = world.responder
        if incident.acknowledged_at:
            timeline.append(
                TimelineEntry(
                    incident=incident,
                    at=incident.acknowledged_at,
                    kind=Kind.ACKNOWLEDGED,
                    author=incident.acknowledged_by,
                    body="acknowledged",
                )
            )
            start = incident.acknowledged_at
            for role, user in ((Role.COMMANDER, staff[0]), (Role.RESPONDER, staff[2])):
                roles.append(
                    IncidentRole(
                        incident=incident, role=role, user=user, assigned_at=start, assigned_by=by
                    )
                )
                timeline.append(
                    TimelineEntry(
                        incident=incident,
                        at=start,
                        kind=Kind.ROLE_ASSIGNED,
                        author=by,
                        body=f"made {user.username} {role.label.lower()}",
                        data={"role": role.value, "user": user.username},
                    )
                )
            if rng.random() < 0.5:
                roles.append(
                    IncidentRole(
                        incident=incident,
                        role=Role.TECHNICAL_LEAD,
                        user=staff[1],
                        assigned_at=start,
                        assigned_by=staff[0],
                    )
                )
        for n in range(rng.randrange(1, 4)):
            timeline.append(
                TimelineEntry(
                    incident=incident,
                    at=at + timedelta(minutes=5 * (n + 1)),
                    kind=Kind.NOTE,
                    note_kind=rng.choice(TimelineEntry.NoteKind.values),
                    author=rng.choice(staff),
                    body=f"Note {n + 1}: checked dashboards and logs.",
                )
            )
        if incident.resolved_at:
            timeline.append(
                TimelineEntry(
                    incident=incident,
                    at=incident.resolved_at,
                    kind=Kind.STATUS_CHANGED,
                    author=staff[0],
                    body="changed status to Resolved",
                    data={"from": "monitoring", "to": "resolved"},
                )
            )
        if incident.closed_at:
            timeline.append(
                TimelineEntry(
                    incident=incident,
                    at=incident.closed_at,
                    kind=Kind.STATUS_CHANGED,
                    author=staff[0],
                    body="changed status to Closed",
                    data={"from": "resolved", "to": "closed"},
                )
            )
        if incident.incident_type_id:
            done = incident.resolved_at is not None
            for template in world.templates[incident.incident_type_id]:
                checklist.append(
                    ChecklistItem(
                        incident=incident,
                        source_type_id=incident.incident_type_id,
                        position=template.position,
                        phase=template.phase,
                        text=template.text,
                        done_at=incident.resolved_at if done else None,
                        done_by=staff[1] if done else None,
                    )
                )
        for service in rng.sample(world.services, rng.randrange(1, 3)):
            links.append(Link(incident_id=incident.pk, service_id=service.pk))
    TimelineEntry.objects.bulk_create(timeline, batch_size=2000)
    IncidentRole.objects.bulk_create(roles, batch_size=2000)
    ChecklistItem.objects.bulk_create(checklist, batch_size=2000)
    Link.objects.bulk_create(links, batch_size=2000)


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Measure:
    page: str
    user: str
    size: int
    queries: int
    median_s: float
    sql: list[dict] = field(default_factory=list)


def measure(client, url: str) -> tuple[int, float, list[dict]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    warm = client.get(url)
    if warm.status_code != 200:
        raise SystemExit(f"GET {url} answered {warm.status_code}; is the incidents admin there?")
    times, counts, last = [], [], []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        counts.append(len(captured.captured_queries))
        last = list(captured.captured_queries)
    # The count of every run should agree; report the largest so a flaky extra query shows.
    return max(counts), statistics.median(times), last


def measure_size(size: int, world: World) -> list[Measure]:
    from django.test import Client

    pages = {
        "changelist": "/admin/incidents/incident/",
        "change page": f"/admin/incidents/incident/{world.target_pk}/change/",
    }
    results = []
    for label, user in (("superuser", world.superuser), ("responder", world.responder)):
        client = Client()
        client.force_login(user)
        for page, url in pages.items():
            queries, median_s, sql = measure(client, url)
            results.append(Measure(page, label, size, queries, median_s, sql))
    return results


# --- reporting --------------------------------------------------------------------------------


def short(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def normalize(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(?:\.\d+)?\b", "?", sql)
    sql = re.sub(r"\((?:\s*\?\s*,)+\s*\?\s*\)", "(?, ...)", sql)
    return re.sub(r"\s+", " ", sql).strip()


def grouped(sql: list[dict]) -> dict[str, tuple[int, float]]:
    counts: Counter = Counter()
    seconds: defaultdict = defaultdict(float)
    for query in sql:
        key = normalize(query["sql"])
        counts[key] += 1
        seconds[key] += float(query.get("time") or 0)
    return {key: (counts[key], seconds[key]) for key in counts}


def report(results: list[Measure], sizes: list[int]) -> None:
    """Print the table, the growth of any page that is not flat, and the final line."""
    small, large = sizes[0], sizes[-1]
    by_key = {(m.page, m.user, m.size): m for m in results}
    header = ["page", "user"]
    for size in sizes:
        header += [f"queries {short(size)}", f"ms {short(size)}"]
    header.append(f"time {short(large)}/{short(small)}")
    rows = [header]
    worst = {"changelist": 0.0, "change page": 0.0}
    queries_equal = True
    suspects = []
    for page in ("changelist", "change page"):
        for user in ("superuser", "responder"):
            row = [page, user]
            for size in sizes:
                m = by_key[(page, user, size)]
                row += [str(m.queries), f"{m.median_s * 1000:.1f}"]
            first, last = by_key[(page, user, small)], by_key[(page, user, large)]
            ratio = last.median_s / first.median_s
            row.append(f"{ratio:.2f}")
            rows.append(row)
            worst[page] = max(worst[page], ratio)
            same = all(by_key[(page, user, size)].queries == first.queries for size in sizes)
            queries_equal &= same
            if not same or ratio > RATIO_LIMIT:
                suspects.append((first, last, ratio))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    print()
    for index, row in enumerate(rows):
        print(
            "  ".join(
                cell.rjust(w) if c > 1 else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for first, last, ratio in suspects:
        print_growth(first, last, ratio)
    print(
        f"ratio changelist {short(large)}/{short(small)}: {worst['changelist']:.2f}, "
        f"change page {short(large)}/{short(small)}: {worst['change page']:.2f}, "
        f"queries equal: {'yes' if queries_equal else 'no'}"
    )


def print_growth(first: Measure, last: Measure, ratio: float) -> None:
    """The SQL of the larger run grouped by normalized statement, beside the smaller run's."""
    print(
        f"== {last.page} as {last.user}: {first.queries} -> {last.queries} queries, "
        f"time x{ratio:.2f}. SQL of the {short(last.size)} run by normalized statement "
        f"(count and ms at {short(first.size)} -> {short(last.size)}; '*' marks growth):"
    )
    before, after = grouped(first.sql), grouped(last.sql)
    for key, (count, seconds) in sorted(after.items(), key=lambda item: -item[1][1]):
        old_count, old_seconds = before.get(key, (0, 0.0))
        grows = count != old_count or seconds > RATIO_LIMIT * max(old_seconds, 0.0005)
        print(
            f"{'*' if grows else ' '} {old_count:>3} -> {count:<3} "
            f"{old_seconds * 1000:8.1f} -> {seconds * 1000:8.1f} ms  {key}"
        )
    for key in before.keys() - after.keys():
        print(f"- {before[key][0]:>3} -> 0   (only in the smaller run)  {key}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="incident counts to measure, smallest first (default: %(default)s)",
    )
    args = parser.parse_args()
    sizes = sorted(int(size.replace("_", "")) for size in args.sizes.split(","))
    if len(sizes) < 2:
        parser.error("give at least two sizes")

    name = ensure_database(os.environ["DATABASE_URL"], "incident tables")
    setup_django()
    from django.utils import timezone

    print(f"Database {name}; sizes {', '.join(map(str, sizes))}; {RUNS} runs after 1 warm-up.")
    empty_incident_tables(
        "incidents_incident_affected_services",
        "incidents_timelineentry",
        "incidents_incidentrole",
        "incidents_checklistitem",
    )
    world = prepare_world()
    now = timezone.now()
    results = []
    for size in sizes:
        seconds = fill_to(size, world, now)
        print(f"Filled to {size:,} incidents in {seconds:.1f} s; measuring ...", flush=True)
        results += measure_size(size, world)
    report(results, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
