"""Rendering the runbooks' messages: the admin's edited copy if there is one, else the default.

Text bodies render without HTML escaping (they go to mail clients as text/plain, chat and the
status page, which escapes on display); HTML bodies render with Django's autoescaping.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone

from incidents import reviews
from incidents.sla import humanize
from ops.people import display_name

from .defaults import EMAIL, PUBLIC, TEMPLATES, TemplateDefault
from .models import CommsSettings, IncidentUpdate, MessageTemplate

__all__ = ["Rendered", "TemplateSyntaxError", "render", "render_source"]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Source:
    subject: str
    body_text: str
    body_html: str


def default(key: str) -> TemplateDefault:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise ValueError(f"Unknown message template {key!r}.") from None


def source(key: str) -> Source:
    """The text in force: the admin's edited copy, else the default the portal ships."""
    row = MessageTemplate.objects.filter(key=key, customised=True).first()
    if row is not None:
        return Source(row.subject, row.body_text, row.body_html)
    shipped = default(key)
    return Source(shipped.subject, shipped.body_text, shipped.body_html)


def _engine() -> Engine:
    return Engine.get_default()


def check(text: str) -> None:
    """Raise TemplateSyntaxError for a template that cannot compile (admin form validation)."""
    _engine().from_string(text)


def render_source(src: Source, context: dict, *, kind: str = EMAIL) -> Rendered:
    engine = _engine()
    plain = Context(context, autoescape=False)
    subject = " ".join(engine.from_string(src.subject).render(plain).split()) if src.subject else ""
    text = engine.from_string(src.body_text).render(plain).strip() + "\n"
    html = ""
    if kind == EMAIL and src.body_html.strip():
        html = engine.from_string(src.body_html).render(Context(context))
    return Rendered(subject=subject[:300], text=text, html=html)


def render(key: str, context: dict) -> Rendered:
    return render_source(source(key), context, kind=default(key).kind)


def reset(key: str, *, by=None) -> MessageTemplate:
    """Put the shipped text back (the row stays, mirroring the default); ``by``: who did."""
    shipped = default(key)
    row, _ = MessageTemplate.objects.update_or_create(
        key=key,
        defaults={
            "subject": shipped.subject,
            "body_text": shipped.body_text,
            "body_html": shipped.body_html,
            "customised": False,
            "updated_at": timezone.now(),
            "updated_by": by,
        },
    )
    return row


def ensure_templates() -> int:
    """One row per shipped template; rows not customised follow the shipped text (bootstrap,
    and the admin's list). One query when nothing is missing or stale."""
    rows = {row.key: row for row in MessageTemplate.objects.all()}
    changed = 0
    for key, shipped in TEMPLATES.items():
        row = rows.get(key)
        if row is None:
            MessageTemplate.objects.create(
                key=key,
                subject=shipped.subject,
                body_text=shipped.body_text,
                body_html=shipped.body_html,
            )
            changed += 1
        elif not row.customised and (row.subject, row.body_text, row.body_html) != (
            shipped.subject,
            shipped.body_text,
            shipped.body_html,
        ):
            reset(key)
            changed += 1
    return changed


# --- Contexts ------------------------------------------------------------------------------


def spoken(delta: timedelta | None) -> str:
    """``30 minutes``, ``1 hour``, ``2 hours``, ``1 day``: how the runbooks say a cadence."""
    if not delta:
        return ""
    minutes = int(delta.total_seconds() // 60)
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return humanize(delta)


def incident_url(incident) -> str:
    return settings.SITE_URL + reverse("admin:incidents_incident_change", args=[incident.pk])


def post_update_url(incident) -> str:
    return settings.SITE_URL + reverse("comms-post-update", args=[incident.pk])


def status_page_url() -> str:
    return settings.SITE_URL + reverse("status-page")


def _comms(incident):
    from .models import IncidentComms

    return IncidentComms.objects.filter(incident=incident).first()


def public_services(incident) -> str:
    """The public names of what it affects (status page services), else nothing."""
    from .models import StatusPageService

    names = (
        StatusPageService.objects.filter(services__in=incident.affected_services.all())
        .distinct()
        .values_list("name", flat=True)
    )
    return ", ".join(names)


def public_title(incident, state=None) -> str:
    state = state if state is not None else _comms(incident)
    if state is not None and state.public_title:
        return state.public_title
    services = public_services(incident)
    return fallback_title(services)


def fallback_title(services: str) -> str:
    """The public title of an incident whose commander gave none: what it disrupts."""
    return f"Service disruption: {services}" if services else "Service disruption"


def internal_context(
    incident, *, now: datetime, update: IncidentUpdate | None = None, **extra
) -> dict:
    """What responder-facing templates see: the incident itself and the latest update."""
    severity = incident.severity
    state = _comms(incident)
    commander = reviews.commander(incident)
    war_room = state.war_room_url if state and state.war_room_opened_at else ""
    end = incident.resolved_at or now
    context = {
        "incident": incident,
        "severity": severity,
        "status": incident.get_status_display().upper(),
        "now": now,
        "elapsed": humanize(now - incident.declared_at),
        "impact": incident.impact_scope or incident.summary or "Being assessed",
        "assigned_to": display_name(commander) if commander else "On-call engineer",
        "next_update": state.next_update_due_at if state else None,
        "internal_update_every": spoken(severity.internal_update_every),
        "war_room": war_room,
        "war_room_is_url": war_room.startswith(("http://", "https://")),
        "update": update,
        "resolved_at": incident.resolved_at or now,
        "duration": humanize(end - incident.declared_at),
        "root_cause": getattr(getattr(incident, "review", None), "primary_cause", ""),
        "review_required": bool(getattr(getattr(incident, "review", None), "required", False)),
        "incident_url": incident_url(incident),
    }
    if state is None and severity.internal_update_every and incident.is_open:
        context["next_update"] = incident.declared_at + severity.internal_update_every
    context.update(extra)
    return context


def public_context(
    incident, *, now: datetime, update: IncidentUpdate | None = None, **extra
) -> dict:
    """What public templates (status page, stakeholders) see: the public face only. No
    incident object, so an edited template cannot print an internal field."""
    state = _comms(incident)
    organisation = CommsSettings.load().organisation
    end = incident.resolved_at or now
    context = {
        "title": public_title(incident, state),
        "status": incident.get_status_display().upper(),
        "services": public_services(incident),
        "public_text": update.public_text if update else "",
        "now": now,
        "started_at": incident.declared_at,
        "resolved_at": incident.resolved_at or now,
        "duration": humanize(end - incident.declared_at),
        "next_update": state.next_stakeholder_due_at if state else None,
        "organisation": organisation,
        "status_page_url": status_page_url(),
        "unsubscribe_url": "",
    }
    context.update(extra)
    return context


def context_for(key: str, incident, *, now: datetime, update=None, **extra) -> dict:
    if default(key).context == PUBLIC:
        return public_context(incident, now=now, update=update, **extra)
    return internal_context(incident, now=now, update=update, **extra)
