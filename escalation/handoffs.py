"""Handoffs: one record per shift boundary, a reminder to the incoming engineer, their
acknowledgement, and a flag (and an email to the rotation's owner) when nobody acknowledges.

All three steps are run by one periodic job (``escalation.tasks.run_handoffs``) and are
idempotent: the record is unique per rotation and boundary, and each email is claimed with a
conditional UPDATE before it is sent, so running the job twice creates one record and sends each
email once.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from comms import outbox
from comms.services import email_people
from incidents.models import Incident
from ops.people import display_name

from . import rotations as pure
from .models import Handoff, HandoffChecklistItem, HandoffChecklistTemplateItem, Rotation
from .services import covers_of, memberships_of, rules_for, with_schedule

log = logging.getLogger(__name__)

# Boundaries this far back are still recorded (a job that was down catches up).
LOOKBACK = timedelta(days=1)
ACK_LINK_SALT = "escalation.handoff.acknowledge"
ACK_LINK_MAX_AGE = timedelta(days=7)


class HandoffError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Boundary:
    rotation: Rotation
    at: datetime
    outgoing: int | None
    incoming: int | None


def boundaries(rotations: list[Rotation], start: datetime, end: datetime) -> list[Boundary]:
    """Scheduled shift changes in [start, end) with who hands to whom (overrides honoured)."""
    found = []
    for rotation in rotations:
        rules = rules_for(rotation)
        members, covers = memberships_of(rotation), covers_of(rotation)
        schedule = pure.Schedule(rules)
        index = max(schedule.index_at(start), 0)
        while True:
            at = schedule.boundary(index)
            if at >= end:
                break
            if at >= start:
                before = pure.on_call_at(rules, members, covers, at - timedelta(microseconds=1))
                after = pure.on_call_at(rules, members, covers, at)
                found.append(Boundary(rotation, at, before.user, after.user))
            index += 1
    return found


def _open_incidents_snapshot() -> list[dict]:
    return [
        {
            "id": incident.public_id,
            "title": incident.title,
            "severity": incident.severity.code,
            "status": incident.status,
            "is_security": incident.is_security,
        }
        for incident in Incident.objects.open().select_related("severity").order_by("declared_at")
    ]


RESTRICTED_TITLE = "Security incident (details restricted)"


def open_incidents_for(handoff: Handoff, user) -> list[dict]:
    """The handoff's snapshot as ``user`` may read it.

    The snapshot keeps every open incident, but a security incident's title is shown only to
    those who may see the incident (incidents.models.IncidentQuerySet.visible_to); others learn
    that it exists, its id, severity and status, and not what it is about. An incident flagged
    as security after the handoff counts as one too.
    """
    snapshot = handoff.open_incidents
    if not snapshot:
        return []
    secret = {i["id"] for i in snapshot if i.get("is_security")} | set(
        Incident.objects.filter(
            public_id__in=[i["id"] for i in snapshot], is_security=True
        ).values_list("public_id", flat=True)
    )
    if not secret:
        return list(snapshot)
    cleared = set()
    if user is not None:
        cleared = set(
            Incident.objects.visible_to(user)
            .filter(public_id__in=secret)
            .values_list("public_id", flat=True)
        )
    return [
        {**i, "title": RESTRICTED_TITLE} if i["id"] in secret - cleared else i for i in snapshot
    ]


def create_due_handoffs(now: datetime | None = None) -> list[Handoff]:
    """Record every boundary from a day ago up to each rotation's reminder time ahead."""
    now = now or timezone.now()
    rotations = list(with_schedule(start=now - LOOKBACK - timedelta(days=1)))
    horizon = max((r.handoff_reminder_before for r in rotations), default=timedelta(0))
    # A boundary between two gaps hands nothing over; the coverage pages show the gap.
    due = [
        b
        for b in boundaries(rotations, now - LOOKBACK, now + horizon + timedelta(minutes=1))
        if b.at <= now + b.rotation.handoff_reminder_before
        and (b.outgoing is not None or b.incoming is not None)
        # An override across the boundary: the same person stays on, nothing changes hands.
        and b.outgoing != b.incoming
    ]
    if not due:
        return []
    fields = ("pk", "rotation_id", "boundary_at", "outgoing_id", "incoming_id", "acknowledged_at")
    existing = {
        (row["rotation_id"], row["boundary_at"]): row
        for row in Handoff.objects.filter(
            rotation__in=[b.rotation for b in due], boundary_at__in=[b.at for b in due]
        ).values(*fields)
    }
    _follow_changes(due, existing)
    missing = [b for b in due if (b.rotation.pk, b.at) not in existing]
    if not missing:
        return []
    snapshot = _open_incidents_snapshot()
    template = list(HandoffChecklistTemplateItem.objects.filter(is_active=True))
    created = []
    for boundary in missing:
        with transaction.atomic():
            # ignore_conflicts: a second job racing on the same boundary creates nothing.
            Handoff.objects.bulk_create(
                [
                    Handoff(
                        rotation=boundary.rotation,
                        boundary_at=boundary.at,
                        outgoing_id=boundary.outgoing,
                        incoming_id=boundary.incoming,
                        open_incidents=snapshot,
                        maintenance_notes=boundary.rotation.maintenance_notes,
                        known_issues=boundary.rotation.known_issues,
                        created_at=now,
                    )
                ],
                ignore_conflicts=True,
            )
            handoff = Handoff.objects.filter(
                rotation=boundary.rotation, boundary_at=boundary.at
            ).first()
            if handoff is None or handoff.checklist.exists():
                continue
            HandoffChecklistItem.objects.bulk_create(
                HandoffChecklistItem(handoff=handoff, position=item.position, text=item.text)
                for item in template
            )
            created.append(handoff)
    return created


