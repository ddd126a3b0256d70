"""iCalendar (RFC 5545) feeds of on-call shifts: one per rotation, one per person.

The feeds are read-only views of the resolver (``escalation.rotations`` through
``escalation.services``), built fresh on every fetch over a window from 30 days ago to 90 days
ahead. A secret token in the URL is the only credential, because calendar clients cannot log
in; ``regenerate_token`` revokes a leaked one.

Cost: four queries per feed whatever the number of rotations involved (rotations, members,
overrides overlapping the window, people); each rotation is then resolved in Python.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from icalendar import Calendar, Event
from icalendar.prop import vDuration

from ops.people import display_name

from . import rotations as pure
from . import services
from .models import ContactProfile, Override, Rotation, RotationMember, new_token

PAST = timedelta(days=30)
AHEAD = timedelta(days=90)
# Clients poll; an hour keeps overrides fresh without hammering the resolver.
REFRESH = timedelta(hours=1)
PRODID = "-//Incident portal//On-call calendar//EN"


def feed_window(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a feed fetched at ``now``: whole UTC days, at least 30 back and 90 ahead.

    Snapped to midnight so the event clipped at the window's start keeps its DTSTART and UID
    for a day, rather than changing on every fetch.
    """
    midnight = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return midnight - PAST, midnight + AHEAD + timedelta(days=1)


def rotation_feed(rotation: Rotation, now: datetime) -> bytes:
    """The rotation's spans over the feed window: who is on call, overrides and gaps."""
    start, end = feed_window(now)
    ids = {rotation.pk} | ({rotation.backup_id} if rotation.backup_id else set())
    resolved = _resolve(Rotation.objects.filter(pk__in=ids), start, end)
    calendar = _calendar(f"On call: {rotation.name}", f"rotation-{rotation.pk}")
    for event in _events(resolved, resolved.rotations[rotation.pk], now):
        calendar.add_component(event)
    return calendar.to_ical()


def person_feed(user, now: datetime) -> bytes:
    """The person's spans over the feed window, from every rotation they are on call in.

    Steps: select the rotations the person is a member of or overrides in during the window,
    plus their backups, in one query; resolve them all from one prefetch; keep the person's
    spans (never gaps: a gap is nobody's shift).
    """
    start, end = feed_window(now)
    member_of = RotationMember.objects.filter(
        Q(since__isnull=True) | Q(since__lt=end),
        Q(until__isnull=True) | Q(until__gt=start),
        user=user,
    ).values("rotation_id")
    covers_in = Override.objects.filter(user=user, ends_at__gt=start, starts_at__lt=end).values(
        "rotation_id"
    )
    mine = Rotation.objects.filter(Q(pk__in=member_of) | Q(pk__in=covers_in))
    resolved = _resolve(
        Rotation.objects.filter(Q(pk__in=mine) | Q(pk__in=mine.values("backup_id"))), start, end
    )
    calendar = _calendar(f"On call: {display_name(user)}", f"person-{user.pk}")
    for rotation in resolved.rotations.values():
        for event in _events(resolved, rotation, now, only_user=user.pk):
            calendar.add_component(event)
    return calendar.to_ical()


def regenerate_token(obj: Rotation | ContactProfile) -> str:
    """Give a rotation's or a person's feed a new secret; the old URL answers 404 from now on."""
    obj.calendar_token = new_token()
    obj.save(update_fields=["calendar_token"])
    return obj.calendar_token


def feed_url(obj: Rotation | ContactProfile) -> str:
    """The absolute URL to subscribe to, for the admin to show."""
    name = "rotation-calendar" if isinstance(obj, Rotation) else "person-calendar"
    return settings.SITE_URL + reverse(name, args=[obj.calendar_token])


class _Resolved:
    """Rotations with their spans over one window, and the people those spans name."""

    def __init__(self, rotations: Iterable[Rotation], start: datetime, end: datetime):
        self.rotations = {rotation.pk: rotation for rotation in rotations}
        self.spans = {
            pk: pure.shifts_between(
                services.rules_for(rotation),
                services.memberships_of(rotation),
                services.covers_of(rotation),
                start,
                end,
            )
            for pk, rotation in self.rotations.items()
        }
        self.users = services.users_by_id(
            span.user for spans in self.spans.values() for span in spans
        )


