from django import template
from django.utils import timezone

from escalation.models import Handoff
from escalation.services import coverage

register = template.Library()

UPCOMING_DAYS = 7
OVERDUE_SHOWN = 20


@register.inclusion_tag("admin/escalation/on_call_panel.html")
def on_call_panel():
    """Who is on call now in each rotation, and the gaps coming up: constant queries."""
    now = timezone.now()
    overdue = list(
        Handoff.objects.overdue(now)
        .select_related("rotation", "incoming")
        .order_by("boundary_at")[:OVERDUE_SHOWN]
    )
    return {"rows": coverage(now, days=UPCOMING_DAYS), "days": UPCOMING_DAYS, "overdue": overdue}
