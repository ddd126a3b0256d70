from django import template

from escalation.services import coverage

register = template.Library()

UPCOMING_DAYS = 7


@register.inclusion_tag("admin/escalation/on_call_panel.html")
def on_call_panel():
    """Who is on call now in each rotation, and the gaps coming up: constant queries."""
    return {"rows": coverage(days=UPCOMING_DAYS), "days": UPCOMING_DAYS}
