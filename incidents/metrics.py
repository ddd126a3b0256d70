"""Incident metrics: SLA figures for a period, their breakdowns, and the rows behind them.

Every figure is an aggregate computed by the database. Nothing here loads incidents to count them
in Python, so the dashboard costs the same number of queries for twenty incidents as for two
years of them (tests/incidents/test_metrics.py asserts it; bench/metrics.py times 100,000).

Definitions (docs/incidents.md, "Metrics"):

* The period holds the incidents *declared* from ``start`` 00:00 UTC to ``end`` 24:00 UTC.
* Time to acknowledge counts from declaration, time to resolve from detection (the stored
  ``time_to_acknowledge`` and ``time_to_resolve``), over the incidents that have one.
* An acknowledgement is met when it happened by ``ack_due_at`` and missed when it happened later
  or has not happened and the deadline has passed; an incident still inside its window counts in
  neither. Compliance is met / (met + missed). Resolution likewise with ``resolution_due_at``.
  These are the rules of ``Incident.is_ack_breached`` and ``IncidentQuerySet.breached``.
"""

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import TruncMonth

from .models import OPEN_STATUSES, ActionItem, Incident, Review, SeverityLevel

BREACHES_SHOWN = 50
DEFAULT_DAYS = 90
NO_TYPE = "No type"
NO_SERVICE = "No service"


class Median(Aggregate):
    """PostgreSQL's interpolated 50th percentile (an ordered-set aggregate, not in Django)."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


class JoinedNames(Aggregate):
    """Names joined with ", " in one value: STRING_AGG on PostgreSQL, GROUP_CONCAT on SQLite."""

    function = "STRING_AGG"
    name = "JoinedNames"
    template = "%(function)s(%(expressions)s, ', ' ORDER BY %(expressions)s)"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            function="GROUP_CONCAT",
            template="%(function)s(%(expressions)s, ', ')",
            **extra_context,
        )


# --- the period and the conditions ----------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @classmethod
    def last_days(cls, today: date, days: int = DEFAULT_DAYS) -> "Period":
        return cls(today - timedelta(days=days - 1), today)

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def months(self) -> list[date]:
        """The first day of every month the period touches."""
        months, month = [], self.start.replace(day=1)
        while month <= self.end:
            months.append(month)
            month = (month + timedelta(days=32)).replace(day=1)
        return months


def ack_met() -> Q:
    return Q(acknowledged_at__lte=F("ack_due_at"))


def ack_missed(now: datetime) -> Q:
    return Q(acknowledged_at__gt=F("ack_due_at")) | Q(
        acknowledged_at__isnull=True, ack_due_at__lt=now
    )


def resolution_met() -> Q:
    return Q(resolved_at__lte=F("resolution_due_at"))


def resolution_missed(now: datetime) -> Q:
    return Q(resolved_at__gt=F("resolution_due_at")) | Q(
        resolved_at__isnull=True, resolution_due_at__lt=now
    )


def breached(now: datetime) -> Q:
    return ack_missed(now) | resolution_missed(now)


def incidents_in(
    incidents: QuerySet, period: Period, severity: SeverityLevel | None = None
) -> QuerySet:
    """The caller's incidents (already limited to what the user may see) in the period."""
    chosen = incidents.filter(declared_at__gte=period.since, declared_at__lt=period.until)
    return chosen.filter(severity=severity) if severity is not None else chosen


# --- the figures ----------------------------------------------------------------------------


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


@dataclass(frozen=True)
class Timing:
    """Mean and median of one duration over the incidents that have it."""

    count: int
    mean: timedelta | None
    median: timedelta | None


@dataclass(frozen=True)
class Compliance:
    met: int
    missed: int
    pending: int  # not done yet and still inside the window: neither met nor missed

    @property
    def share(self) -> float | None:
        return share(self.met, self.met + self.missed)

    @property
    def percent(self) -> str:
        return percent(self.share)


@dataclass(frozen=True)
class Group:
    """One line of a breakdown (a month, a type, a service)."""

    label: str
    count: int
    breached: int
    key: object = None


