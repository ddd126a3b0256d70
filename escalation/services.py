"""On call: reading rotations from the database into the pure resolver, and changing rosters."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.utils import timezone

from ops.people import display_name

from . import rotations as pure
from .models import ContactProfile, OrgRole, Override, Rotation, RotationMember


class OnCallError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class OnCall:
    """Who holds a rotation at an instant, and since/until when (the span's edges)."""

    rotation: Rotation
    user: object | None  # a User, or None for a gap
    since: datetime
    until: datetime
    is_override: bool

    @property
    def is_gap(self) -> bool:
        return self.user is None


def rules_for(rotation: Rotation) -> pure.RotationRules:
    return pure.RotationRules(
        zone=ZoneInfo(rotation.timezone),
        unit=rotation.shift_unit,
        length=rotation.shift_length,
        handoff_time=rotation.handoff_time,
        handoff_weekday=rotation.handoff_weekday,
        starts_on=rotation.starts_on,
    )


def memberships_of(rotation: Rotation) -> list[pure.Membership]:
    return [
        pure.Membership(m.user_id, m.position, m.since, m.until) for m in rotation.members.all()
    ]


def covers_of(rotation: Rotation) -> list[pure.Cover]:
    return [
        pure.Cover(o.user_id, o.starts_at, o.ends_at, order=o.pk) for o in rotation.overrides.all()
    ]


def with_schedule(queryset=None, *, start: datetime | None = None, end: datetime | None = None):
    """Rotations with everything the resolver reads, in a constant number of queries.

    Overrides are limited to those overlapping [start, end) when given, so an old rotation's
    years of overrides are not read to answer "who is on call now".
    """
    overrides = Override.objects.all()
    if start is not None:
        overrides = overrides.filter(ends_at__gt=start)
    if end is not None:
        overrides = overrides.filter(starts_at__lt=end)
    return (queryset if queryset is not None else Rotation.objects.all()).prefetch_related(
        Prefetch("members", queryset=RotationMember.objects.order_by("position", "pk")),
        Prefetch("overrides", queryset=overrides.order_by("pk")),
    )


def users_by_id(ids: Iterable[int | None]) -> dict[int, object]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {
        user.pk: user
        for user in get_user_model().objects.filter(pk__in=wanted).select_related("contact")
    }


def on_call(queryset=None, at: datetime | None = None) -> list[OnCall]:
    """Who is on call in each rotation of ``queryset`` (default all) at ``at`` (default now).

    Four queries whatever the number of rotations: rotations, members, overrides, people.
    """
    # UTC, so a gap's ``since`` (the instant asked about) reads like every other edge.
    at = (at or timezone.now()).astimezone(UTC)
    rotations = list(queryset if queryset is not None else Rotation.objects.all())
    # since/until are the edges of the piece of the current shift around ``at``: an override
    # later (or earlier) in that shift moves them, so read every override overlapping the shift,
    # not only those covering ``at``.
    windows = {rotation.pk: pure.shift_window(rules_for(rotation), at) for rotation in rotations}
    # One time-range filter for all rotations (a per-rotation OR would be copied into every
    # prefetch lookup and grow with the square of the rotation count); each rotation then keeps
    # the overrides overlapping its own shift.
    earliest = min((start for start, _ in windows.values()), default=at)
    latest = max((end for _, end in windows.values()), default=at)
    prefetch_related_objects(
        rotations,
        Prefetch("members", queryset=RotationMember.objects.order_by("position", "pk")),
        Prefetch(
            "overrides",
            queryset=Override.objects.filter(starts_at__lt=latest, ends_at__gt=earliest).order_by(
                "pk"
            ),
        ),
    )
    spans = [
        (
            rotation,
            pure.on_call_at(
                rules_for(rotation),
                memberships_of(rotation),
                [
                    cover
                    for cover in covers_of(rotation)
                    if cover.start < windows[rotation.pk][1] and cover.end > windows[rotation.pk][0]
                ],
                at,
            ),
        )
        for rotation in rotations
    ]
    users = users_by_id(span.user for _, span in spans)
    return [
        OnCall(rotation, users.get(span.user), span.start, span.end, span.is_override)
        for rotation, span in spans
    ]


@dataclass(frozen=True)
class ShiftView:
    start: datetime
    end: datetime
    user: object | None
    is_override: bool

    @property
    def is_gap(self) -> bool:
        return self.user is None


def shifts(rotation_id: int, start: datetime, end: datetime) -> list[ShiftView]:
    """Every span of [start, end) of one rotation, overrides and gaps included."""
    rotation = with_schedule(Rotation.objects.filter(pk=rotation_id), start=start, end=end).get()
    spans = pure.shifts_between(
        rules_for(rotation), memberships_of(rotation), covers_of(rotation), start, end
    )
    users = users_by_id(span.user for span in spans)
    return [ShiftView(s.start, s.end, users.get(s.user), s.is_override) for s in spans]


def upcoming_gaps(rotation_id: int, now: datetime, days: int = 30) -> list[ShiftView]:
    return [s for s in shifts(rotation_id, now, now + timedelta(days=days)) if s.is_gap]


@transaction.atomic
def set_rotation_members(
    rotation: Rotation, users: Sequence, *, effective_at: datetime | None = None
) -> list[RotationMember]:
    """Make ``users`` (in order) the roster from ``effective_at`` (default now).

    Past shifts keep the roster they had: current rows end at ``effective_at`` and new rows
    start there. The resolver applies the change from the first handoff at or after it.
    """
    effective_at = effective_at or timezone.now()
    rotation = Rotation.objects.select_for_update().get(pk=rotation.pk)
    if len({user.pk for user in users}) != len(users):
        raise OnCallError("A person can be in a rotation only once.", field="members")
    current = list(
        rotation.members.filter(Q(until__isnull=True) | Q(until__gt=effective_at)).order_by(
            "position", "pk"
        )
    )
    if [(m.user_id) for m in current] == [user.pk for user in users] and all(
        m.since is None or m.since <= effective_at for m in current
    ):
        return current
    for member in current:
        if member.since is not None and member.since >= effective_at:
            member.delete()  # never took effect
        else:
            member.until = effective_at
            member.save(update_fields=["until"])
    created = RotationMember.objects.bulk_create(
        RotationMember(rotation=rotation, user=user, position=index, since=effective_at)
        for index, user in enumerate(users)
    )
    return created


def current_members(members: Iterable[RotationMember], at: datetime) -> list[RotationMember]:
    """The rows of ``members`` on the roster at ``at``, by the resolver's own rule."""
    return [m for m in members if pure.is_active(m.since, m.until, at)]


@dataclass(frozen=True)
class Roster:
    """A rotation's latest roster (it may start in the future) and the roster at ``now``."""

    members: list[RotationMember]
    effective_at: datetime | None  # when the latest roster was or will be set
    applies_from: datetime | None  # the first handoff at or after it: it rules shifts from then
    current: list[RotationMember]


def roster(rotation: Rotation, now: datetime) -> Roster:
    rows = list(
        RotationMember.objects.filter(rotation=rotation)
        .select_related("user")
        .order_by("position", "pk")
    )
    latest = [m for m in rows if m.until is None]
    since = [m.since for m in latest if m.since is not None]
    effective_at = max(since) if since else None
    applies_from = None
    if effective_at is not None:
        # The resolver snaps a roster change to the shift that first sees it.
        schedule = pure.Schedule(rules_for(rotation))
        applies_from = schedule.boundary(schedule.first_index_from(effective_at))
    return Roster(latest, effective_at, applies_from, current_members(rows, now))


@transaction.atomic
def create_override(
    rotation: Rotation, user, starts_at: datetime, ends_at: datetime, *, by=None, reason: str = ""
) -> Override:
    if ends_at <= starts_at:
        raise OnCallError("An override must end after it starts.", field="ends_at")
    return Override.objects.create(
        rotation=rotation,
        user=user,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by=by,
    )


def role_holders(roles: Sequence[OrgRole] | None = None, at: datetime | None = None):
    """Each org role with the people holding it now: its rotation's on-call, or its holders."""
    at = at or timezone.now()
    if roles is None:
        roles = list(
            OrgRole.objects.select_related("rotation").prefetch_related(
                Prefetch(
                    "holders",
                    queryset=get_user_model()
                    .objects.select_related("contact")
                    .order_by("username"),
                )
            )
        )
    rotation_ids = {role.rotation_id for role in roles if role.rotation_id}
    answers = {}
    if rotation_ids:
        answers = {
            answer.rotation.pk: answer
            for answer in on_call(Rotation.objects.filter(pk__in=rotation_ids), at)
        }
    result = []
    for role in roles:
        if role.rotation_id:
            answer = answers.get(role.rotation_id)
            people = [answer.user] if answer and answer.user else []
        else:
            people = list(role.holders.all())
        result.append((role, people))
    return result


def contact_of(user) -> ContactProfile | None:
    try:
        return user.contact
    except ContactProfile.DoesNotExist:
        return None


@dataclass(frozen=True)
class Coverage:
    rotation: Rotation
    now: OnCall
    gaps: list[ShiftView]


def coverage(at: datetime | None = None, days: int = 7) -> list[Coverage]:
    """Every rotation's person now and its gaps over the next ``days``, in four queries."""
    at = at or timezone.now()
    end = at + timedelta(days=days)
    rotations = list(with_schedule(start=at, end=end))
    result = []
    for rotation in rotations:
        rules, members, covers = rules_for(rotation), memberships_of(rotation), covers_of(rotation)
        spans = pure.shifts_between(rules, members, covers, at, end)
        result.append((rotation, spans[0] if spans else None, [s for s in spans if s.is_gap]))
    users = users_by_id(span.user for _, span, _ in result if span is not None)
    return [
        Coverage(
            rotation,
            OnCall(rotation, users.get(now.user), now.start, now.end, now.is_override)
            if now
            else OnCall(rotation, None, at, end, False),
            [ShiftView(g.start, g.end, None, False) for g in gaps],
        )
        for rotation, now, gaps in result
    ]


@dataclass(frozen=True)
class ResolvedTarget:
    target: str  # "role:devops-lead", "backup:on-call-engineer"
    label: str  # "DevOps Lead", "Backup on call (Backup on-call)"
    people: list


def resolve_targets(targets: Sequence[str], at: datetime) -> list[ResolvedTarget]:
    """Who each escalation target means at ``at``; an empty ``people`` is a gap, never skipped.

    ``role:<slug>``: the org role's holders (its rotation's on call when it has one);
    ``backup:<slug>``: the on call of the backup rotation of that role's rotation;
    ``rotation:<id>`` / ``rotation-backup:<id>``: a rotation's primary / backup on call;
    ``user:<id>``: one person; ``email:<address>``: an address outside the portal (people is
    the address itself, a string).
    """
    parsed = [(target, *target.split(":", 1)) for target in targets]
    slugs = {value for _, kind, value in parsed if kind in ("role", "backup")}
    roles = {
        role.slug: role
        for role in OrgRole.objects.filter(slug__in=slugs)
        .select_related("rotation__backup")
        .prefetch_related("holders")
    }
    held = {role.slug: people for role, people in role_holders(list(roles.values()), at)}
    rotation_ids = {int(v) for _, kind, v in parsed if kind.startswith("rotation") and v.isdigit()}
    rotations = {
        r.pk: r for r in Rotation.objects.filter(pk__in=rotation_ids).select_related("backup")
    }
    asked = {r.rotation.backup for r in roles.values() if r.rotation and r.rotation.backup}
    for _, kind, value in parsed:
        rotation = (
            rotations.get(int(value)) if kind.startswith("rotation") and value.isdigit() else None
        )
        if rotation is not None:
            asked.add(rotation.backup if kind == "rotation-backup" else rotation)
    asked.discard(None)
    answers = {}
    if asked:
        answers = {
            answer.rotation.pk: answer
            for answer in on_call(Rotation.objects.filter(pk__in=[r.pk for r in asked]), at)
        }
    user_ids = [int(v) for _, kind, v in parsed if kind == "user" and v.isdigit()]
    users = users_by_id(user_ids) if user_ids else {}

    def on_call_in(rotation) -> list:
        answer = answers.get(rotation.pk) if rotation else None
        return [answer.user] if answer and answer.user else []

    resolved = []
    for target, kind, value in parsed:
        if kind in ("role", "backup"):
            role = roles.get(value)
            if role is None:
                resolved.append(ResolvedTarget(target, f"unknown role {value!r}", []))
            elif kind == "backup":
                backup = role.rotation.backup if role.rotation else None
                where = backup.name if backup else "no backup rotation"
                resolved.append(
                    ResolvedTarget(target, f"Backup on call ({where})", on_call_in(backup))
                )
            else:
                resolved.append(ResolvedTarget(target, role.name, held.get(value, [])))
        elif kind in ("rotation", "rotation-backup"):
            rotation = rotations.get(int(value)) if value.isdigit() else None
            if rotation is None:
                resolved.append(ResolvedTarget(target, f"unknown rotation {value!r}", []))
            elif kind == "rotation":
                resolved.append(
                    ResolvedTarget(target, f"On call ({rotation.name})", on_call_in(rotation))
                )
            else:
                where = rotation.backup.name if rotation.backup else f"{rotation.name}: no backup"
                resolved.append(
                    ResolvedTarget(target, f"Backup on call ({where})", on_call_in(rotation.backup))
                )
        elif kind == "user":
            user = users.get(int(value)) if value.isdigit() else None
            label = display_name(user) if user else f"unknown user {value!r}"
            resolved.append(ResolvedTarget(target, label, [user] if user else []))
        elif kind == "email":
            resolved.append(ResolvedTarget(target, value, [value]))
        else:
            resolved.append(ResolvedTarget(target, f"unknown target {target!r}", []))
    return resolved
