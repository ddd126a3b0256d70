"""Benchmark of on call: "who is on call" for every rotation at once, and a year of shifts.

Run from the project root:

    .venv/bin/python bench/oncall.py
    .venv/bin/python bench/oncall.py --runs 3   # a quicker try

It uses its own PostgreSQL database (DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/portal_bench_oncall), creates it if missing and migrates it.
The escalation tables of that database (rotations and everything attached to them, contact
profiles; the org roles stay) are emptied at the start, so it refuses a database whose name
does not contain "bench".

It creates 200 rotations (weekly, daily and 12-hour shifts in UTC, Europe/London and
America/New_York), each with 4-8 members drawn from 300 people, a few roster changes in the
past year and about 5 overrides, then measures with CaptureQueriesContext the SQL query count
and the median wall time of N runs (default 7) after one warm-up of:

1. escalation.services.on_call() for 20 and for all 200 rotations at one instant (the query
   count must not grow), and the naive way for comparison: on_call() of one rotation at a time,
   200 calls;
2. escalation.services.shifts() of one weekly and one 12-hour rotation over a year, and the
   pure escalation.rotations.shifts_between() alone on the same rules, roster and overrides.

It prints a table and a final summary line. When the batched call's query count differs
between 20 and 200 rotations, it prints the SQL of both runs grouped by normalized statement,
so the queries that grow are named. When its time per rotation grows more than 1.5x, or a
function whose call count grows faster than the rotations weighs more than 10 % of it, it
prints those functions from a cProfile of one call at each size. The exit status is 1 when the
query counts differ or the batched answers differ from the one-at-a-time answers.
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
from datetime import time as clock
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchdb import ensure_database, setup_django  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["DEBUG"] = "true"
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_oncall")

ROTATIONS = 200
SMALL = 20  # rotations of the smaller batched call
PEOPLE = 300
RUNS = 7
ZONES = ("UTC", "Europe/London", "America/New_York")
YEAR = timedelta(days=365)
SEED = 20240601
# Batched time per rotation may grow this much from 20 to 200 rotations (and a function's call
# count 1.5x as much as the rotations) before the script names what grows, from a profile.
SUPERLINEAR = 1.5


# --- filling ----------------------------------------------------------------------------------


def empty_escalation_tables() -> None:
    """Remove every rotation (with its roster rows, overrides and whatever else hangs off it)
    and every contact profile; keep the org roles, which come from a data migration.

    Through the ORM rather than TRUNCATE: TRUNCATE ... CASCADE would also empty the org roles
    (their rotation foreign key is SET_NULL in Django, not in the database), and the collector
    follows whatever models point at rotations, including ones added later.
    """
    from django.db import transaction

    from escalation.models import ContactProfile, Rotation

    with transaction.atomic():
        Rotation.objects.all().delete()
        ContactProfile.objects.all().delete()


def make_people() -> list:
    from django.contrib.auth import get_user_model

    from escalation.models import ContactProfile

    User = get_user_model()
    names = [f"bench-oncall-{n:03d}" for n in range(PEOPLE)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create(
        User(
            username=name,
            first_name=f"Person{n:03d}",
            last_name="Oncall",
            email=f"{name}@example.com",
            password="!",  # unusable: these people never log in
        )
        for n, name in enumerate(names)
        if name not in existing
    )
    people = list(User.objects.filter(username__in=names).order_by("username"))
    ContactProfile.objects.bulk_create(
        ContactProfile(
            user=person,
            phone=f"+44 20 7946 {n:04d}",
            chat_handle=f"@{person.username}",
            timezone=ZONES[n % len(ZONES)],
        )
        for n, person in enumerate(people)
    )
    return people


@dataclass
class Stats:
    members: int = 0
    roster_changes: int = 0
    overrides: int = 0
    units: Counter = field(default_factory=Counter)


def fill(people: list, now: datetime) -> Stats:
    """200 rotations with roster histories and overrides, by bulk insert."""
    from django.db import transaction

    from escalation.models import Override, Rotation, RotationMember

    rng = random.Random(SEED)
    stats = Stats()
    kinds = [
        # (unit, length, handoff time): weekly, daily, 12-hour
        (Rotation.Unit.WEEKS, 1, clock(9, 0)),
        (Rotation.Unit.DAYS, 1, clock(9, 0)),
        (Rotation.Unit.HOURS, 12, clock(8, 0)),
    ]
    rotations = []
    for n in range(ROTATIONS):
        unit, length, handoff = kinds[n % len(kinds)]
        if unit == Rotation.Unit.WEEKS and rng.random() < 0.3:
            handoff = clock(0, 0)
        if unit == Rotation.Unit.DAYS and rng.random() < 0.2:
            handoff = clock(1, 30)  # skipped / repeated on DST days in London
        rotations.append(
            Rotation(
                name=f"Bench rotation {n:03d}",
                shift_unit=unit,
                shift_length=length,
                handoff_weekday=rng.randrange(7),
                handoff_time=handoff,
                timezone=ZONES[(n // len(kinds)) % len(ZONES)],
                starts_on=(now - timedelta(days=rng.randrange(400, 1100))).date(),
                owner=rng.choice(people),
            )
        )
        stats.units[unit] += 1
    with transaction.atomic():
        Rotation.objects.bulk_create(rotations)
        members, overrides = [], []
        for rotation in rotations:
            roster = rng.sample(people, rng.randrange(4, 9))
            changes = sorted(
                now - timedelta(days=rng.uniform(1, 364))
                for _ in range(rng.choice((0, 1, 1, 2, 3)))
            )
            since = None
            for change in [*changes, None]:
                for position, person in enumerate(roster):
                    members.append(
                        RotationMember(
                            rotation=rotation,
                            user=person,
                            position=position,
                            since=since,
                            until=change,
                        )
                    )
                if change is None:
                    break
                roster = changed_roster(rng, roster, people)
                since = change
                stats.roster_changes += 1
            for _ in range(rng.randrange(3, 8)):
                start = now - YEAR + timedelta(hours=rng.randrange(0, 24 * 395))
                if rng.random() < 0.05:  # some cover the measured instant
                    start = now - timedelta(hours=rng.randrange(1, 24))
                overrides.append(
                    Override(
                        rotation=rotation,
                        user=rng.choice(people),
                        starts_at=start,
                        ends_at=start + timedelta(hours=rng.choice((2, 4, 8, 12, 24, 48))),
                        reason="Generated for the on-call benchmark.",
                    )
                )
        RotationMember.objects.bulk_create(members, batch_size=2000)
        Override.objects.bulk_create(overrides, batch_size=2000)
    stats.members, stats.overrides = len(members), len(overrides)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return stats


def changed_roster(rng: random.Random, roster: list, people: list) -> list:
    """Someone added, someone removed, or the order shuffled; 4 to 8 members."""
    roster = list(roster)
    roll = rng.random()
    if roll < 0.35 and len(roster) < 8:
        roster.insert(
            rng.randrange(len(roster) + 1), rng.choice([p for p in people if p not in roster])
        )
    elif roll < 0.7 and len(roster) > 4:
        roster.pop(rng.randrange(len(roster)))
    elif roll < 0.85:
        rng.shuffle(roster)
    else:  # someone leaves, someone else takes their place
        roster[rng.randrange(len(roster))] = rng.choice([p for p in people if p not in roster])
    return roster


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Measure:
    label: str
    queries: int | None  # None: no database at all
    median_s: float
    sql_s: float = 0.0  # median summed SQL time reported by Django
    spans: int | None = None
    sql: list[dict] = field(default_factory=list)


class SqlTimer:
    """Wall time spent in cursor.execute (round trip and result transfer), to the microsecond.

    CaptureQueriesContext rounds each query's time to the millisecond, too coarse here.
    """

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def measure(label: str, runs: int, call) -> tuple[Measure, object]:
    """Query count and median wall time of ``call()`` over ``runs`` runs after one warm-up."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    times, sql_times, counts, last, result = [], [], [], [], None
    for _ in range(runs):
        timer = SqlTimer()
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            started = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - started)
        counts.append(len(captured.captured_queries))
        sql_times.append(timer.seconds)
        last = list(captured.captured_queries)
    # Every run should agree; report the largest so a flaky extra query shows.
    median = statistics.median
    return Measure(label, max(counts), median(times), median(sql_times), sql=last), result


