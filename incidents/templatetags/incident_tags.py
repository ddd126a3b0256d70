import re
from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from incidents.models import Incident
from incidents.sla import humanize, sla_clock

register = template.Library()

# The home page lists this many open incidents, most severe first; the count is exact.
SHOWN_ON_HOME = 200


@register.filter
def short_duration(value: timedelta | None) -> str:
    return humanize(value) if value is not None else "-"


@register.filter(needs_autoescape=True)
def backticks(text: str, autoescape: bool = True) -> str:
    """Runbook steps quote commands in `backticks`; show them as code."""
    escaped = conditional_escape(text) if autoescape else text
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escaped)))


@register.inclusion_tag("admin/incidents/active_incidents.html", takes_context=True)
def active_incidents(context):
    """Open incidents the user may see, most severe first, with their clocks."""
    request = context["request"]
    now = timezone.now()
    visible = Incident.objects.visible_to(request.user).open()
    incidents = list(
        visible.select_related("severity").order_by("severity__rank", "declared_at", "pk")[
            :SHOWN_ON_HOME
        ]
    )
    groups: dict = {}
    for incident in incidents:
        clock = sla_clock(incident, now)
        groups.setdefault(incident.severity, []).append((incident, clock))
    count = len(incidents) if len(incidents) < SHOWN_ON_HOME else visible.count()
    return {
        "groups": list(groups.items()),
        "count": count,
        "shown": len(incidents),
        "can_declare": request.user.has_perm("incidents.add_incident"),
    }
