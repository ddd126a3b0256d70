"""Telling people what is going on: updates, resolution notices, and who hears them.

The runbooks fix three audiences (incident-escalation-flow.md, "Communication" per severity):
responders and org roles (internal, email and chat webhooks), stakeholders (email, by
severity and service) and the public (the status page, public text only). ``post_update`` is
what the admin's "Post update" form and the API call; ``send_resolution`` follows a resolve
from anywhere (admin, API, an alert). Every message is written to the outbox in the caller's
transaction (sent once it commits, exactly once) and logged as a ``Communication``.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from incidents.models import OPEN_STATUSES, Incident, Status, TimelineEntry
from incidents.services import IncidentError, add_note, change_status, record_event
from ops.people import display_name

from . import cadence, outbox, rendering, unsubscribe
from .models import (
    Audience,
    Communication,
    IncidentComms,
    IncidentUpdate,
    Stakeholder,
    Webhook,
)

EMAIL = "email"


def state_of(incident: Incident) -> IncidentComms:
    """The incident's communications row, created on first use (incidents declared before
    this app existed, or in tests that skip the signal)."""
    state = IncidentComms.objects.filter(incident=incident).first()
    if state is None:
        state = IncidentComms(incident=incident, is_public=cadence.public_by_default(incident))
        cadence.plan(incident, state)
        state.save()
    return state


# --- Who hears ----------------------------------------------------------------------------


def default_audiences(incident: Incident, state: IncidentComms, now: datetime) -> list[str]:
    """The audiences the severity calls for at ``now``.

    Responders always. Stakeholders once their email is due within the next update cycle (P0:
    from the start, its deadline is 30 minutes; P1: from about 3 h, its deadline being 4 h) or
    once they have heard about it. The status page when the incident is public.
    """
    audiences = [Audience.INTERNAL]
    severity = incident.severity
    within = severity.stakeholder_email_within
    if within is not None:
        # Without an update cycle (P2), stakeholders join once their email is due.
        lead = severity.internal_update_every or timedelta(0)
        if state.last_stakeholder_email_at or now >= incident.declared_at + within - lead:
            audiences.append(Audience.STAKEHOLDERS)
    if state.is_public and not incident.is_security:
        audiences.append(Audience.PUBLIC)
    return audiences


def internal_recipients(incident: Incident) -> dict[str, tuple[object | None, str]]:
    """address -> (user, what they are): the people in a role on the incident and everyone its
    escalation reached (org roles, on-call, addresses)."""
    people: dict[str, tuple[object | None, str]] = {}
    roles = incident.roles.filter(unassigned_at__isnull=True).select_related("user")
    for role in roles:
        if role.user.email:
            people.setdefault(role.user.email.lower(), (role.user, role.get_role_display()))
    paged = list(
        incident.notifications.filter(channel=EMAIL, reason__startswith="escalation:")
        .order_by("pk")
        .values_list("recipient", "user_id")
    )
    users = get_user_model().objects.in_bulk({user for _, user in paged if user})
    for address, user in paged:
        people.setdefault(address.lower(), (users.get(user), "paged by the escalation"))
    return people


def _subscribed(incident: Incident):
    """Subscribed members of active lists for this severity whose services (none: all) include
    one the incident affects (an address may be on several lists)."""
    services = list(incident.affected_services.values_list("pk", flat=True))
    serves = Q(stakeholder_list__services__isnull=True) | Q(stakeholder_list__services__in=services)
    return Stakeholder.objects.filter(
        serves,
        unsubscribed_at__isnull=True,
        stakeholder_list__is_active=True,
        stakeholder_list__severities=incident.severity_id,
    )


def stakeholders_for(incident: Incident) -> list[Stakeholder]:
    """Who the incident's stakeholder emails go to: one per address."""
    members = _subscribed(incident).select_related("stakeholder_list").order_by("email", "pk")
    unique: dict[str, Stakeholder] = {}
    for member in members:
        unique.setdefault(member.email.lower(), member)
    return list(unique.values())