def _follow_changes(due: list[Boundary], existing: dict[tuple, dict]) -> None:
    """Point unacknowledged handoffs at whoever the schedule now says hands over.

    A handoff is recorded up to ``handoff_reminder_before`` ahead, and an override or a roster
    change made after that still applies to its boundary (docs/oncall.md, rules 5 and 6): the
    person now taking over is reminded (``reminder_sent_at`` cleared) and the link sent to the
    previous one stops working (it names another incoming engineer). The update is conditional
    on the people it read and on nobody having acknowledged, so it never rewrites a handoff
    someone took over meanwhile.
    """
    for boundary in due:
        row = existing.get((boundary.rotation.pk, boundary.at))
        if row is None:
            continue
        people = (row["outgoing_id"], row["incoming_id"])
        if row["acknowledged_at"] is not None or people == (boundary.outgoing, boundary.incoming):
            continue
        changed = Handoff.objects.filter(
            pk=row["pk"],
            outgoing_id=row["outgoing_id"],
            incoming_id=row["incoming_id"],
            acknowledged_at__isnull=True,
        ).update(
            outgoing_id=boundary.outgoing, incoming_id=boundary.incoming, reminder_sent_at=None
        )
        if changed:
            log.info(
                "handoff of %s at %s now from user %s to user %s",
                boundary.rotation,
                boundary.at,
                boundary.outgoing,
                boundary.incoming,
            )


def ack_token(handoff: Handoff) -> str:
    return signing.dumps(
        {"handoff": handoff.pk, "user": handoff.incoming_id}, salt=ACK_LINK_SALT, compress=True
    )


def handoff_from_token(token: str) -> Handoff:
    try:
        data = signing.loads(token, salt=ACK_LINK_SALT, max_age=ACK_LINK_MAX_AGE.total_seconds())
    except signing.SignatureExpired as exc:
        raise HandoffError("This link has expired; acknowledge the handoff in the admin.") from exc
    except signing.BadSignature as exc:
        raise HandoffError("This link is not valid.") from exc
    handoff = (
        Handoff.objects.select_related("rotation", "incoming").filter(pk=data["handoff"]).first()
    )
    if handoff is None or handoff.incoming_id != data["user"]:
        raise HandoffError("This handoff no longer exists or has another incoming engineer.")
    return handoff


def ack_url(handoff: Handoff) -> str:
    return settings.SITE_URL + reverse("handoff-acknowledge", args=[ack_token(handoff)])


@transaction.atomic
def acknowledge_handoff(handoff: Handoff, *, by, now: datetime | None = None) -> Handoff:
    """The incoming engineer confirms they have taken over (or an admin on their behalf)."""
    now = now or timezone.now()
    handoff = Handoff.objects.select_for_update().get(pk=handoff.pk)
    if handoff.acknowledged_at is not None:
        raise HandoffError(f"Already acknowledged at {handoff.acknowledged_at:%Y-%m-%d %H:%M} UTC.")
    if by is not None and handoff.incoming_id not in (None, by.pk) and not by.is_superuser:
        raise HandoffError("Only the incoming engineer acknowledges a handoff.")
    handoff.acknowledged_at = now
    handoff.acknowledged_by = by
    handoff.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return handoff