def _resolve(queryset, start: datetime, end: datetime) -> _Resolved:
    return _Resolved(services.with_schedule(queryset, start=start, end=end), start, end)


def _calendar(name: str, uid: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("uid", f"{uid}@{_host()}")  # RFC 7986: stable, so clients see one calendar
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))  # X- properties default to text
    return calendar


def _events(
    resolved: _Resolved, rotation: Rotation, now: datetime, only_user: int | None = None
) -> list[Event]:
    spans = resolved.spans[rotation.pk]
    events = []
    for index, span in enumerate(spans):
        if only_user is not None and span.user != only_user:
            continue
        before = spans[index - 1] if index > 0 else None
        after = spans[index + 1] if index + 1 < len(spans) else None
        events.append(_event(resolved, rotation, span, before, after, now))
    return events


def _event(
    resolved: _Resolved,
    rotation: Rotation,
    span: pure.Shift,
    before: pure.Shift | None,
    after: pure.Shift | None,
    now: datetime,
) -> Event:
    event = Event()
    if span.is_gap:
        event.add("summary", f"GAP: nobody on call in {rotation.name}")
    else:
        override = " — override" if span.is_override else ""
        who = display_name(resolved.users.get(span.user))
        event.add("summary", f"On call: {rotation.name} ({who}){override}")
    event.add("dtstart", span.start.astimezone(UTC))
    event.add("dtend", span.end.astimezone(UTC))
    event.add("dtstamp", now.astimezone(UTC))
    event.add("uid", _uid(rotation, span))
    event.add("description", _description(resolved, rotation, span, before, after))
    # On call is not a meeting: the span must not mark the person busy in free/busy lookups.
    event.add("transp", "TRANSPARENT")
    return event


def _uid(rotation: Rotation, span: pure.Shift) -> str:
    # Spans of one rotation never share a start, so rotation + start is already unique; the
    # person makes a re-assigned span a new event rather than an edit of someone else's.
    who = span.user if span.user is not None else "gap"
    return f"rotation-{rotation.pk}-{span.start.astimezone(UTC):%Y%m%dT%H%M%SZ}-{who}@{_host()}"


def _description(
    resolved: _Resolved,
    rotation: Rotation,
    span: pure.Shift,
    before: pure.Shift | None,
    after: pure.Shift | None,
) -> str:
    zone = services.rules_for(rotation).zone
    lines = [f"Rotation: {rotation.name}"]
    if span.is_gap:
        lines.append("On call: nobody (gap)")
    else:
        override = " (override)" if span.is_override else ""
        lines.append(f"On call: {display_name(resolved.users.get(span.user))}{override}")
    lines.append(f"From {_local(span.start, zone)} to {_local(span.end, zone)} ({zone.key})")
    if before is not None:
        lines.append(f"Takes over from: {_holder(resolved, before)}")
    if after is not None:
        lines.append(f"Hands over to: {_holder(resolved, after)} at {_local(span.end, zone)}")
    lines.append(f"Backup: {_backup(resolved, rotation, span)}")
    return "\n".join(lines)


def _backup(resolved: _Resolved, rotation: Rotation, span: pure.Shift) -> str:
    """The backup rotation and who holds it during ``span``, in order."""
    backup = resolved.rotations.get(rotation.backup_id) if rotation.backup_id else None
    if backup is None:
        return "none"
    holders: list[str] = []
    for piece in resolved.spans[backup.pk]:
        if piece.end <= span.start or piece.start >= span.end:
            continue
        holder = _holder(resolved, piece)
        if not holders or holders[-1] != holder:
            holders.append(holder)
    return f"{backup.name} ({', then '.join(holders) or 'nobody (gap)'})"


def _holder(resolved: _Resolved, span: pure.Shift) -> str:
    return "nobody (gap)" if span.is_gap else display_name(resolved.users.get(span.user))


def _local(instant: datetime, zone) -> str:
    return f"{instant.astimezone(zone):%a %d %b %Y %H:%M %Z}"


def _host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"