def stakeholder_count(incident: Incident) -> int:
    """How many addresses stakeholders_for gives, counted in the database."""
    addresses = _subscribed(incident).annotate(address=Lower("email")).values("address")
    return addresses.distinct().count()


def thread_headers(incident: Incident, audience: str) -> dict:
    """Every email about one incident to one audience names the same thread root, so mail
    clients group them (RFC 5322 In-Reply-To / References)."""
    root = f"<{incident.public_id}.{audience}@{outbox.mail_domain()}>"
    return {"In-Reply-To": root, "References": root}


# --- Sending ------------------------------------------------------------------------------


@dataclass
class Sent:
    """What one send reached, for the timeline and the caller."""

    responders: int = 0
    webhooks: int = 0
    stakeholders: int = 0
    status_page: bool = False
    communications: list[Communication] = field(default_factory=list)

    def describe(self) -> str:
        parts = [
            f"{count} {noun}{'s' if count != 1 else ''}"
            for count, noun in (
                (self.responders, "responder"),
                (self.webhooks, "chat webhook"),
                (self.stakeholders, "stakeholder"),
            )
            if count
        ]
        if self.status_page:
            parts.append("the status page")
        return ", ".join(parts) if parts else "nobody"

    @classmethod
    def of(cls, communications) -> "Sent":
        """Whom logged messages reached (a resolution notice, sent from the status change)."""
        sent = cls(communications=list(communications))
        for entry in sent.communications:
            if entry.audience == Audience.PUBLIC:
                sent.status_page = True
            elif entry.audience == Audience.STAKEHOLDERS:
                sent.stakeholders += entry.recipient_count
            elif entry.channel == Communication.Channel.WEBHOOK:
                sent.webhooks += entry.recipient_count
            elif entry.channel == Communication.Channel.EMAIL:
                sent.responders += entry.recipient_count
        return sent


def _log(
    incident,
    update,
    *,
    audience,
    channel,
    template,
    subject,
    body,
    recipients,
    by,
    now,
    manual=False,
):
    return Communication.objects.create(
        incident=incident,
        update=update,
        at=now,
        author=by,
        audience=audience,
        channel=channel,
        template=template,
        manual=manual,
        recipients=recipients[:500],
        recipient_count=len(recipients),
        subject=subject[:300],
        body=body,
    )


def send_internal(
    incident: Incident,
    *,
    email_template: str,
    chat_template: str,
    reason: str,
    event: str,
    update: IncidentUpdate | None,
    by,
    now: datetime,
    sent: Sent,
) -> None:
    context = rendering.internal_context(incident, now=now, update=update)
    people = internal_recipients(incident)
    if people:
        message = rendering.render(email_template, context)
        headers = thread_headers(incident, Audience.INTERNAL)
        sent.responders = len(people)
        sent.communications.append(
            send_logged(
                [
                    outbox.Message(
                        reason=reason,
                        channel=EMAIL,
                        recipient=address,
                        subject=message.subject,
                        body_text=message.text,
                        body_html=message.html,
                        headers=headers,
                        user=user,
                        incident=incident,
                    )
                    for address, (user, _) in people.items()
                ],
                update=update,
                template=email_template,
                by=by,
                now=now,
            )
        )
    hooks = list(Webhook.objects.filter(is_active=True, updates=True))
    if hooks:
        chat = rendering.render(chat_template, context)
        payload = {
            "event": event,
            "incident": {
                "id": incident.public_id,
                "title": incident.title,
                "severity": incident.severity.code,
                "status": incident.status,
                "url": rendering.incident_url(incident),
            },
            "update": _update_payload(update),
            "text": chat.text,
        }
        sent.webhooks = len(hooks)
        sent.communications.append(
            send_logged(
                [
                    outbox.Message(
                        reason=reason,
                        channel="webhook",
                        recipient=f"webhook:{hook.pk}",
                        subject=f"{incident.public_id} {event}",
                        body_text=chat.text,
                        payload=payload,
                        incident=incident,
                    )
                    for hook in hooks
                ],
                update=update,
                template=chat_template,
                recipients=[hook.name for hook in hooks],
                by=by,
                now=now,
            )
        )