def measure_pure(label: str, runs: int, call) -> tuple[Measure, object]:
    call()
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return Measure(label, None, statistics.median(times)), result


def answer_key(answer) -> tuple:
    return (
        answer.rotation.pk,
        answer.user.pk if answer.user else None,
        answer.since,
        answer.until,
        answer.is_override,
    )


def pick_rotation(unit: str, zone: str) -> int:
    """The rotation of ``unit`` in ``zone`` with the most roster rows (so: roster changes)."""
    from django.db.models import Count

    from escalation.models import Rotation

    return (
        Rotation.objects.filter(shift_unit=unit, timezone=zone)
        .annotate(rows=Count("members"))
        .order_by("-rows", "pk")
        .values_list("pk", flat=True)
        .first()
    )


# --- reporting --------------------------------------------------------------------------------


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


def print_growth(small: Measure, large: Measure) -> None:
    print(
        f"== {small.queries} -> {large.queries} queries from {small.label} to {large.label}. "
        "SQL by normalized statement (count and ms, small -> large; '*' marks growth):"
    )
    before, after = grouped(small.sql), grouped(large.sql)
    for key, (count, seconds) in sorted(after.items(), key=lambda item: -item[1][0]):
        old_count, old_seconds = before.get(key, (0, 0.0))
        print(
            f"{'*' if count != old_count else ' '} {old_count:>3} -> {count:<3} "
            f"{old_seconds * 1000:8.1f} -> {seconds * 1000:8.1f} ms  {key}"
        )
    for key in before.keys() - after.keys():
        print(f"- {before[key][0]:>3} -> 0   (only in the smaller run)  {key}")
    print()


