"""The public status page: what the public may see, computed from rows (docs/status-page.md).

Everything here reads; nothing writes. ``build`` loads a whole page in a constant number of
queries (one per table, prefetched), whatever the size of the history, and the rest are pure
functions over what it loaded, so the HTML page, the Atom feed and the JSON summary show the
same thing.

What is public is decided in one place, ``_public_incidents``: an incident whose communications
row says ``is_public`` and that is not a security incident (a security incident never appears,
even when someone ticked "on the status page"). Its internal fields are never even loaded: the
query selects the public title and impact, the status, the times and the severity rank, and the
updates' public text, status and time.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Prefetch, Q

from incidents.models import OPEN_STATUSES, Incident, Service, Status

from . import rendering
from .models import CommsSettings, IncidentUpdate, Maintenance, ServiceState, StatusPageService

WINDOW_DAYS = 90
RECENT = timedelta(days=7)

_ORDER = {state: index for index, state in enumerate(ServiceState)}
_OK = ServiceState.OPERATIONAL


def worst(states: Iterable[str]) -> ServiceState:
    """The worst of some states (ServiceState is declared best first); none is operational."""
    return max((ServiceState(state) for state in states), key=_ORDER.__getitem__, default=_OK)


def severity_impact(rank: int) -> ServiceState:
    """What an incident shows when its commander did not say: the most severe level is a
    major outage, the next a partial outage, anything milder degraded performance."""
    if rank == 0:
        return ServiceState.MAJOR
    if rank == 1:
        return ServiceState.PARTIAL
    return ServiceState.DEGRADED


def service_state(
    override: str, incident_impacts: Iterable[str], under_maintenance: bool
) -> ServiceState:
    """A public service's state: set by hand, else the worst of its open public incidents and
    an ongoing maintenance."""
    if override:
        return ServiceState(override)
    states = list(incident_impacts)
    if under_maintenance:
        states.append(ServiceState.MAINTENANCE)
    return worst(states)


def banner(state: str) -> str:
    return "All systems operational" if state == _OK else ServiceState(state).label


def _status_label(value: str) -> str:
    try:
        return Status(value).label
    except ValueError:
        return value.replace("_", " ").capitalize()


def maintenance_phase(starts_at: datetime, ends_at: datetime, now: datetime) -> str:
    """ "upcoming", "ongoing" or "past" (the page, the summary and the admin's column)."""
    if now < starts_at:
        return "upcoming"
    return "ongoing" if now < ends_at else "past"


def window_days(now: datetime) -> list[date]:
    """The last WINDOW_DAYS UTC days, oldest first, today last."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=offset) for offset in range(WINDOW_DAYS - 1, -1, -1)]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- What is loaded ------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicUpdate:
    pk: int
    at: datetime
    status: str
    status_label: str
    text: str


@dataclass
class PublicIncident:
    pk: int
    title: str
    status: str
    status_label: str
    impact: ServiceState
    started_at: datetime
    ended_at: datetime | None  # None while open
    service_ids: frozenset[int]  # the public services it affects
    service_names: list[str]
    updates: list[PublicUpdate]  # newest first

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass
class MaintenanceWindow:
    pk: int
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    service_ids: frozenset[int]
    service_names: list[str]
    phase: str  # "upcoming", "ongoing" or "past"


@dataclass(frozen=True)
class Day:
    day: date
    state: ServiceState
    incident_titles: tuple[str, ...] = ()
    maintenance_titles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        text = f"{self.day:%d %b %Y}: "
        if self.state == _OK:
            return text + "no incidents"
        events = [*self.incident_titles, *(f"maintenance: {t}" for t in self.maintenance_titles)]
        return text + f"{self.state.label} ({'; '.join(events)})"


@dataclass
class ServiceRow:
    pk: int
    name: str
    description: str
    state: ServiceState
    is_set_by_hand: bool
    days: list[Day]

    @property
    def incident_days(self) -> int:
        return sum(1 for day in self.days if day.incident_titles)


@dataclass
class StatusPage:
    title: str
    now: datetime
    state: ServiceState
    services: list[ServiceRow]
    incidents: list[PublicIncident]  # every public incident of the window, newest first
    maintenance: list[MaintenanceWindow]  # every window not over before the window, latest first
    updated_at: datetime | None

    @property
    def banner(self) -> str:
        return banner(self.state)

    @property
    def active(self) -> list[PublicIncident]:
        return [incident for incident in self.incidents if incident.is_open]

    @property
    def recently_resolved(self) -> list[PublicIncident]:
        since = self.now - RECENT
        resolved = [i for i in self.incidents if not i.is_open and i.ended_at >= since]
        return sorted(resolved, key=lambda incident: incident.ended_at, reverse=True)

    @property
    def ongoing_maintenance(self) -> list[MaintenanceWindow]:
        return sorted(
            (m for m in self.maintenance if m.phase == "ongoing"), key=lambda m: m.starts_at
        )

    @property
    def upcoming_maintenance(self) -> list[MaintenanceWindow]:
        return sorted(
            (m for m in self.maintenance if m.phase == "upcoming"), key=lambda m: m.starts_at
        )


# --- Loading ---------------------------------------------------------------------------------


def _public_incidents(window_start: datetime, now: datetime):
    """Public incidents open now or ended inside the window, with their public updates.

    ``only`` keeps the internal fields (title, summary, impact scope, public id) out of the
    query altogether, and the updates' prefetch loads nothing but their public text."""
    updates = (
        IncidentUpdate.objects.exclude(public_text="")
        .only("id", "incident", "posted_at", "status", "public_text")
        .order_by("-posted_at", "-pk")
    )
    ended_in_window = Q(resolved_at__gte=window_start) | Q(
        resolved_at__isnull=True, closed_at__gte=window_start
    )
    return (
        Incident.objects.filter(comms__is_public=True, is_security=False, declared_at__lte=now)
        .filter(Q(status__in=OPEN_STATUSES) | ended_in_window)
        .select_related("severity", "comms")
        .only(
            "id",
            "status",
            "declared_at",
            "resolved_at",
            "closed_at",
            "is_security",
            "severity__rank",
            "comms__is_public",
            "comms__public_title",
            "comms__public_impact",
        )
        .prefetch_related(
            Prefetch("affected_services", queryset=Service.objects.only("id"), to_attr="ids"),
            Prefetch("updates", queryset=updates, to_attr="public_updates"),
        )
        .order_by("-declared_at", "-pk")
    )


def _incident(
    row: Incident, behind: list[tuple[StatusPageService, set[int]]], now: datetime
) -> PublicIncident:
    internal = {service.pk for service in row.ids}
    affected = [service for service, inner in behind if internal & inner]
    names = [service.name for service in affected]
    comms = row.comms
    # comms.rendering.public_title's fallback, from what is already loaded.
    title = comms.public_title or rendering.fallback_title(", ".join(names))
    return PublicIncident(
        pk=row.pk,
        title=title,
        status=row.status,
        status_label=row.get_status_display(),
        impact=ServiceState(comms.public_impact or severity_impact(row.severity.rank)),
        started_at=row.declared_at,
        ended_at=None if row.is_open else min(row.resolved_at or row.closed_at or now, now),
        service_ids=frozenset(service.pk for service in affected),
        service_names=names,
        updates=[
            PublicUpdate(
                pk=update.pk,
                at=update.posted_at,
                status=update.status,
                status_label=_status_label(update.status),
                text=update.public_text.strip(),
            )
            for update in row.public_updates
            if update.public_text.strip()
        ],
    )


def _maintenance(
    row: Maintenance, names: dict[int, str], order: dict[int, int], now: datetime
) -> MaintenanceWindow:
    ids = sorted((service.pk for service in row.services.all()), key=order.__getitem__)
    return MaintenanceWindow(
        pk=row.pk,
        title=row.title,
        description=row.description,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        service_ids=frozenset(ids),
        service_names=[names[pk] for pk in ids],
        phase=maintenance_phase(row.starts_at, row.ends_at, now),
    )


def day_row(
    days: list[date],
    incidents: Iterable[PublicIncident],
    maintenance: Iterable[MaintenanceWindow],
    now: datetime,
) -> list[Day]:
    """One Day per UTC day: the worst state of the incidents and maintenance overlapping it.

    An incident counts from its declaration to its resolution (or now); maintenance only for
    the part already under way, so a window planned for tonight does not colour today."""
    first = days[0]
    states: list[list[str]] = [[] for _ in days]
    incident_titles: list[list[str]] = [[] for _ in days]
    maintenance_titles: list[list[str]] = [[] for _ in days]

    def mark(start: datetime, end: datetime, state: str, title: str, titles) -> None:
        if start > now:
            return
        end = min(end, now)
        low = max((start.astimezone(UTC).date() - first).days, 0)
        high = min((end.astimezone(UTC).date() - first).days, len(days) - 1)
        for index in range(low, high + 1):
            states[index].append(state)
            titles[index].append(title)

    for incident in incidents:
        end = incident.ended_at or now
        mark(incident.started_at, end, incident.impact, incident.title, incident_titles)
    for window in maintenance:
        mark(
            window.starts_at,
            window.ends_at,
            ServiceState.MAINTENANCE,
            window.title,
            maintenance_titles,
        )
    return [
        Day(day, worst(states[i]), tuple(incident_titles[i]), tuple(maintenance_titles[i]))
        for i, day in enumerate(days)
    ]


def build(now: datetime) -> StatusPage:
    """The whole page at ``now``.

    1. The public services with the internal services behind them (2 queries).
    2. Public incidents open now or ended in the last 90 days, with the internal services they
       affect and their public updates (3 queries).
    3. Maintenance not over before the window began, with its services (2 queries).
    4. The page title (1 query).
    5. Each service's state now and its row of days, from what was loaded.
    """
    days = window_days(now)
    window_start = _day_start(days[0])
    services = list(
        StatusPageService.objects.prefetch_related(
            Prefetch("services", queryset=Service.objects.only("id"), to_attr="inner")
        )
    )
    order = {service.pk: index for index, service in enumerate(services)}
    names = {service.pk: service.name for service in services}
    behind = [(service, {inner.pk for inner in service.inner}) for service in services]
    incidents = [_incident(row, behind, now) for row in _public_incidents(window_start, now)]
    maintenance = [
        _maintenance(row, names, order, now)
        for row in Maintenance.objects.filter(ends_at__gte=window_start)
        .only("id", "title", "description", "starts_at", "ends_at")
        .prefetch_related(Prefetch("services", queryset=StatusPageService.objects.only("id")))
        .order_by("-starts_at", "-pk")
    ]
    title = CommsSettings.load().status_page_title

    rows = []
    for service in services:
        mine = [incident for incident in incidents if service.pk in incident.service_ids]
        windows = [window for window in maintenance if service.pk in window.service_ids]
        rows.append(
            ServiceRow(
                pk=service.pk,
                name=service.name,
                description=service.description,
                state=service_state(
                    service.state_override,
                    (incident.impact for incident in mine if incident.is_open),
                    any(window.phase == "ongoing" for window in windows),
                ),
                is_set_by_hand=bool(service.state_override),
                days=day_row(days, mine, windows, now),
            )
        )
    # An open incident that affects none of the listed services still counts for the banner:
    # the page must not say "All systems operational" above an outage it is announcing.
    unlisted = [i.impact for i in incidents if i.is_open and not i.service_ids]
    state = worst([*(row.state for row in rows), *unlisted])
    return StatusPage(
        title=title,
        now=now,
        state=state,
        services=rows,
        incidents=incidents,
        maintenance=maintenance,
        updated_at=_updated_at(incidents, maintenance, now),
    )


def _updated_at(
    incidents: list[PublicIncident], maintenance: list[MaintenanceWindow], now: datetime
) -> datetime | None:
    """When the page last changed by an event: a post, a declaration, a resolution, or a
    maintenance window starting or ending. None when nothing happened in the window."""
    moments = [
        moment
        for incident in incidents
        for moment in (
            incident.started_at,
            incident.ended_at,
            *(update.at for update in incident.updates),
        )
        if moment is not None
    ]
    moments += [m for window in maintenance for m in (window.starts_at, window.ends_at)]
    moments = [moment for moment in moments if moment <= now]
    return max(moments, default=None)


# --- The JSON summary and the feed's entries --------------------------------------------------


def _incident_summary(incident: PublicIncident) -> dict:
    return {
        "id": incident.pk,
        "title": incident.title,
        "status": incident.status,
        "impact": incident.impact.value,
        "services": incident.service_names,
        "started_at": incident.started_at,
        "resolved_at": incident.ended_at,
        "updates": [
            {"at": update.at, "status": update.status, "text": update.text}
            for update in incident.updates
        ],
    }


def summary(page: StatusPage, url: str) -> dict:
    """The JSON summary for other tools: active and recently resolved incidents, maintenance
    ongoing and upcoming. Values are machine values (``partial_outage``, ``investigating``)."""
    return {
        "title": page.title,
        "url": url,
        "updated_at": page.updated_at,
        "state": page.state.value,
        "description": page.banner,
        "services": [
            {"name": row.name, "state": row.state.value, "incident_days_90": row.incident_days}
            for row in page.services
        ],
        "incidents": [_incident_summary(i) for i in page.active + page.recently_resolved],
        "maintenance": [
            {
                "id": window.pk,
                "title": window.title,
                "description": window.description,
                "phase": window.phase,
                "starts_at": window.starts_at,
                "ends_at": window.ends_at,
                "services": window.service_names,
            }
            for window in page.ongoing_maintenance + page.upcoming_maintenance
        ],
    }


@dataclass(frozen=True)
class FeedEntry:
    key: str  # stable: "update-<pk>" or "maintenance-<pk>"
    title: str
    text: str
    at: datetime
    anchor: str  # "" when the page no longer shows it (resolved over 7 days ago, maintenance over)
    categories: tuple[str, ...] = field(default=())


def _announcement(window: MaintenanceWindow) -> str:
    when = f"From {window.starts_at:%d %b %Y %H:%M} to {window.ends_at:%d %b %Y %H:%M} UTC."
    if window.service_names:
        when += f" Affects {', '.join(window.service_names)}."
    return f"{window.description}\n\n{when}" if window.description else when


def feed_entries(page: StatusPage) -> list[FeedEntry]:
    """One entry per public update of the window's public incidents, and one per maintenance
    announcement, newest first. An entry links to its card on the page while the page shows it."""
    window_start = _day_start(window_days(page.now)[0])
    shown = {incident.pk for incident in page.active + page.recently_resolved}
    shown_windows = {window.pk for window in page.ongoing_maintenance + page.upcoming_maintenance}
    entries = [
        FeedEntry(
            key=f"update-{update.pk}",
            title=f"{incident.title}: {update.status_label}",
            text=update.text,
            at=update.at,
            anchor=f"incident-{incident.pk}" if incident.pk in shown else "",
            categories=tuple(incident.service_names),
        )
        for incident in page.incidents
        for update in incident.updates
        if update.at >= window_start
    ]
    entries += [
        FeedEntry(
            key=f"maintenance-{window.pk}",
            title=f"Scheduled maintenance: {window.title}",
            text=_announcement(window),
            # Maintenance has no creation time; its start is the moment it is about.
            at=window.starts_at,
            anchor=f"maintenance-{window.pk}" if window.pk in shown_windows else "",
            categories=tuple(window.service_names),
        )
        for window in page.maintenance
    ]
    return sorted(entries, key=lambda entry: (entry.at, entry.key), reverse=True)