def _update_payload(update: IncidentUpdate | None) -> dict | None:
    if update is None:
        return None
    return {
        "posted_at": update.posted_at.isoformat(),
        "status": update.status,
        "progress": update.progress,
        "next_steps": update.next_steps,
        "eta": update.eta,
        "impact": update.impact,
    }


# A marker rendered in place of the unsubscribe link, replaced per recipient: the template is
# rendered once for a fan-out of thousands, not once per address.
_UNSUBSCRIBE_MARK = "https://unsubscribe.invalid/__stakeholder__/"


def send_stakeholders(
    incident: Incident,
    *,
    template: str,
    reason: str,
    update: IncidentUpdate | None,
    public_text: str,
    by,
    now: datetime,
    sent: Sent,
) -> Communication | None:
    """One email per subscribed stakeholder, each with its own signed unsubscribe link and the
    RFC 8058 one-click headers. With nobody subscribed there is nothing to send or log."""
    members = stakeholders_for(incident)
    if not members:
        return None
    context = rendering.public_context(incident, now=now, update=update)
    context["public_text"] = public_text
    context["unsubscribe_url"] = _UNSUBSCRIBE_MARK
    message = rendering.render(template, context)
    thread = thread_headers(incident, Audience.STAKEHOLDERS)
    urls = unsubscribe.urls_for(member.pk for member in members)
    messages = [
        outbox.Message(
            reason=reason,
            channel=EMAIL,
            recipient=member.email,
            subject=message.subject,
            body_text=message.text.replace(_UNSUBSCRIBE_MARK, urls[member.pk]),
            body_html=message.html.replace(_UNSUBSCRIBE_MARK, urls[member.pk]),
            headers={**thread, **unsubscribe.headers_for_url(urls[member.pk])},
            incident=incident,
        )
        for member in members
    ]
    communication = send_logged(
        messages,
        update=update,
        audience=Audience.STAKEHOLDERS,
        template=template,
        body=message.text.replace(_UNSUBSCRIBE_MARK, "(personal unsubscribe link)"),
        by=by,
        now=now,
    )
    sent.stakeholders = len(members)
    sent.communications.append(communication)
    return communication


def post_to_status_page(
    incident: Incident, update: IncidentUpdate, *, by, now: datetime, sent: Sent
) -> Communication:
    """The status page reads public updates straight from the database; the log records that
    this one went public. (The caller moves ``last_status_post_at``.)"""
    communication = _log(
        incident,
        update,
        audience=Audience.PUBLIC,
        channel=Communication.Channel.STATUS_PAGE,
        template="",
        subject=rendering.public_title(incident),
        body=update.public_text,
        recipients=[],
        by=by,
        now=now,
    )
    sent.status_page = True
    sent.communications.append(communication)
    return communication


def send_logged(
    messages: list[outbox.Message],
    *,
    update: IncidentUpdate | None = None,
    audience: str = Audience.INTERNAL,
    template: str = "",
    recipients: list[str] | None = None,
    body: str | None = None,
    by=None,
    now: datetime | None = None,
) -> Communication | None:
    """Queue messages that say one thing to several people and log them as one
    communication, so the log holds every message that left the portal. ``recipients`` and
    ``body`` say what the log shows when it differs from the messages (webhook names, a body
    without anyone's personal link)."""
    if not messages:
        return None
    now = now or timezone.now()
    first = messages[0]
    communication = _log(
        first.incident,
        update,
        audience=audience,
        channel=first.channel,
        template=template,
        subject=first.subject,
        body=first.body_text if body is None else body,
        recipients=[m.recipient for m in messages] if recipients is None else recipients,
        by=by,
        now=now,
    )
    for message in messages:
        message.communication = communication
    outbox.queue(messages, now=now)
    return communication


