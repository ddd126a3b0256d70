"""War rooms: opened by the runbook's rules, with a link from a configurable template.

incident-escalation-flow.md, "When to Create War Room": all P0 incidents (immediately), P1
incidents if escalated to a manager, any security incident, multiple concurrent incidents. The
first three are facts of the incident; "multiple concurrent" is read as a second P0/P1 open at
the same time (lesser incidents run in their own channel). Opening is recorded once; the link
is in every alert and update sent afterwards, including the initial alert.
"""

import re
from datetime import datetime

from incidents.models import Incident, TimelineEntry
from incidents.services import record_event

from . import services
from .models import CommsSettings, IncidentComms

# Severity ranks that count as "P0/P1" for the concurrent-incident rule.
MAJOR_RANKS = 1
MANAGER_TARGETS = ("role:engineering-manager",)


def slug(text: str, *, length: int = 40) -> str:
    """Whole words of the title, at most ``length`` characters (chat channel names are short)."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(words) > length:
        cut = words[: length + 1]
        words = cut[: cut.rfind("-")] if "-" in cut else words[:length]
    return words or "incident"


def link_for(incident: Incident, template: str | None = None) -> str:
    template = template if template is not None else CommsSettings.load().war_room_link
    values = {
        "date": f"{incident.declared_at:%Y-%m-%d}",
        "slug": slug(incident.title),
        "id": incident.public_id,
        "number": f"{incident.sequence:03d}",
    }
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        # An unknown placeholder in the setting must not stop an incident: use the runbook's.
        return "#incident-{date}-{slug}".format(**values)


def rule_for(incident: Incident) -> str:
    """Why this incident needs a war room now, or "" if the rules do not ask for one."""
    severity = incident.severity
    if severity.war_room_required:
        return f"every {severity.code} gets a war room"
    if incident.is_security:
        return "security incident"
    if severity.rank <= MAJOR_RANKS:
        other = (
            Incident.objects.open()
            .filter(severity__rank__lte=MAJOR_RANKS)
            .exclude(pk=incident.pk)
            .order_by("declared_at")
            .values_list("public_id", flat=True)
            .first()
        )
        if other:
            return f"concurrent with {other}"
    return ""


def open_if_required(
    incident: Incident, state: IncidentComms, *, now: datetime, reason: str = "", save: bool = True
) -> bool:
    """Open the war room when a rule (or ``reason``) asks and it is not open yet."""
    if state.war_room_opened_at is not None or not incident.is_open:
        return False
    reason = reason or rule_for(incident)
    if not reason:
        return False
    state.war_room_url = link_for(incident)
    state.war_room_opened_at = now
    state.war_room_reason = reason[:200]
    if save:
        state.save(update_fields=["war_room_url", "war_room_opened_at", "war_room_reason"])
    record_event(
        incident,
        TimelineEntry.Kind.COMMUNICATION,
        f"War room opened ({reason}): {state.war_room_url}",
        now=now,
        data={"war_room": state.war_room_url, "reason": reason},
    )
    return True


def escalated_to_manager(incident: Incident, targets, *, now: datetime) -> bool:
    """Called by the escalation engine when a step fires: a P1 (or worse) whose escalation
    reached the Engineering Manager gets a war room."""
    if incident.severity.rank > MAJOR_RANKS:
        return False
    if not any(target in MANAGER_TARGETS for target in targets):
        return False
    return open_if_required(
        incident,
        services.state_of(incident),
        now=now,
        reason="escalated to the Engineering Manager",
    )


def participants(incident: Incident) -> list[tuple[object | None, str, str]]:
    """(user, address, what they are): the incident's roles and everyone its escalation paged."""
    return [
        (user, address, label)
        for address, (user, label) in services.internal_recipients(incident).items()
    ]
