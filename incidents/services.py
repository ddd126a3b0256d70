"""Every change to an incident goes through one of these functions.

Each is one transaction: it re-reads the incident under ``select_for_update``, changes it, and
writes its timeline entry in the same transaction, so a change and its record can never part.
The admin calls them now; the API calls the same functions.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from config.logging import incident_context
from ops.people import display_name

from . import reviews
from .clock import deadline
from .models import (
    OPEN_STATUSES,
    BusinessCalendar,
    ChecklistItem,
    DetectionSource,
    Incident,
    IncidentRole,
    IncidentType,
    Milestone,
    SeverityLevel,
    Status,
    TimelineEntry,
)
from .signals import incident_changed

log = logging.getLogger(__name__)


class IncidentError(Exception):
    """A request the incident's rules refuse; the message is fit to show the user."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# Which milestone each status sets when an incident enters it (docs/incidents.md).
STATUS_MILESTONES: dict[str, tuple[Milestone, ...]] = {
    Status.INVESTIGATING: (Milestone.INVESTIGATION_STARTED,),
    Status.IDENTIFIED: (Milestone.ROOT_CAUSE_IDENTIFIED,),
    Status.FIXING: (),
    Status.MONITORING: (Milestone.FIX_APPLIED,),
    Status.RESOLVED: (Milestone.SERVICE_RESTORED, Milestone.VERIFICATION_COMPLETED),
    Status.CLOSED: (),
}

# Open statuses move freely among themselves (a fix that fails sends MONITORING back to
# INVESTIGATING); RESOLVED may reopen; CLOSED is final.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    **{status: frozenset(OPEN_STATUSES) - {status} | {Status.RESOLVED} for status in OPEN_STATUSES},
    Status.RESOLVED: frozenset({Status.INVESTIGATING, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


def business_calendar() -> BusinessCalendar | None:
    return BusinessCalendar.objects.order_by("pk").first()


def sla_deadlines(severity: SeverityLevel, declared_at: datetime) -> tuple[datetime, datetime]:
    """Acknowledgement and resolution deadlines for a severity, from declaration."""
    needs_calendar = severity.response_in_business_days or severity.resolution_in_business_days
    calendar = business_calendar() if needs_calendar else None
    spec = calendar.spec() if calendar else None
    if needs_calendar and spec is None:
        raise IncidentError(
            f"{severity} counts business days but no business calendar exists; "
            "create one in the admin or run `manage.py load_policy default`.",
            field="severity",
        )
    ack = deadline(
        declared_at,
        severity.response_time,
        in_business_days=severity.response_in_business_days,
        calendar=spec,
    )
    resolution = deadline(
        declared_at,
        severity.resolution_target,
        in_business_days=severity.resolution_in_business_days,
        calendar=spec,
    )
    return ack, resolution


def next_public_id(now: datetime) -> tuple[str, datetime, int]:
    """Hand out the next ``INC-YYYYMMDD-NNN`` of the UTC day, inside the caller's transaction.

    The upsert takes a row lock on the day's counter that is held until the declaring
    transaction commits, so concurrent declarations queue on it; a declaration that rolls back
    rolls its number back too, so the sequence has no gaps.
    """
    day = now.astimezone(UTC).date()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO incidents_dailysequence (day, last) VALUES (%s, 1) "
            "ON CONFLICT (day) DO UPDATE SET last = incidents_dailysequence.last + 1 "
            "RETURNING last",
            [day],
        )
        (sequence,) = cursor.fetchone()
    return f"INC-{day:%Y%m%d}-{sequence:03d}", day, sequence


def reserved_public_id(public_id: str) -> tuple[str, date, int]:
    """An id handed out earlier from the same counter (an alert reserves its incident's id
    when it arrives, integrations/ingest.py), as next_public_id gives it."""
    _, digits, number = public_id.split("-")
    return public_id, datetime.strptime(digits, "%Y%m%d").date(), int(number)


def _entry(
    incident: Incident,
    kind: str,
    body: str,
    *,
    by,
    now: datetime,
    data: dict | None = None,
    note_kind: str = "",
) -> TimelineEntry:
    return TimelineEntry.objects.create(
        incident=incident,
        at=now,
        kind=kind,
        note_kind=note_kind,
        author=by,
        body=body,
        data=data or {},
    )


def record_event(
    incident: Incident, kind: str, body: str, *, now: datetime, data: dict | None = None, by=None
) -> TimelineEntry:
    """A timeline entry written by another app (an escalation step, a message sent), inside
    that app's transaction."""
    return _entry(incident, kind, body, by=by, now=now, data=data)


def _locked(incident: Incident, *, allow_closed: bool = False) -> Incident:
    """Re-read the incident under a row lock; a closed incident is a finished record."""
    locked = Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)
    if locked.status == Status.CLOSED and not allow_closed:
        raise IncidentError(f"{locked.public_id} is closed; its record can no longer change.")
    return locked