def call_growth(small_call, large_call) -> tuple[list, float]:
    """Profile one call of each size: the functions whose call count grows superlinearly.

    Returns ((file, line, name), calls small, calls large, own s, cumulative s) sorted by own
    time at the large size, and the large call's profiled total time.
    """
    import cProfile
    import pstats

    stats = []
    for call in (small_call, large_call):
        call()
        profile = cProfile.Profile()
        profile.runcall(call)
        stats.append(pstats.Stats(profile))
    before, after = stats[0].stats, stats[1].stats  # key -> (cc, nc, tt, ct, callers)
    limit = SUPERLINEAR * ROTATIONS / SMALL
    grows = [
        (key, before.get(key, (0, 0))[1], entry[1], entry[2], entry[3])
        for key, entry in after.items()
        if entry[1] > limit * max(before.get(key, (0, 0))[1], 1)
    ]
    grows.sort(key=lambda item: -item[3])
    return grows, stats[1].total_tt


def print_call_growth(grows: list, total: float) -> None:
    print(
        f"== on_call(): functions called more than {SUPERLINEAR * ROTATIONS / SMALL:.0f}x as often "
        f"at {ROTATIONS} as at {SMALL} rotations (calls {SMALL} -> {ROTATIONS}; own and "
        f"cumulative ms at {ROTATIONS}, under cProfile; the whole call took "
        f"{total * 1000:.0f} ms):"
    )
    for (path, line, name), before, after, own, cumulative in grows[:12]:
        where = f"{Path(path).name}:{line}({name})" if line else name
        print(f"  {before:>6} -> {after:<7} {own * 1000:8.1f} {cumulative * 1000:8.1f} ms  {where}")
    print()


