"""What a policy would do, without sending anything: the admin preview and simulate_escalation.

The same pure planner the engine uses, replayed over a simulated incident, with each firing's
targets resolved against the real roster at the time it would fire.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from . import planner
from .engine import policy_steps
from .models import EscalationPolicy, Flag
from .services import resolve_targets


@dataclass(frozen=True)
class Row:
    offset: timedelta
    step: str
    targets: list[str]
    recipients: list[str]  # email addresses
    names: list[str]
    channel: str
    gaps: list[str]

    def as_dict(self) -> dict:
        return {
            "offset_seconds": int(self.offset.total_seconds()),
            "step": self.step,
            "targets": self.targets,
            "recipients": self.recipients,
            "channel": self.channel,
        }


class NoPolicy(Exception):
    pass


def steps_for_incident(code: str, *, security: bool = False, data_loss: bool = False):
    """The snapshot an incident of this severity and these flags would get now."""
    flags = [f for f, on in ((Flag.SECURITY, security), (Flag.DATA_LOSS, data_loss)) if on]
    policies = list(
        EscalationPolicy.objects.filter(Q(severity__code=code) | Q(flag__in=flags))
        .prefetch_related("steps")
        .select_related("severity")
    )
    if not any(p.severity_id for p in policies):
        raise NoPolicy(f"No escalation policy for severity {code!r}.")
    policies.sort(key=lambda p: (p.severity_id is None, p.flag, p.pk))
    return [step for policy in policies for step in policy_steps(policy)]


def simulate(
    steps,
    declared_at: datetime,
    *,
    acknowledged_after: timedelta | None = None,
    resolved_after: timedelta | None = None,
    root_cause_after: timedelta | None = None,
    until: timedelta = timedelta(days=7),
) -> list[Row]:
    firings = planner.timeline(
        steps,
        declared_at,
        acknowledged_after=acknowledged_after,
        resolved_after=resolved_after,
        root_cause_after=root_cause_after,
        until=until,
    )
    from comms.models import Webhook

    webhooks = sorted(
        Webhook.objects.filter(is_active=True, escalations=True).values_list("name", flat=True)
    )
    rows = []
    for firing in firings:
        resolved = resolve_targets(firing.step.targets, firing.due_at)
        people = [person for target in resolved for person in target.people]
        emails = sorted(
            {p if isinstance(p, str) else p.email for p in people if isinstance(p, str) or p.email}
        )
        names = sorted(
            {p if isinstance(p, str) else (p.get_full_name() or p.username) for p in people}
        )
        for channel in firing.step.channels:
            if channel == "webhook" and not webhooks:
                continue  # nothing would be posted
            rows.append(
                Row(
                    offset=firing.due_at - declared_at,
                    step=firing.step.label or firing.step.key,
                    targets=[target.label for target in resolved],
                    recipients=webhooks if channel == "webhook" else emails,
                    names=names,
                    channel=channel,
                    gaps=[t.label for t in resolved if not t.people],
                )
            )
    return rows