@dataclass(frozen=True)
class SeverityFigures:
    code: str
    name: str
    rank: int
    count: int
    breached: int
    acknowledge: Compliance
    resolution: Compliance
    mean_to_acknowledge: timedelta | None
    mean_to_resolve: timedelta | None


@dataclass(frozen=True)
class Breach:
    pk: int
    public_id: str
    title: str
    severity_code: str
    severity_rank: int
    status: str
    declared_at: datetime
    ack_due_at: datetime
    acknowledged_at: datetime | None
    resolution_due_at: datetime
    resolved_at: datetime | None
    ack_late: timedelta | None  # how far past the deadline (so far, when still not done)
    resolution_late: timedelta | None


@dataclass(frozen=True)
class ReviewFigures:
    count: int
    completed: int
    on_time: int  # completed by its due time (or with none set)
    overdue: int  # required, still a draft, past its due time
    pending: int  # drafts not yet due

    @property
    def late(self) -> int:
        return self.completed - self.on_time

    @property
    def share_on_time(self) -> float | None:
        """On time out of the reviews whose outcome is known: completed or overdue."""
        return share(self.on_time, self.completed + self.overdue)

    @property
    def percent_on_time(self) -> str:
        return percent(self.share_on_time)


@dataclass(frozen=True)
class ActionItemFigures:
    count: int
    open: int  # open or in progress
    overdue: int  # open, due date passed
    done: int
    wont_do: int


@dataclass(frozen=True)
class Dashboard:
    period: Period
    severity: SeverityLevel | None
    now: datetime
    count: int
    open: int
    breached: int
    to_acknowledge: Timing
    to_resolve: Timing
    acknowledge: Compliance
    resolution: Compliance
    breaches: list[Breach]
    months: list[Group]
    severities: list[SeverityFigures]
    by_type: list[Group]
    by_service: list[Group]
    reviews: ReviewFigures
    action_items: ActionItemFigures


def dashboard(
    incidents: QuerySet,
    period: Period,
    severity: SeverityLevel | None = None,
    *,
    now: datetime,
    breaches_shown: int = BREACHES_SHOWN,
) -> Dashboard:
    """Every figure of the metrics page in a fixed number of queries, whatever the data.

    8 on PostgreSQL; SQLite takes two more, for the medians.
    """
    chosen = incidents_in(incidents, period, severity)
    totals = _totals(chosen, now)
    if connection.vendor != "postgresql":
        totals["median_ack"] = median_by_offset(
            chosen, "time_to_acknowledge", totals["acknowledged"]
        )
        totals["median_resolve"] = median_by_offset(chosen, "time_to_resolve", totals["resolved"])
    return Dashboard(
        period=period,
        severity=severity,
        now=now,
        count=totals["count"],
        open=totals["open"],
        breached=totals["breached"],
        to_acknowledge=Timing(totals["acknowledged"], totals["mean_ack"], totals["median_ack"]),
        to_resolve=Timing(totals["resolved"], totals["mean_resolve"], totals["median_resolve"]),
        acknowledge=_compliance(totals, "ack"),
        resolution=_compliance(totals, "resolution"),
        breaches=_breaches(chosen, now, breaches_shown),
        months=_months(chosen, period, now),
        severities=_severities(chosen, now),
        by_type=_grouped(chosen, "incident_type__name", NO_TYPE, now),
        by_service=_grouped(chosen, "affected_services__name", NO_SERVICE, now),
        reviews=_reviews(chosen, now),
        action_items=_action_items(chosen, now),
    )


def _compliance_counts(now: datetime) -> dict:
    return {
        "ack_met": Count("pk", filter=ack_met()),
        "ack_missed": Count("pk", filter=ack_missed(now)),
        "resolution_met": Count("pk", filter=resolution_met()),
        "resolution_missed": Count("pk", filter=resolution_missed(now)),
    }


def _compliance(row: dict, kind: str) -> Compliance:
    met, missed = row[f"{kind}_met"], row[f"{kind}_missed"]
    return Compliance(met, missed, row["count"] - met - missed)


