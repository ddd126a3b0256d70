"""When the next update is owed, and keeping the promise when nobody writes.

incident-escalation-flow.md per severity: internal updates every 30 minutes (P0) or hourly
(P1); the status page within 15 minutes (P0) or after 2 hours (P1); stakeholders emailed
within 30 minutes (P0) or after 4 hours (P1). The due times live on ``IncidentComms`` (indexed,
so the beat job reads only what is due) and are re-planned from the severity whenever an
update goes out or the severity changes. ``run_due`` (Celery beat, every 30 s) does three
things, each claimed with ``SKIP LOCKED`` and recorded in the transaction that queues its
email, so any number of runs sends each once:

* reminds the commander shortly before an update is due (once per due time);
* emails stakeholders on the cadence with the latest public text, so they hear on time even
  if nobody writes;
* posts the runbook's "investigating" text on the status page when a public incident reaches
  its deadline with nothing posted.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from incidents import reviews
from incidents.models import OPEN_STATUSES, Incident, TimelineEntry
from incidents.services import record_event
from ops.people import display_name

from . import rendering, services
from .models import Audience, CommsSettings, IncidentComms, IncidentUpdate

log = logging.getLogger(__name__)


def public_by_default(incident: Incident) -> bool:
    """Severities with a status-page deadline go on the page unless they are security
    incidents (never public); the commander can change it."""
    return incident.severity.status_page_within is not None and not incident.is_security


def plan(incident: Incident, state: IncidentComms) -> None:
    """Set the three due times from the severity and what was last sent (not saved)."""
    severity = incident.severity
    if incident.status not in OPEN_STATUSES:
        state.next_update_due_at = None
        state.next_stakeholder_due_at = None
        state.next_status_page_due_at = None
        return
    every = severity.internal_update_every
    external = severity.external_update_every or every
    last = state.last_update_at or incident.declared_at
    state.next_update_due_at = last + every if every else None

    within = severity.stakeholder_email_within
    if within is None:
        state.next_stakeholder_due_at = None
    elif state.last_stakeholder_email_at is None:
        state.next_stakeholder_due_at = incident.declared_at + within
    else:
        state.next_stakeholder_due_at = (
            state.last_stakeholder_email_at + external if external else None
        )

    page_within = severity.status_page_within
    if page_within is None or not state.is_public or incident.is_security:
        state.next_status_page_due_at = None
    elif state.last_status_post_at is None:
        state.next_status_page_due_at = incident.declared_at + page_within
    else:
        state.next_status_page_due_at = state.last_status_post_at + external if external else None


@dataclass(frozen=True)
class Overdue:
    what: str
    due_at: datetime


def overdue(state: IncidentComms | None, now: datetime) -> list[Overdue]:
    """What the admin list and home flag: each communication whose due time has passed."""
    if state is None:
        return []
    found = []
    for what, due in (
        ("Update", state.next_update_due_at),
        ("Stakeholder email", state.next_stakeholder_due_at),
        ("Status page", state.next_status_page_due_at),
    ):
        if due is not None and due <= now:
            found.append(Overdue(what, due))
    return found


def overdue_filter(now: datetime) -> Q:
    """Incidents (as a filter on Incident) with a communication overdue at ``now``."""
    return Q(status__in=OPEN_STATUSES) & (
        Q(comms__next_update_due_at__lte=now)
        | Q(comms__next_stakeholder_due_at__lte=now)
        | Q(comms__next_status_page_due_at__lte=now)
    )


# --- The beat job ------------------------------------------------------------------------------


@dataclass
class CadenceResult:
    reminders: int = 0
    stakeholder_emails: int = 0
    status_posts: int = 0

    def as_dict(self) -> dict:
        return {
            "reminders": self.reminders,
            "stakeholder_emails": self.stakeholder_emails,
            "status_posts": self.status_posts,
        }


def run_due(now: datetime | None = None, *, limit: int = 500) -> CadenceResult:
    now = now or timezone.now()
    result = CadenceResult()
    remind_before = CommsSettings.load().remind_before
    result.reminders = _each_due(
        Q(next_update_due_at__lte=now + remind_before)
        & (Q(reminded_for__isnull=True) | ~Q(reminded_for=F("next_update_due_at"))),
        lambda state: _remind(state, now),
        limit,
    )
    result.stakeholder_emails = _each_due(
        Q(next_stakeholder_due_at__lte=now), lambda state: _scheduled_email(state, now), limit
    )
    result.status_posts = _each_due(
        Q(next_status_page_due_at__lte=now, is_public=True, last_status_post_at__isnull=True),
        lambda state: _first_status_post(state, now),
        limit,
    )
    return result


def _each_due(condition: Q, act, limit: int) -> int:
    """Claim due rows one at a time (SKIP LOCKED), re-checking the condition under the lock."""
    done = 0
    skipped: list[int] = []
    while done + len(skipped) < limit:
        with transaction.atomic():
            state = (
                IncidentComms.objects.filter(condition, incident__status__in=OPEN_STATUSES)
                .exclude(pk__in=skipped)
                .select_related("incident", "incident__severity")
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("pk")
                .first()
            )
            if state is None:
                break
            try:
                with transaction.atomic():
                    act(state)
            except Exception:
                log.exception("communications of incident %s failed", state.incident_id)
                skipped.append(state.pk)
                continue
        done += 1
    return done


def commander_of(incident: Incident):
    """Who is reminded: the commander, else whoever acknowledged or declared it."""
    return reviews.commander(incident) or incident.acknowledged_by or incident.declared_by


def _remind(state: IncidentComms, now: datetime) -> None:
    incident, due = state.incident, state.next_update_due_at
    state.reminded_for = due
    state.save(update_fields=["reminded_for"])
    commander = commander_of(incident)
    if commander is None or not commander.email:
        record_event(
            incident,
            TimelineEntry.Kind.COMMUNICATION,
            f"Update due at {due:%H:%M} UTC: nobody to remind (no commander with an email).",
            now=now,
        )
        return
    late = due <= now
    subject = (
        f"{'OVERDUE' if late else 'Due'}: update for {incident.public_id} "
        f"({incident.severity.code}) at {due:%H:%M} UTC"
    )
    url = rendering.post_update_url(incident)
    every = rendering.spoken(incident.severity.internal_update_every)
    body = (
        f"{display_name(commander)},\n\n"
        f"The next update for {incident.public_id} {incident.title} is "
        f"{'overdue since' if late else 'due at'} {due:%Y-%m-%d %H:%M} UTC "
        f"({incident.severity.code}: every {every}).\n\nPost it here: {url}\n"
    )
    services.email_people(
        [commander],
        reason=f"update-reminder:{incident.pk}:{due.isoformat()}",
        subject=subject,
        body=body,
        incident=incident,
        now=now,
    )
    record_event(
        incident,
        TimelineEntry.Kind.COMMUNICATION,
        f"Reminded {display_name(commander)}: update due at {due:%H:%M} UTC.",
        now=now,
        data={"due_at": due.isoformat()},
    )


def _scheduled_email(state: IncidentComms, now: datetime) -> None:
    incident, due = state.incident, state.next_stakeholder_due_at
    latest = incident.updates.exclude(public_text="").order_by("-posted_at", "-pk").first()
    # The next due time first: the email announces it.
    state.last_stakeholder_email_at = now
    plan(incident, state)
    state.save()
    words = latest.public_text if latest else services.investigating_text(incident, now=now)
    sent = services.Sent()
    services.send_stakeholders(
        incident,
        template="stakeholder_update",
        reason=f"stakeholders:{incident.pk}:scheduled:{due.isoformat()}",
        update=latest,
        public_text=words,
        by=None,
        now=now,
        sent=sent,
    )
    if not sent.stakeholders:
        return  # nobody subscribed to this severity and these services: nothing to say
    record_event(
        incident,
        TimelineEntry.Kind.COMMUNICATION,
        f"Scheduled stakeholder email (due {due:%H:%M} UTC) sent to {sent.describe()}.",
        now=now,
        data={"stakeholders": sent.stakeholders, "due_at": due.isoformat()},
    )


def _first_status_post(state: IncidentComms, now: datetime) -> None:
    incident = state.incident
    text = services.investigating_text(incident, now=now)
    update = IncidentUpdate.objects.create(
        incident=incident,
        kind=IncidentUpdate.Kind.SCHEDULED,
        posted_at=now,
        status=incident.status,
        public_text=text,
        audiences=[Audience.PUBLIC],
    )
    state.last_status_post_at = now
    plan(incident, state)
    state.save()
    services.post_to_status_page(incident, update, by=None, now=now, sent=services.Sent())
    record_event(
        incident,
        TimelineEntry.Kind.COMMUNICATION,
        f"Status page deadline reached with nothing posted: posted the runbook's "
        f'"investigating" text: {text}',
        now=now,
        data={"update": update.pk},
    )