def print_table(rows: list[Measure]) -> None:
    header = ["measure", "queries", "median ms", "SQL ms", "spans"]
    lines = [header]
    for m in rows:
        lines.append(
            [
                m.label,
                "-" if m.queries is None else str(m.queries),
                f"{m.median_s * 1000:.2f}",
                "-" if m.queries is None else f"{m.sql_s * 1000:.2f}",
                "" if m.spans is None else str(m.spans),
            ]
        )
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    print()
    for index, line in enumerate(lines):
        print(
            "  ".join(
                cell.rjust(w) if c else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs (default: %(default)s)")
    args = parser.parse_args()
    runs = max(args.runs, 1)

    name = ensure_database(os.environ["DATABASE_URL"], "escalation tables")
    setup_django()
    from escalation import rotations as pure
    from escalation import services
    from escalation.models import Rotation

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    print(
        f"Database {name}; {ROTATIONS} rotations; {runs} runs after 1 warm-up; "
        f"at {now:%Y-%m-%d %H:%M} UTC."
    )
    started = time.perf_counter()
    empty_escalation_tables()
    people = make_people()
    stats = fill(people, now)
    print(
        f"Filled in {time.perf_counter() - started:.1f} s: {ROTATIONS} rotations "
        f"({', '.join(f'{n} {unit}' for unit, n in sorted(stats.units.items()))}), "
        f"{len(people)} people, {stats.members} roster rows, {stats.roster_changes} roster "
        f"changes, {stats.overrides} overrides.",
        flush=True,
    )

    ids = list(Rotation.objects.order_by("name").values_list("pk", flat=True))
    small, small_answers = measure(
        f"on_call(), batched, {SMALL} rotations",
        runs,
        lambda: services.on_call(Rotation.objects.filter(pk__in=ids[:SMALL]), now),
    )
    large, large_answers = measure(
        f"on_call(), batched, {ROTATIONS} rotations",
        runs,
        lambda: services.on_call(None, now),
    )
    # The pure resolver alone on the same rotations, for the share of the batched call that is
    # not SQL or ORM. Overrides of +-8 days: a superset of any shift's (the longest is a week),
    # and covers outside the shift cost the resolver next to nothing.
    loaded = services.with_schedule(start=now - timedelta(days=8), end=now + timedelta(days=8))
    inputs = [
        (services.rules_for(r), services.memberships_of(r), services.covers_of(r)) for r in loaded
    ]
    resolving, _ = measure_pure(
        f"pure on_call_at() alone, {ROTATIONS} rotations",
        runs,
        lambda: [pure.on_call_at(rules, members, covers, now) for rules, members, covers in inputs],
    )
    naive, naive_answers = measure(
        f"on_call(), 1 rotation a call, {ROTATIONS} calls",
        runs,
        lambda: [a for pk in ids for a in services.on_call(Rotation.objects.filter(pk=pk), now)],
    )
    agree = sorted(map(answer_key, large_answers)) == sorted(map(answer_key, naive_answers))
    agree &= sorted(map(answer_key, small_answers)) == sorted(
        answer_key(a) for a in large_answers if a.rotation.pk in set(ids[:SMALL])
    )
    gaps = sum(1 for a in large_answers if a.is_gap)
    covered = sum(1 for a in large_answers if a.is_override)

    start, end = now - YEAR, now
    rows = [small, large, resolving, naive]
    shift_rows = {}
    for unit, zone, label in (
        (Rotation.Unit.WEEKS, "Europe/London", "weekly"),
        (Rotation.Unit.HOURS, "America/New_York", "12-hour"),
    ):
        pk = pick_rotation(unit, zone)
        db, spans = measure(
            f"shifts(), {label} ({zone}), 365 days",
            runs,
            lambda pk=pk: services.shifts(pk, start, end),
        )
        db.spans = len(spans)
        rotation = services.with_schedule(
            Rotation.objects.filter(pk=pk), start=start, end=end
        ).get()
        rules = services.rules_for(rotation)
        members = services.memberships_of(rotation)
        covers = services.covers_of(rotation)
        alone, pure_spans = measure_pure(
            f"rotations.shifts_between() alone, {label}",
            runs,
            lambda rules=rules, members=members, covers=covers: pure.shifts_between(
                rules, members, covers, start, end
            ),
        )
        alone.spans = len(pure_spans)
        rows += [db, alone]
        shift_rows[label] = (db, alone, len(members), len(covers))

    print_table(rows)
    equal = small.queries == large.queries
    ratio = large.median_s / small.median_s
    speedup = naive.median_s / large.median_s
    print(
        f"on_call at {now:%Y-%m-%d %H:%M} UTC: {ROTATIONS - gaps - covered} scheduled, "
        f"{covered} covered by an override, {gaps} gaps; batched and one-at-a-time answers "
        f"agree: {'yes' if agree else 'NO'}."
    )
    rest = large.median_s - large.sql_s - resolving.median_s
    print(
        f"on_call batched, {ROTATIONS} rotations: SQL {large.sql_s * 1000:.1f} ms, pure resolver "
        f"{resolving.median_s * 1000:.1f} ms, the rest (ORM: query sets, prefetch, model "
        f"instances) {rest * 1000:.1f} ms."
    )
    per_small, per_large = small.median_s / SMALL, large.median_s / ROTATIONS
    print(
        f"on_call per rotation: batched {per_small * 1e6:.0f} us at {SMALL}, "
        f"{per_large * 1e6:.0f} us at {ROTATIONS}; one at a time "
        f"{naive.median_s / ROTATIONS * 1e6:.0f} us ({naive.queries / ROTATIONS:.1f} queries each)."
    )
    for label, (db, alone, member_rows, cover_count) in shift_rows.items():
        print(
            f"shifts {label}: {db.spans} spans from {member_rows} roster rows and {cover_count} "
            f"overrides; pure resolver {alone.median_s / db.median_s:.0%} of the call."
        )
    print()
    if not equal:
        print_growth(small, large)
    # Timing is noisy on a shared machine, call counts are not: profile both sizes and show
    # the growth when the time per rotation grows or a superlinear function weighs > 10 %.
    grows, total = call_growth(
        lambda: services.on_call(Rotation.objects.filter(pk__in=ids[:SMALL]), now),
        lambda: services.on_call(None, now),
    )
    heavy = [g for g in grows if g[4] > 0.1 * total]
    if heavy or per_large > SUPERLINEAR * per_small:
        print_call_growth(grows, total)
    weekly, hourly = shift_rows["weekly"][0], shift_rows["12-hour"][0]
    print(
        f"on_call queries {SMALL}/{ROTATIONS}: {small.queries}/{large.queries} "
        f"(equal: {'yes' if equal else 'no'}), time {ROTATIONS}/{SMALL}: {ratio:.2f}, "
        f"batched {large.median_s * 1000:.1f} ms vs one at a time {naive.median_s * 1000:.1f} ms "
        f"({naive.queries} queries): x{speedup:.1f}; per rotation {per_small * 1e6:.0f} -> "
        f"{per_large * 1e6:.0f} us; shifts 365 d: weekly {weekly.queries} q "
        f"{weekly.median_s * 1000:.1f} ms {weekly.spans} spans, 12-hour {hourly.queries} q "
        f"{hourly.median_s * 1000:.1f} ms {hourly.spans} spans"
    )
    return 0 if equal and agree else 1


if __name__ == "__main__":
    sys.exit(main())
