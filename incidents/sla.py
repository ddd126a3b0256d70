"""How an incident's SLA clock reads at an instant: which deadline, how long left, what colour."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Incident

# Under a quarter of the SLA window left turns the clock amber.
WARNING_FRACTION = 0.25


@dataclass(frozen=True)
class SlaClock:
    kind: str  # "ack", "resolve", "resolved", "closed"
    label: str  # "Ack due in 12m", "Resolution overdue 1h 05m", "Resolved in 3h 10m (late)"
    state: str  # "ok", "warning", "overdue", "met", "missed"
    due_at: datetime | None


def humanize(delta: timedelta) -> str:
    """``2d 3h``, ``1h 05m``, ``12m``, ``40s``: short enough for a list column."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


def sla_clock(incident: Incident, now: datetime) -> SlaClock:
    """The clock a responder cares about now.

    Unacknowledged: the acknowledgement deadline. Acknowledged and open: the resolution
    deadline. Resolved or closed: whether resolution met its target.
    """
    if incident.resolved_at is not None:
        took = humanize(incident.resolved_at - incident.declared_at)
        if incident.resolved_at > incident.resolution_due_at:
            return SlaClock("resolved", f"Resolved in {took} (target missed)", "missed", None)
        return SlaClock("resolved", f"Resolved in {took}", "met", None)
    if incident.acknowledged_at is None:
        kind, due, word = "ack", incident.ack_due_at, "Ack"
    else:
        kind, due, word = "resolve", incident.resolution_due_at, "Resolution"
    left = due - now
    if left < timedelta(0):
        return SlaClock(kind, f"{word} overdue {humanize(left)}", "overdue", due)
    window = due - incident.declared_at
    warning = window > timedelta(0) and left <= window * WARNING_FRACTION
    return SlaClock(kind, f"{word} due in {humanize(left)}", "warning" if warning else "ok", due)