def _save(incident: Incident, fields: Iterable[str], *, by, reason: str) -> None:
    incident._history_user = by
    incident._change_reason = reason[:100]
    incident.save(update_fields=list(fields))


def _who(user) -> str:
    return display_name(user, nobody="the portal")


def _changed(incident: Incident, change: str, *, by, now: datetime) -> None:
    incident_changed.send(Incident, incident=incident, change=change, by=by, now=now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@transaction.atomic
def declare_incident(
    *,
    title: str,
    severity: SeverityLevel,
    by,
    summary: str = "",
    incident_type: IncidentType | None = None,
    is_security: bool = False,
    is_data_loss: bool = False,
    detection_source: str = DetectionSource.MANUAL,
    detected_at: datetime | None = None,
    users_affected: int | None = None,
    impact_scope: str = "",
    affected_services: Iterable = (),
    now: datetime | None = None,
    reserved_id: str | None = None,
) -> Incident:
    """Open an incident.

    1. Number it (per-day sequence, or the id reserved for it), start its SLA clocks from now.
    2. Set the milestones that are already true (detected, investigation started).
    3. Copy the type's checklist; the type may imply the security or data-loss flag.
    4. Write the "declared" timeline entry.
    """
    now = now or timezone.now()
    title = (title or "").strip()
    if not title:
        raise IncidentError("Give the incident a title.", field="title")
    if not severity.is_active:
        raise IncidentError(f"{severity} is not an active severity level.", field="severity")
    if detected_at and detected_at > now:
        raise IncidentError("Detection cannot be in the future.", field="detected_at")
    if incident_type is not None:
        is_security = is_security or incident_type.implies_security
        is_data_loss = is_data_loss or incident_type.implies_data_loss
    ack_due_at, resolution_due_at = sla_deadlines(severity, now)
    public_id, day, sequence = (
        reserved_public_id(reserved_id) if reserved_id else next_public_id(now)
    )
    incident = Incident(
        public_id=public_id,
        day=day,
        sequence=sequence,
        title=title,
        summary=summary,
        severity=severity,
        status=Status.INVESTIGATING,
        incident_type=incident_type,
        detection_source=detection_source,
        users_affected=users_affected,
        impact_scope=impact_scope,
        is_security=is_security,
        is_data_loss=is_data_loss,
        declared_at=now,
        declared_by=by,
        detected_at=detected_at or now,
        investigation_started_at=now,
        ack_due_at=ack_due_at,
        resolution_due_at=resolution_due_at,
    )
    incident._history_user = by
    incident._change_reason = "declared"
    incident.save()
    services = list(affected_services)
    if services:
        incident.affected_services.set(services)
    if incident_type is not None:
        _copy_checklist(incident, incident_type)
    flags = [name for name, on in (("security", is_security), ("data loss", is_data_loss)) if on]
    _entry(
        incident,
        TimelineEntry.Kind.DECLARED,
        f"{_who(by)} declared {severity.code} {severity.name}: {title}"
        + (f" (flags: {', '.join(flags)})" if flags else ""),
        by=by,
        now=now,
        data={
            "severity": severity.code,
            "ack_due_at": _iso(ack_due_at),
            "resolution_due_at": _iso(resolution_due_at),
            "type": incident_type.slug if incident_type else None,
        },
    )
    _changed(incident, "declared", by=by, now=now)
    with incident_context(public_id):
        log.info("declared %s by %s", severity.code, _who(by))
    return incident


def _copy_checklist(incident: Incident, incident_type: IncidentType) -> int:
    # Append after the last item kept: counting rows would reuse positions of ticked items
    # left by a previous type and shuffle them into the new runbook order.
    last = incident.checklist.aggregate(last=Max("position"))["last"]
    start = 0 if last is None else last + 1
    items = [
        ChecklistItem(
            incident=incident,
            source_type=incident_type,
            position=start + index,
            phase=template.phase,
            text=template.text,
        )
        for index, template in enumerate(incident_type.checklist.all())
    ]
    ChecklistItem.objects.bulk_create(items)
    return len(items)


@transaction.atomic
def acknowledge_incident(incident: Incident, *, by, now: datetime | None = None) -> Incident:
    now = now or timezone.now()
    incident = _locked(incident)
    if incident.acknowledged_at is not None:
        raise IncidentError(
            f"{incident.public_id} was already acknowledged by {_who(incident.acknowledged_by)} "
            f"at {incident.acknowledged_at:%Y-%m-%d %H:%M} UTC."
        )
    if not incident.is_open:
        raise IncidentError(f"{incident.public_id} is {incident.get_status_display().lower()}.")
    incident.acknowledged_at = now
    incident.acknowledged_by = by
    incident.time_to_acknowledge = now - incident.declared_at
    _save(
        incident,
        ["acknowledged_at", "acknowledged_by", "time_to_acknowledge"],
        by=by,
        reason="acknowledged",
    )
    late = " (after the SLA)" if now > incident.ack_due_at else ""
    _entry(
        incident,
        TimelineEntry.Kind.ACKNOWLEDGED,
        f"{_who(by)} acknowledged{late}",
        by=by,
        now=now,
        data={"breached": bool(late)},
    )
    _changed(incident, "acknowledged", by=by, now=now)
    with incident_context(incident.public_id):
        log.info("acknowledged by %s", _who(by))
    return incident


@transaction.atomic
def change_status(
    incident: Incident, status: str, *, by, note: str = "", now: datetime | None = None
) -> Incident:
    """Move an incident to a new status and set the milestones that status means.

    Resolving stores time to resolve; reopening a resolved incident clears it; closing stamps
    closed_at. A milestone already set (perhaps corrected by hand) is not overwritten.
    """
    now = now or timezone.now()
    status = Status(status)
    incident = _locked(incident, allow_closed=True)
    old = Status(incident.status)
    if status not in ALLOWED_TRANSITIONS[old]:
        raise IncidentError(
            f"{incident.public_id} cannot go from {old.label} to {status.label}.", field="status"
        )
    if status == Status.CLOSED:
        refusal = reviews.refuse_close(incident)
        if refusal:
            raise IncidentError(refusal, field="status")
    fields = ["status"]
    incident.status = status
    set_milestones = []
    for milestone in STATUS_MILESTONES[status]:
        field = f"{milestone.value}_at"
        if getattr(incident, field) is None:
            setattr(incident, field, now)
            fields.append(field)
            set_milestones.append(milestone.value)
    if status == Status.RESOLVED:
        incident.resolved_at = now
        incident.time_to_resolve = now - incident.detected_at
        fields += ["resolved_at", "time_to_resolve"]
    elif status == Status.CLOSED:
        incident.closed_at = now
        fields.append("closed_at")
    elif old == Status.RESOLVED:
        incident.resolved_at = None
        incident.time_to_resolve = None
        incident.verification_completed_at = None
        fields += ["resolved_at", "time_to_resolve", "verification_completed_at"]
    _save(incident, fields, by=by, reason=f"status {old.value} -> {status.value}")
    body = f"{_who(by)} changed status from {old.label} to {status.label}"
    _entry(
        incident,
        TimelineEntry.Kind.STATUS_CHANGED,
        body + (f": {note}" if note else ""),
        by=by,
        now=now,
        data={"from": old.value, "to": status.value, "milestones": set_milestones},
    )
    if status == Status.RESOLVED:
        reviews.on_resolved(incident, by=by, now=now)
    _changed(incident, "status", by=by, now=now)
    with incident_context(incident.public_id):
        log.info("status %s -> %s by %s", old.value, status.value, _who(by))
    return incident


def resolve_incident(incident: Incident, *, by, note: str = "", now=None) -> Incident:
    return change_status(incident, Status.RESOLVED, by=by, note=note, now=now)


@transaction.atomic
def change_severity(
    incident: Incident,
    severity: SeverityLevel,
    *,
    by,
    reason: str = "",
    now: datetime | None = None,
) -> Incident:
    """Change the severity and recompute both SLA deadlines from the declaration time."""
    now = now or timezone.now()
    incident = _locked(incident)
    old = incident.severity
    if old.pk == severity.pk:
        raise IncidentError(f"{incident.public_id} is already {severity.code}.", field="severity")
    if not severity.is_active:
        raise IncidentError(f"{severity} is not an active severity level.", field="severity")
    old_due = (incident.ack_due_at, incident.resolution_due_at)
    incident.severity = severity
    incident.ack_due_at, incident.resolution_due_at = sla_deadlines(severity, incident.declared_at)
    _save(
        incident,
        ["severity", "ack_due_at", "resolution_due_at"],
        by=by,
        reason=f"severity {old.code} -> {severity.code}",
    )
    _entry(
        incident,
        TimelineEntry.Kind.SEVERITY_CHANGED,
        f"{_who(by)} changed severity from {old.code} to {severity.code}"
        f"; acknowledgement due {incident.ack_due_at:%Y-%m-%d %H:%M}, "
        f"resolution due {incident.resolution_due_at:%Y-%m-%d %H:%M} UTC"
        + (f": {reason}" if reason else ""),
        by=by,
        now=now,
        data={
            "from": old.code,
            "to": severity.code,
            "ack_due_at": [_iso(old_due[0]), _iso(incident.ack_due_at)],
            "resolution_due_at": [_iso(old_due[1]), _iso(incident.resolution_due_at)],
        },
    )
    _changed(incident, "severity", by=by, now=now)
    with incident_context(incident.public_id):
        log.info("severity %s -> %s by %s", old.code, severity.code, _who(by))
    return incident


@transaction.atomic
def set_incident_type(
    incident: Incident, incident_type: IncidentType | None, *, by, now: datetime | None = None
) -> Incident:
    """Set the type and copy its checklist; unticked items of the previous type are dropped."""
    now = now or timezone.now()
    incident = _locked(incident)
    old = incident.incident_type
    if (old and old.pk) == (incident_type and incident_type.pk):
        return incident
    if old is not None:
        incident.checklist.filter(source_type=old, done_at__isnull=True).delete()
    incident.incident_type = incident_type
    fields = ["incident_type"]
    copied = 0
    if incident_type is not None:
        copied = _copy_checklist(incident, incident_type)
    _save(incident, fields, by=by, reason="type changed")
    name = incident_type.name if incident_type else "none"
    _entry(
        incident,
        TimelineEntry.Kind.TYPE_CHANGED,
        f"{_who(by)} set the type to {name}"
        + (f"; {copied} checklist items added" if copied else ""),
        by=by,
        now=now,
        data={
            "from": old.slug if old else None,
            "to": incident_type.slug if incident_type else None,
        },
    )
    if incident_type is not None and (
        (incident_type.implies_security and not incident.is_security)
        or (incident_type.implies_data_loss and not incident.is_data_loss)
    ):
        incident = set_flags(
            incident,
            is_security=incident.is_security or incident_type.implies_security,
            is_data_loss=incident.is_data_loss or incident_type.implies_data_loss,
            by=by,
            now=now,
        )
    return incident


@transaction.atomic
def set_flags(
    incident: Incident,
    *,
    by,
    is_security: bool | None = None,
    is_data_loss: bool | None = None,
    now: datetime | None = None,
) -> Incident:
    now = now or timezone.now()
    incident = _locked(incident)
    changes = {}
    if is_security is not None and is_security != incident.is_security:
        changes["security"] = is_security
        incident.is_security = is_security
    if is_data_loss is not None and is_data_loss != incident.is_data_loss:
        changes["data_loss"] = is_data_loss
        incident.is_data_loss = is_data_loss
    if not changes:
        return incident
    _save(incident, ["is_security", "is_data_loss"], by=by, reason="flags changed")
    words = [
        f"{'set' if on else 'cleared'} {name.replace('_', ' ')}" for name, on in changes.items()
    ]
    _entry(
        incident,
        TimelineEntry.Kind.FLAGS_CHANGED,
        f"{_who(by)} {' and '.join(words)}",
        by=by,
        now=now,
        data=changes,
    )
    _changed(incident, "flags", by=by, now=now)
    return incident


EDITABLE_DETAILS = ("title", "summary", "users_affected", "impact_scope", "detection_source")


@transaction.atomic
def update_details(
    incident: Incident,
    *,
    by,
    affected_services: Iterable | None = None,
    now: datetime | None = None,
    **details,
) -> Incident:
    """Edit descriptive fields (title, summary, impact, detection source, services)."""
    now = now or timezone.now()
    unknown = set(details) - set(EDITABLE_DETAILS)
    if unknown:
        raise IncidentError(f"Not editable here: {', '.join(sorted(unknown))}.")
    if "title" in details:
        details["title"] = (details["title"] or "").strip()
        if not details["title"]:
            raise IncidentError("Give the incident a title.", field="title")
    if "detection_source" in details and details["detection_source"] not in DetectionSource.values:
        raise IncidentError(
            f"Unknown detection source {details['detection_source']!r}.", field="detection_source"
        )
    incident = _locked(incident)
    changed = [name for name, value in details.items() if getattr(incident, name) != value]
    for name in changed:
        setattr(incident, name, details[name])
    services_changed = False
    if affected_services is not None:
        new_ids = {service.pk for service in affected_services}
        old_ids = set(incident.affected_services.values_list("pk", flat=True))
        if new_ids != old_ids:
            incident.affected_services.set(list(new_ids))
            services_changed = True
            changed.append("affected_services")
    if not changed:
        return incident
    _save(incident, [name for name in changed if name != "affected_services"], by=by, reason="edit")
    labels = [Incident._meta.get_field(name).verbose_name for name in changed]
    _entry(
        incident,
        TimelineEntry.Kind.DETAILS_CHANGED,
        f"{_who(by)} edited {', '.join(labels)}",
        by=by,
        now=now,
        data={"fields": changed, "services_changed": services_changed},
    )
    return incident


@transaction.atomic
def assign_role(
    incident: Incident, role: str, user, *, by, now: datetime | None = None
) -> IncidentRole:
    """Give someone a role; a single-holder role (commander ...) passes from its last holder."""
    now = now or timezone.now()
    role = IncidentRole.Role(role)
    incident = _locked(incident)
    if not incident.is_open and incident.status != Status.RESOLVED:
        raise IncidentError(f"{incident.public_id} is closed.")
    active = incident.roles.filter(role=role, unassigned_at__isnull=True).select_related("user")
    if active.filter(user=user).exists():
        raise IncidentError(f"{_who(user)} is already {role.label.lower()}.", field="user")
    previous = None
    if role in IncidentRole.SINGLE_HOLDER:
        previous = active.first()
        if previous is not None:
            previous.unassigned_at = now
            previous.save(update_fields=["unassigned_at"])
    assignment = IncidentRole.objects.create(
        incident=incident, role=role, user=user, assigned_at=now, assigned_by=by
    )
    body = f"{_who(by)} made {_who(user)} {role.label.lower()}"
    if previous is not None:
        body += f" (was {_who(previous.user)})"
    _entry(
        incident,
        TimelineEntry.Kind.ROLE_ASSIGNED,
        body,
        by=by,
        now=now,
        data={
            "role": role.value,
            "user": user.get_username(),
            "previous": previous.user.get_username() if previous else None,
        },
    )
    return assignment


@transaction.atomic
def unassign_role(assignment: IncidentRole, *, by, now: datetime | None = None) -> IncidentRole:
    now = now or timezone.now()
    assignment = (
        IncidentRole.objects.select_for_update().select_related("user").get(pk=assignment.pk)
    )
    _locked(assignment.incident)
    if assignment.unassigned_at is not None:
        raise IncidentError("That role was already handed over.")
    assignment.unassigned_at = now
    assignment.save(update_fields=["unassigned_at"])
    _entry(
        assignment.incident,
        TimelineEntry.Kind.ROLE_UNASSIGNED,
        f"{_who(by)} removed {_who(assignment.user)} as {assignment.get_role_display().lower()}",
        by=by,
        now=now,
        data={"role": assignment.role, "user": assignment.user.get_username()},
    )
    return assignment


@transaction.atomic
def set_checklist_item(
    item: ChecklistItem, *, done: bool, by, now: datetime | None = None
) -> ChecklistItem:
    now = now or timezone.now()
    _locked(item.incident)
    item = ChecklistItem.objects.select_for_update().get(pk=item.pk)
    if (item.done_at is not None) == done:
        return item
    item.done_at = now if done else None
    item.done_by = by if done else None
    item.save(update_fields=["done_at", "done_by"])
    kind = TimelineEntry.Kind.CHECKLIST_DONE if done else TimelineEntry.Kind.CHECKLIST_UNDONE
    verb = "ticked" if done else "reopened"
    _entry(
        item.incident,
        kind,
        f"{_who(by)} {verb}: {item.text}",
        by=by,
        now=now,
        data={"item": item.pk},
    )
    return item


@transaction.atomic
def add_note(
    incident: Incident,
    body: str,
    *,
    by,
    kind: str = TimelineEntry.NoteKind.UPDATE,
    now: datetime | None = None,
    data: dict | None = None,
) -> TimelineEntry:
    now = now or timezone.now()
    body = (body or "").strip()
    if not body:
        raise IncidentError("A note needs some text.", field="body")
    if kind not in TimelineEntry.NoteKind.values:
        raise IncidentError(f"Unknown note kind {kind!r}.", field="kind")
    incident = _locked(incident)
    return _entry(
        incident, TimelineEntry.Kind.NOTE, body, by=by, now=now, note_kind=kind, data=data
    )


@transaction.atomic
def correct_milestone(
    incident: Incident,
    milestone: str,
    at: datetime | None,
    *,
    by,
    reason: str,
    now: datetime | None = None,
) -> Incident:
    """Correct a milestone by hand (the review needs true times); the correction is recorded."""
    now = now or timezone.now()
    milestone = Milestone(milestone)
    reason = (reason or "").strip()
    if not reason:
        raise IncidentError("Say why the milestone is corrected.", field="reason")
    if at is not None and at > now:
        raise IncidentError("A milestone cannot be in the future.", field="at")
    if at is None and milestone == Milestone.DETECTED:
        raise IncidentError("An incident always has a detection time.", field="at")
    incident = _locked(incident)
    field = f"{milestone.value}_at"
    old = getattr(incident, field)
    if old == at:
        raise IncidentError(f"{milestone.label} is already {at}.", field="at")
    setattr(incident, field, at)
    fields = [field]
    if milestone == Milestone.ACKNOWLEDGED:
        incident.time_to_acknowledge = at - incident.declared_at if at else None
        if at is None:
            incident.acknowledged_by = None
            fields.append("acknowledged_by")
        fields.append("time_to_acknowledge")
    if milestone == Milestone.DETECTED and incident.resolved_at:
        incident.time_to_resolve = incident.resolved_at - at
        fields.append("time_to_resolve")
    _save(incident, fields, by=by, reason=f"milestone {milestone.value} corrected")
    shown = f"{at:%Y-%m-%d %H:%M} UTC" if at else "not set"
    _entry(
        incident,
        TimelineEntry.Kind.MILESTONE_CORRECTED,
        f"{_who(by)} corrected {milestone.label.lower()} to {shown}: {reason}",
        by=by,
        now=now,
        data={"milestone": milestone.value, "from": _iso(old), "to": _iso(at)},
    )
    _changed(incident, "milestone", by=by, now=now)
    return incident