def _totals(chosen: QuerySet, now: datetime) -> dict:
    aggregates = {
        "count": Count("pk"),
        "open": Count("pk", filter=Q(status__in=OPEN_STATUSES)),
        "breached": Count("pk", filter=breached(now)),
        "acknowledged": Count("time_to_acknowledge"),
        "resolved": Count("time_to_resolve"),
        "mean_ack": Avg("time_to_acknowledge"),
        "mean_resolve": Avg("time_to_resolve"),
        **_compliance_counts(now),
    }
    if connection.vendor == "postgresql":
        aggregates["median_ack"] = Median("time_to_acknowledge")
        aggregates["median_resolve"] = Median("time_to_resolve")
    return chosen.aggregate(**aggregates)


def median_by_offset(chosen: QuerySet, field_name: str, count: int) -> timedelta | None:
    """The median without an ordered-set aggregate (SQLite): read only the middle one or two.

    ``count`` is the number of non-null values, known from the totals query. The query runs
    even when it is 0, so the number of queries does not depend on the data.
    """
    middle = (
        chosen.filter(**{f"{field_name}__isnull": False})
        .order_by(field_name)
        .values_list(field_name, flat=True)[max(count - 1, 0) // 2 : count // 2 + 1]
    )
    values = list(middle)
    if not count or not values:
        return None
    return sum(values, timedelta()) / len(values)


def _breaches(chosen: QuerySet, now: datetime, limit: int) -> list[Breach]:
    rows = (
        chosen.filter(breached(now))
        .select_related("severity")
        .order_by("-declared_at", "-pk")[:limit]
    )
    found = []
    for incident in rows:
        ack_late = resolution_late = None
        if incident.is_ack_breached(now):
            ack_late = (incident.acknowledged_at or now) - incident.ack_due_at
        if incident.is_resolution_breached(now):
            resolution_late = (incident.resolved_at or now) - incident.resolution_due_at
        found.append(
            Breach(
                pk=incident.pk,
                public_id=incident.public_id,
                title=incident.title,
                severity_code=incident.severity.code,
                severity_rank=incident.severity.rank,
                status=incident.get_status_display(),
                declared_at=incident.declared_at,
                ack_due_at=incident.ack_due_at,
                acknowledged_at=incident.acknowledged_at,
                resolution_due_at=incident.resolution_due_at,
                resolved_at=incident.resolved_at,
                ack_late=ack_late,
                resolution_late=resolution_late,
            )
        )
    return found


def _months(chosen: QuerySet, period: Period, now: datetime) -> list[Group]:
    """One group per month of the period, months without incidents included as zero."""
    rows = (
        chosen.annotate(month=TruncMonth("declared_at", tzinfo=UTC))
        .values("month")
        .annotate(count=Count("pk"), breached=Count("pk", filter=breached(now)))
        .order_by("month")
    )
    counted = {_as_date(row["month"]): row for row in rows}
    groups = []
    for month in period.months():
        row = counted.get(month, {"count": 0, "breached": 0})
        groups.append(Group(f"{month:%b %Y}", row["count"], row["breached"], key=month))
    return groups


def _as_date(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _severities(chosen: QuerySet, now: datetime) -> list[SeverityFigures]:
    rows = (
        chosen.values("severity__code", "severity__name", "severity__rank")
        .annotate(
            count=Count("pk"),
            breached=Count("pk", filter=breached(now)),
            mean_ack=Avg("time_to_acknowledge"),
            mean_resolve=Avg("time_to_resolve"),
            **_compliance_counts(now),
        )
        .order_by("severity__rank", "severity__code")
    )
    return [
        SeverityFigures(
            code=row["severity__code"],
            name=row["severity__name"],
            rank=row["severity__rank"],
            count=row["count"],
            breached=row["breached"],
            acknowledge=_compliance(row, "ack"),
            resolution=_compliance(row, "resolution"),
            mean_to_acknowledge=row["mean_ack"],
            mean_to_resolve=row["mean_resolve"],
        )
        for row in rows
    ]


def _grouped(chosen: QuerySet, lookup: str, missing: str, now: datetime) -> list[Group]:
    """Incidents per value of ``lookup``, most first.

    For a many-to-many lookup an incident counts once for each of its values, so the counts
    add up to more than the incidents; one without any counts under ``missing``.
    """
    rows = (
        chosen.values(lookup)
        .annotate(count=Count("pk"), breached=Count("pk", filter=breached(now)))
        .order_by("-count", lookup)
    )
    return [Group(row[lookup] or missing, row["count"], row["breached"]) for row in rows]


def _reviews(chosen: QuerySet, now: datetime) -> ReviewFigures:
    complete = Q(state=Review.State.COMPLETE)
    draft = Q(state=Review.State.DRAFT)
    overdue = Review.overdue_at(now)
    totals = Review.objects.filter(incident__in=chosen.values("pk")).aggregate(
        count=Count("pk"),
        completed=Count("pk", filter=complete),
        on_time=Count(
            "pk", filter=complete & (Q(due_at__isnull=True) | Q(completed_at__lte=F("due_at")))
        ),
        overdue=Count("pk", filter=overdue),
        pending=Count("pk", filter=draft & ~overdue),
    )
    return ReviewFigures(**totals)


def _action_items(chosen: QuerySet, now: datetime) -> ActionItemFigures:
    is_open = Q(status__in=ActionItem.OPEN_STATES)
    totals = ActionItem.objects.filter(review__incident__in=chosen.values("pk")).aggregate(
        count=Count("pk"),
        open=Count("pk", filter=is_open),
        overdue=Count("pk", filter=ActionItem.overdue_on(now.date())),
        done=Count("pk", filter=Q(status=ActionItem.State.DONE)),
        wont_do=Count("pk", filter=Q(status=ActionItem.State.WONT_DO)),
    )
    return ActionItemFigures(**totals)


# --- the rows behind the figures (CSV) ------------------------------------------------------

CSV_HEADER = [
    "id",
    "title",
    "severity",
    "type",
    "services",
    "declared (UTC)",
    "acknowledged (UTC)",
    "resolved (UTC)",
    "time to acknowledge (min)",
    "time to resolve (min)",
    "ack breached",
    "resolution breached",
    "review",
]
CSV_CHUNK = 2000


def _flag(condition: Q) -> Case:
    # A bare condition would be NULL for some rows (NULL > x); the export wants yes or no.
    return Case(
        When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()
    )


def csv_rows(
    incidents: QuerySet,
    period: Period,
    severity: SeverityLevel | None = None,
    *,
    now: datetime,
) -> Iterator[list[str]]:
    """The header, then one line per incident of the period, oldest first, streamed in chunks."""
    yield CSV_HEADER
    services = (
        Incident.affected_services.through.objects.filter(incident_id=OuterRef("pk"))
        .order_by()
        .values("incident_id")
        .annotate(names=JoinedNames("service__name"))
        .values("names")
    )
    rows = (
        incidents_in(incidents, period, severity)
        .annotate(
            services=Subquery(services, output_field=CharField()),
            ack_breached=_flag(ack_missed(now)),
            resolution_breached=_flag(resolution_missed(now)),
        )
        .order_by("declared_at", "pk")
        .values_list(
            "public_id",
            "title",
            "severity__code",
            "incident_type__name",
            "services",
            "declared_at",
            "acknowledged_at",
            "resolved_at",
            "time_to_acknowledge",
            "time_to_resolve",
            "ack_breached",
            "resolution_breached",
            "review__state",
        )
    )
    for row in rows.iterator(chunk_size=CSV_CHUNK):
        (public_id, title, code, type_name, names, declared, acked, resolved) = row[:8]
        (to_ack, to_resolve, ack_late, resolution_late, review_state) = row[8:]
        yield [
            public_id,
            _cell(title),
            code,
            _cell(type_name or ""),
            _cell(names or ""),
            _timestamp(declared),
            _timestamp(acked),
            _timestamp(resolved),
            _minutes(to_ack),
            _minutes(to_resolve),
            "yes" if ack_late else "no",
            "yes" if resolution_late else "no",
            review_state or "",
        ]


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with one of these as a formula; titles are typed
    # by anyone who may declare, so they are quoted.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _timestamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _minutes(value: timedelta | None) -> str:
    return "" if value is None else f"{value.total_seconds() / 60:.1f}"


class _Echo:
    """The file csv.writer wants: hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)
