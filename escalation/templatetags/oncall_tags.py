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


NOTIFICATIONS_SHOWN = 50


@register.inclusion_tag("admin/escalation/escalation_panel.html")
def escalation_panel(incident):
    """The incident's escalation: the policy it follows, what fired (and to whom, and any gap),
    what comes next if nothing changes, and each notification's delivery state."""
    from comms.models import Notification
    from escalation import engine, planner
    from escalation.models import Escalation, FiredStep

    escalation = Escalation.objects.filter(incident=incident).first()
    fired = list(FiredStep.objects.filter(incident=incident).order_by("fired_at", "pk"))
    upcoming = []
    if escalation is not None:
        result = planner.plan(
            engine.facts_of(incident),
            [engine.step_from_dict(s) for s in escalation.steps],
            timezone.now(),
            {(f.step_key, f.repetition) for f in fired},
        )
        upcoming = (result.due + result.upcoming)[:10]
    notifications = list(
        Notification.objects.filter(incident=incident).order_by("-created_at", "-pk")[
            :NOTIFICATIONS_SHOWN
        ]
    )
    return {
        "escalation": escalation,
        "fired": fired,
        "upcoming": upcoming,
        "notifications": notifications,
        "now": timezone.now(),
    }


@register.inclusion_tag("admin/escalation/stall_panel.html")
def stall_panel():
    """Escalation steps or notifications overdue by more than a minute: the portal's own alarm."""
    from comms import outbox
    from escalation import engine

    return {"steps": engine.stalled(), "notifications": outbox.stalled()}