def email_people(people, *, reason: str, subject: str, body: str, incident=None, now=None) -> int:
    """One plain email to each of ``people`` (users; those without an address are skipped),
    queued and logged as one message: reminders and handoffs. Returns how many were queued."""
    messages = [
        outbox.Message(
            reason=reason,
            channel=EMAIL,
            recipient=person.email,
            subject=subject,
            body_text=body,
            user=person,
            incident=incident,
        )
        for person in people
        if person is not None and person.email
    ]
    send_logged(messages, now=now)
    return len(messages)


# --- Posting an update ----------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateInput:
    status: str = ""
    progress: str = ""
    next_steps: str = ""
    eta: str = ""
    impact: str = ""
    public_text: str = ""
    audiences: tuple[str, ...] | None = None  # None: what the severity calls for


@transaction.atomic
def post_update(
    incident: Incident, data: UpdateInput, *, by, now: datetime | None = None
) -> tuple[IncidentUpdate, Sent]:
    """Record an update, move the status, write the timeline, and send it to its audiences.

    An update that resolves the incident is its resolution notice (``send_resolution`` runs
    from the status change and carries the update's words)."""
    now = now or timezone.now()
    incident = Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)
    if incident.status == Status.CLOSED:
        raise IncidentError(f"{incident.public_id} is closed; its record can no longer change.")
    status = data.status or incident.status
    if status not in [*OPEN_STATUSES, Status.RESOLVED]:
        raise IncidentError(
            f"An update moves an incident to an open status or resolves it, not {status!r}.",
            field="status",
        )
    if incident.status == Status.RESOLVED and status == Status.RESOLVED:
        raise IncidentError(
            f"{incident.public_id} is resolved already: reopen it to post an update.",
            field="status",
        )
    texts = (data.progress, data.next_steps, data.eta, data.impact, data.public_text)
    if not any(text.strip() for text in texts) and status == incident.status:
        raise IncidentError("Write what changed: progress, next steps, ETA, impact or public text.")
    state = state_of(incident)
    audiences = _chosen(data.audiences, incident, state, now)
    update = IncidentUpdate.objects.create(
        incident=incident,
        kind=IncidentUpdate.Kind.RESOLUTION
        if status == Status.RESOLVED
        else IncidentUpdate.Kind.UPDATE,
        posted_at=now,
        author=by,
        status=status,
        progress=data.progress.strip(),
        next_steps=data.next_steps.strip(),
        eta=data.eta.strip(),
        impact=data.impact.strip(),
        public_text=data.public_text.strip() if Audience.PUBLIC in audiences else "",
        audiences=audiences,
    )
    add_note(
        incident,
        _update_note(update),
        by=by,
        kind=TimelineEntry.NoteKind.UPDATE,
        now=now,
        data={"update": update.pk, "audiences": audiences},
    )
    if status != incident.status:
        # Resolving sends the resolution notice from the status change, with this update.
        incident = change_status(incident, status, by=by, now=now)
    if status == Status.RESOLVED:
        # send_resolution ran from the status change and wrote the public words onto it.
        update.refresh_from_db()
        return update, Sent.of(update.communications.all())
    _mark_sent(incident, update, audiences, now)
    sent = send_update(incident, update, audiences=audiences, by=by, now=now)
    return update, sent


def _mark_sent(incident: Incident, update: IncidentUpdate, audiences: list[str], now) -> None:
    """Move the due times past what is about to go out, before it is written: the messages
    then announce the next update after this one."""
    state = state_of(incident)
    state.last_update_at = now
    if Audience.STAKEHOLDERS in audiences:
        state.last_stakeholder_email_at = now
    if Audience.PUBLIC in audiences and update.public_text:
        state.last_status_post_at = now
    cadence.plan(incident, state)
    state.save()


