from django import template
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.utils import timezone

from escalation.models import Handoff
from escalation.services import coverage

register = template.Library()

UPCOMING_DAYS = 7


@register.inclusion_tag("admin/escalation/on_call_panel.html")
def on_call_panel():
    """Who is on call now in each rotation, and the gaps coming up: constant queries."""
    now = timezone.now()
    overdue = list(
        Handoff.objects.filter(acknowledged_at__isnull=True)
        .annotate(
            due=ExpressionWrapper(
                F("boundary_at") + F("rotation__handoff_ack_within"), output_field=DateTimeField()
            )
        )
        .filter(due__lt=now)
        .select_related("rotation", "incoming")
        .order_by("boundary_at")[:20]
    )
    return {"rows": coverage(now, days=UPCOMING_DAYS), "days": UPCOMING_DAYS, "overdue": overdue}