@transaction.atomic
def set_handoff_item(item: HandoffChecklistItem, *, done: bool, by, now=None):
    now = now or timezone.now()
    item = HandoffChecklistItem.objects.select_for_update().get(pk=item.pk)
    item.done_at = now if done else None
    item.done_by = by if done else None
    item.save(update_fields=["done_at", "done_by"])
    return item


def send_reminders(now: datetime | None = None) -> int:
    """Email each incoming engineer before their boundary, once."""
    now = now or timezone.now()
    pending = Handoff.objects.filter(
        reminder_sent_at__isnull=True,
        acknowledged_at__isnull=True,
        incoming__isnull=False,
        boundary_at__gte=now - LOOKBACK,
    ).select_related("rotation", "incoming", "outgoing")
    due = [h for h in pending if h.boundary_at - h.rotation.handoff_reminder_before <= now]
    sent = 0
    for handoff in due:
        with transaction.atomic():
            if (
                not outbox.claim_once(Handoff, handoff.pk, "reminder_sent_at", now)
                or not handoff.incoming.email
            ):
                continue
            email_people(
                [handoff.incoming],
                reason=f"handoff-reminder:{handoff.pk}",
                subject=f"[On call] You take over {handoff.rotation} "
                f"at {handoff.boundary_at:%a %d %b %H:%M} UTC",
                body=_reminder_body(handoff),
            )
        sent += 1
    return sent


def flag_unacknowledged(now: datetime | None = None) -> int:
    """Email the rotation's owner about each handoff nobody acknowledged in time, once."""
    now = now or timezone.now()
    overdue = list(
        Handoff.objects.overdue(now)
        .filter(overdue_notified_at__isnull=True)
        .select_related("rotation", "rotation__owner", "incoming")
    )
    flagged = 0
    for handoff in overdue:
        with transaction.atomic():
            if outbox.claim_once(Handoff, handoff.pk, "overdue_notified_at", now):
                flagged += _flag(handoff)
    return flagged


def _flag(handoff: Handoff) -> int:
    """Log the unacknowledged handoff and email the rotation's owner (when it has one)."""
    log.warning("handoff of %s at %s not acknowledged", handoff.rotation, handoff.boundary_at)
    owner = handoff.rotation.owner
    if owner is None or not owner.email:
        return 1
    when = f"{handoff.boundary_at:%Y-%m-%d %H:%M} UTC"
    if handoff.incoming is None:
        what = f"Nobody took over {handoff.rotation} at {when}: the rotation has a gap."
    else:
        what = (
            f"{display_name(handoff.incoming)} has not acknowledged taking over "
            f"{handoff.rotation} at {when}."
        )
    email_people(
        [owner],
        reason=f"handoff-overdue:{handoff.pk}",
        subject=f"[On call] Handoff not acknowledged: {handoff.rotation}",
        body=f"{what}\n\n"
        f"Check that someone is on call: {settings.SITE_URL}"
        f"{reverse('admin:escalation_handoff_change', args=[handoff.pk])}\n",
    )
    return 1


def run_handoffs(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {
        "created": len(create_due_handoffs(now)),
        "reminded": send_reminders(now),
        "flagged": flag_unacknowledged(now),
    }


def _reminder_body(handoff: Handoff) -> str:
    incidents = (
        "\n".join(
            f"  - {i['id']} [{i['severity']}] {i['title']} ({i['status']})"
            for i in open_incidents_for(handoff, handoff.incoming)
        )
        or "  none"
    )
    items = "\n".join(f"  [ ] {item.text}" for item in handoff.checklist.all())
    incoming = display_name(handoff.incoming, nobody="Nobody")
    outgoing = display_name(handoff.outgoing, nobody="Nobody")
    return (
        f"Hello {incoming},\n\n"
        f"You take over {handoff.rotation} from {outgoing} at "
        f"{handoff.boundary_at:%A %d %B %H:%M} UTC.\n\n"
        f"Open incidents:\n{incidents}\n\n"
        f"Scheduled maintenance:\n  {handoff.maintenance_notes or 'none noted'}\n\n"
        f"Known issues:\n  {handoff.known_issues or 'none noted'}\n\n"
        f"Handoff checklist:\n{items}\n\n"
        f"When you have taken over, acknowledge the handoff:\n  {ack_url(handoff)}\n"
        f"(the link opens a confirmation page; nothing happens until you press its button)\n"
    )