def _chosen(audiences, incident, state, now) -> list[str]:
    if audiences is None:
        return default_audiences(incident, state, now)
    unknown = set(audiences) - set(Audience.values)
    if unknown:
        raise IncidentError(f"Unknown audience {sorted(unknown)[0]!r}.", field="audiences")
    if Audience.PUBLIC in audiences and (incident.is_security or not state.is_public):
        raise IncidentError(
            "This incident is not on the status page: make it public first.", field="audiences"
        )
    return [a for a in Audience.values if a in audiences]


def _update_note(update: IncidentUpdate) -> str:
    lines = [f"Update posted (status {Status(update.status).label})."]
    for label, text in (
        ("Progress", update.progress),
        ("Next steps", update.next_steps),
        ("ETA", update.eta),
        ("Impact", update.impact),
        ("Public text", update.public_text),
    ):
        if text:
            lines.append(f"{label}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Wording:
    """Which templates say it to each audience."""

    email: str
    chat: str
    stakeholders: str
    event: str


UPDATE = Wording("progress_update", "chat_update", "stakeholder_update", "incident.update")
RESOLVED = Wording(
    "resolution_notice", "chat_resolved", "stakeholder_resolved", "incident.resolved"
)


def send_update(
    incident: Incident, update: IncidentUpdate, *, audiences: list[str], by, now: datetime
) -> Sent:
    sent = _send(incident, update, audiences, UPDATE, f"update:{update.pk}", by=by, now=now)
    _timeline(incident, "Update sent to", sent, now=now)
    return sent


def _send(incident, update, audiences, wording: Wording, reason: str, *, by, now) -> Sent:
    """Say ``update`` to each of ``audiences`` in ``wording``; ``reason`` makes each message
    once-only in the outbox."""
    sent = Sent()
    if Audience.INTERNAL in audiences:
        send_internal(
            incident,
            email_template=wording.email,
            chat_template=wording.chat,
            reason=reason,
            event=wording.event,
            update=update,
            by=by,
            now=now,
            sent=sent,
        )
    if Audience.STAKEHOLDERS in audiences:
        send_stakeholders(
            incident,
            template=wording.stakeholders,
            reason=f"{reason}:stakeholders",
            update=update,
            public_text=update.public_text or latest_public_text(incident, now=now),
            by=by,
            now=now,
            sent=sent,
        )
    if Audience.PUBLIC in audiences and update.public_text:
        post_to_status_page(incident, update, by=by, now=now, sent=sent)
    return sent


def latest_public_text(incident: Incident, *, now: datetime) -> str:
    """The newest public words about the incident, else the runbook's "investigating" text."""
    latest = incident.updates.exclude(public_text="").order_by("-posted_at", "-pk").first()
    if latest is not None:
        return latest.public_text
    return investigating_text(incident, now=now)


def investigating_text(incident: Incident, *, now: datetime) -> str:
    """The runbook's "investigating" words for the status page and stakeholders."""
    context = rendering.public_context(incident, now=now)
    return rendering.render("status_investigating", context).text.strip()


def suggested_public_text(incident: Incident, latest: IncidentUpdate | None, *, now) -> str:
    """What the Post update form offers for the status page: the runbook's "investigating"
    words first, its "update" words once something public was said."""
    key = "status_update" if latest and latest.public_text else "status_investigating"
    return rendering.render(key, rendering.public_context(incident, now=now)).text.strip()


def _timeline(incident: Incident, prefix: str, sent: Sent, *, now: datetime) -> None:
    record_event(
        incident,
        TimelineEntry.Kind.COMMUNICATION,
        f"{prefix} {sent.describe()}.",
        now=now,
        data={
            "responders": sent.responders,
            "webhooks": sent.webhooks,
            "stakeholders": sent.stakeholders,
            "status_page": sent.status_page,
            "communications": [c.pk for c in sent.communications],
        },
    )


# --- Resolution -----------------------------------------------------------------------------


def send_resolution(incident: Incident, *, by, now: datetime) -> Sent:
    """The resolution notice, to every audience that heard about the incident or that its
    severity calls for. Runs inside the resolving transaction; the outbox's unique reason
    (incident and resolution time) makes a repeat of this call send nothing twice."""
    state = state_of(incident)
    update = (
        incident.updates.filter(kind=IncidentUpdate.Kind.RESOLUTION, posted_at=now)
        .order_by("-pk")
        .first()
    )
    audiences = update.audiences if update is not None else default_audiences(incident, state, now)
    if update is None:
        update = IncidentUpdate.objects.create(
            incident=incident,
            kind=IncidentUpdate.Kind.RESOLUTION,
            posted_at=now,
            author=by,
            status=Status.RESOLVED,
            audiences=audiences,
        )
    if Audience.PUBLIC in audiences and not update.public_text:
        context = rendering.public_context(incident, now=now, update=update)
        update.public_text = rendering.render("status_resolved", context).text.strip()
        update.save(update_fields=["public_text"])
    # Responders always hear that it is over; the outbox reason carries the resolution time, so
    # a reopened incident resolved again gets a notice of its own.
    audiences = sorted({Audience.INTERNAL, *audiences}, key=Audience.values.index)
    _mark_sent(incident, update, audiences, now)
    reason = f"resolved:{incident.pk}:{now.isoformat()}"
    sent = _send(incident, update, audiences, RESOLVED, reason, by=by, now=now)
    _timeline(incident, "Resolution notice sent to", sent, now=now)
    return sent


# --- Logging what was said by hand ------------------------------------------------------------


def log_manual(
    incident: Incident,
    *,
    audience: str,
    channel: str,
    body: str,
    subject: str = "",
    recipients: list[str] | None = None,
    by,
    now: datetime | None = None,
) -> Communication:
    """A message posted outside the portal (a call, a chat message), kept with the rest."""
    now = now or timezone.now()
    if not body.strip():
        raise IncidentError("Say what was communicated.", field="body")
    with transaction.atomic():
        communication = _log(
            incident,
            None,
            audience=audience,
            channel=channel,
            template="",
            subject=subject,
            body=body.strip(),
            recipients=recipients or [],
            by=by,
            now=now,
            manual=True,
        )
        record_event(
            incident,
            TimelineEntry.Kind.COMMUNICATION,
            f"{display_name(by, nobody='Someone')} logged a message to "
            f"{Audience(audience).label} by {Communication.Channel(channel).label}: "
            f"{subject or body.strip()[:120]}",
            now=now,
            by=by,
            data={"communication": communication.pk},
        )
    return communication


@transaction.atomic
def set_public_face(
    incident: Incident, *, is_public: bool, title: str, impact: str, by, now=None
) -> IncidentComms:
    """Put the incident on the status page (or take it off), with its public title and impact."""
    now = now or timezone.now()
    if is_public and incident.is_security:
        raise IncidentError("A security incident is never shown on the status page.")
    state = IncidentComms.objects.select_for_update().get(pk=state_of(incident).pk)
    changed = (state.is_public, state.public_title, state.public_impact) != (
        is_public,
        title,
        impact,
    )
    state.is_public, state.public_title, state.public_impact = is_public, title.strip(), impact
    cadence.plan(incident, state)
    state.save()
    if changed:
        record_event(
            incident,
            TimelineEntry.Kind.COMMUNICATION,
            f"{display_name(by, nobody='The portal')} "
            + (
                f'put it on the status page as "{rendering.public_title(incident, state)}".'
                if is_public
                else "took it off the status page."
            ),
            now=now,
            by=by,
            data={"is_public": is_public},
        )
    return state
