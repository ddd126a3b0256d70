"""The escalation engine: fires each due step exactly once and writes its notifications.

DESIGN.md section 2. The database is the truth: an incident's ``Escalation`` row holds its
policy snapshot and ``next_due_at``; ``FiredStep`` rows (unique per incident, step key and
repetition) are what already fired. Beat's tick and the ETA wake-ups both call ``run_due``,
which claims due incidents with ``SELECT ... FOR UPDATE SKIP LOCKED``, asks the pure planner
what is due, and records firings, notifications (``comms.outbox``) and timeline entries in one
transaction. A lost, late, early or repeated wake-up changes nothing.

Lock order is the incident row, then its escalation row, the same order as the incident
services (whose ``incident_changed`` receiver re-plans inside their transaction), so the two
can never deadlock; an incident a person is changing right now is skipped and picked up by the
wake-up that change schedules.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from comms import outbox, rendering, war_room
from comms.models import Audience, Communication, Webhook
from comms.services import thread_headers
from config.logging import incident_context
from incidents.models import Incident, TimelineEntry
from incidents.services import record_event
from incidents.signals import incident_changed
from ops.people import display_name

from .models import Escalation, EscalationPolicy, FiredStep, Flag
from .planner import Facts, Firing, Step, plan, with_rounds
from .services import resolve_targets

log = logging.getLogger(__name__)

ACK_SALT = "escalation.ack-link"
STALL_AFTER = timedelta(minutes=1)
RESNAPSHOT = ("declared", "severity", "flags")


# --- Policies -> planner steps (the snapshot) ----------------------------------------------


def policy_steps(policy: EscalationPolicy) -> list[Step]:
    """A policy as planner steps, rounds expanded; keys carry the policy id (unique per
    snapshot, stable across re-snapshots of the same policy)."""
    steps = [
        Step(
            key=f"{policy.pk}.{step.key}",
            delay=step.delay,
            condition=step.condition,
            targets=tuple(step.targets),
            channels=tuple(step.channels),
            repeat_every=step.repeat_every,
            repeat_times=step.repeat_times,
            label=step.label,
        )
        for step in policy.steps.all()
    ]
    if policy.repeat_from and policy.repeat_cycles:
        steps = with_rounds(steps, policy.repeat_from - 1, policy.repeat_cycles, policy.repeat_gap)
    return steps


def step_to_dict(step: Step, group: int) -> dict:
    return {
        "key": step.key,
        "group": group,
        "label": step.label,
        "delay": step.delay.total_seconds(),
        "condition": step.condition,
        "targets": list(step.targets),
        "channels": list(step.channels),
        "repeat_every": step.repeat_every.total_seconds() if step.repeat_every else None,
        "repeat_times": step.repeat_times,
    }


def step_from_dict(data: dict) -> Step:
    every = data.get("repeat_every")
    return Step(
        key=data["key"],
        delay=timedelta(seconds=data["delay"]),
        condition=data["condition"],
        targets=tuple(data["targets"]),
        channels=tuple(data["channels"]),
        repeat_every=timedelta(seconds=every) if every else None,
        repeat_times=data.get("repeat_times", 0),
        label=data.get("label", ""),
    )


def policies_for(incident: Incident) -> list[EscalationPolicy]:
    flags = [
        flag
        for flag, on in (
            (Flag.SECURITY, incident.is_security),
            (Flag.DATA_LOSS, incident.is_data_loss),
        )
        if on
    ]
    found = EscalationPolicy.objects.filter(Q(severity_id=incident.severity_id) | Q(flag__in=flags))
    policies = list(found.prefetch_related("steps"))
    # The severity's policy first, then the flag rules: fall-through stays inside each.
    return sorted(policies, key=lambda p: (p.severity_id is None, p.flag, p.pk))


def snapshot_for(incident: Incident) -> tuple[list[dict], list[str]]:
    steps, names = [], []
    for policy in policies_for(incident):
        names.append(policy.name)
        steps += [step_to_dict(step, policy.pk) for step in policy_steps(policy)]
    return steps, names


def facts_of(incident: Incident) -> Facts:
    return Facts(
        declared_at=incident.declared_at,
        acknowledged_at=incident.acknowledged_at,
        root_cause_identified_at=incident.root_cause_identified_at,
        resolved_at=incident.resolved_at,
    )


def fired_of(incident: Incident) -> set[tuple[str, int]]:
    return set(FiredStep.objects.filter(incident=incident).values_list("step_key", "repetition"))


# --- Following the incident (the incidents app's one hook) ---------------------------------


@receiver(incident_changed, dispatch_uid="escalation.follow")
def _on_incident_changed(sender, *, incident, change, now, **kwargs) -> None:
    follow(incident, change, now=now)


def follow(incident: Incident, change: str, *, now: datetime) -> Escalation:
    """Snapshot the policy (on declaration, severity or flag change) and set when the
    escalation is next due. Runs inside the incident service's transaction."""
    escalation = Escalation.objects.select_for_update().filter(incident=incident).first()
    if escalation is None or change in RESNAPSHOT:
        steps, names = snapshot_for(incident)
        if escalation is None:
            # No timeline entry of its own: the first step's firing follows in seconds.
            escalation = Escalation(incident=incident, snapshot_at=now)
        elif steps != escalation.steps:
            record_event(
                incident,
                TimelineEntry.Kind.ESCALATED,
                "Escalation re-planned from the declaration time: now "
                + (" + ".join(names) or "no policy")
                + "; steps already fired are not repeated",
                now=now,
                data={"policies": names, "from": escalation.policies},
            )
        escalation.steps, escalation.policies, escalation.snapshot_at = steps, names, now
    _set_next_due(escalation, incident, now)
    escalation.save()
    return escalation


def _set_next_due(escalation: Escalation, incident: Incident, now: datetime) -> None:
    result = plan(
        facts_of(incident),
        [step_from_dict(s) for s in escalation.steps],
        now,
        fired_of(incident) if escalation.pk else (),
    )
    escalation.next_due_at = now if result.due else result.next_due_at
    if escalation.next_due_at is not None:
        at = escalation.next_due_at
        transaction.on_commit(lambda: wake(at))


def wake(at: datetime) -> None:
    """An ETA wake-up for ``at`` (beat's tick covers anything later than CELERY_MAX_ETA, and
    anything a broker outage loses)."""
    from .tasks import tick

    now = timezone.now()
    try:
        if at <= now:
            tick.apply_async(retry=False)
        elif at - now <= settings.CELERY_MAX_ETA:
            tick.apply_async(kwargs={"due_at": at.isoformat()}, eta=at, retry=False)
    except Exception as exc:  # kombu raises transport-specific errors
        log.warning("broker unreachable (%s): the periodic tick will catch up", type(exc).__name__)


# --- The tick -------------------------------------------------------------------------------


@dataclass
class RunResult:
    incidents: int = 0
    fired: int = 0
    notifications: int = 0
    failed: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "incidents": self.incidents,
            "fired": self.fired,
            "notifications": self.notifications,
            "failed": self.failed,
        }


def run_due(now: datetime | None = None, *, limit: int = 1000) -> RunResult:
    """Fire every step due at ``now``: one transaction per incident, claimed with SKIP LOCKED,
    so any number of ticks and workers can run this at once without firing anything twice."""
    now = now or timezone.now()
    result = RunResult()
    while result.incidents + len(result.failed) < limit:
        with transaction.atomic():
            incident = (
                Incident.objects.filter(escalation__next_due_at__lte=now)
                .exclude(pk__in=result.failed)
                .select_related("severity")
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("escalation__next_due_at")
                .first()
            )
            if incident is None:
                break
            try:
                with transaction.atomic(), incident_context(incident.public_id):
                    fired, sent = _run_one(incident, now)
            except Exception:
                # Left due: the stall check shows it, and the next tick tries again.
                log.exception("escalation of %s failed", incident.public_id)
                result.failed.append(incident.pk)
                continue
        result.incidents += 1
        result.fired += fired
        result.notifications += sent
    return result


def _run_one(incident: Incident, now: datetime) -> tuple[int, int]:
    escalation = Escalation.objects.select_for_update().get(incident=incident)
    snapshot = escalation.steps
    steps = [step_from_dict(s) for s in snapshot]
    facts = facts_of(incident)
    fired = fired_of(incident)
    pending: list[tuple[Firing, str]] = [(f, "") for f in plan(facts, steps, now, fired).due]
    count = sent = 0
    while pending:
        firing, fell_from = pending.pop(0)
        if firing.identity in fired:
            continue
        record, notified = _fire(incident, firing, now, fell_from=fell_from)
        fired.add(firing.identity)
        count += 1
        sent += notified
        if not record.recipients:
            # Nobody was reached (a gap in the rotation, an empty role): the next step of the
            # same policy fires now instead of waiting for its own time.
            following = _next_in_group(snapshot, firing.step.key, fired, facts, now)
            if following is not None:
                pending.append((Firing(following, 0, now), firing.step.key))
    after = plan(facts, steps, now, fired)
    escalation.next_due_at = now if after.due else after.next_due_at
    escalation.last_run_at = now
    escalation.save(update_fields=["next_due_at", "last_run_at"])
    if escalation.next_due_at is not None:
        at = escalation.next_due_at
        transaction.on_commit(lambda: wake(at))
    return count, sent


def _next_in_group(
    snapshot: list[dict], key: str, fired: set, facts: Facts, now: datetime
) -> Step | None:
    """The step a gap falls through to: the next one of the same policy not fired yet."""
    index = next(i for i, s in enumerate(snapshot) if s["key"] == key)
    group = snapshot[index]["group"]
    for data in snapshot[index + 1 :]:
        if data["group"] != group or (data["key"], 0) in fired:
            continue
        if facts.condition_holds(data["condition"], now):
            return step_from_dict(data)
    return None


def _fire(
    incident: Incident, firing: Firing, now: datetime, *, fell_from: str = ""
) -> tuple[FiredStep, int]:
    step = firing.step
    resolved = resolve_targets(step.targets, now)
    people: dict[str, tuple[object | None, str]] = {}  # address -> (user, what they are)
    gaps = []
    for target in resolved:
        if not target.people:
            gaps.append(f"{target.label}: nobody")
        for person in target.people:
            if isinstance(person, str):
                people.setdefault(person, (None, target.label))
            elif person.email:
                people.setdefault(person.email, (person, target.label))
            else:
                gaps.append(f"{display_name(person)} ({target.label}): no email address")
    reason = f"escalation:{incident.pk}:{step.key}:{firing.repetition}"
    if step.targets:
        # "P1 escalated to a manager" opens a war room before its alert is written.
        war_room.escalated_to_manager(incident, step.targets, now=now)
    hooks = []
    if "webhook" in step.channels:
        hooks = list(Webhook.objects.filter(is_active=True, escalations=True))
    emailed = people if "email" in step.channels else {}
    messages = []
    if emailed or hooks:
        # One context and one template read per firing: the commander lookup, the deadlines and
        # the text in force are the same for everyone paged.
        context = alert_context(incident, firing, now=now)
        src = rendering.source("initial_alert")
        # As everyone on a channel reads it, without a personal acknowledge link: for the log.
        shared = rendering.render_source(src, {**context, "ack_url": ""})
        if emailed:
            logged = _log_alert(incident, shared, "email", list(emailed), now)
            for address, (user, role) in emailed.items():
                messages.append(_email(incident, context, src, reason, address, user, role, logged))
        if hooks:
            messages += _webhooks(incident, context, shared, reason, people, hooks, now)
    rows = outbox.queue(messages, now=now)
    names = [
        f"{display_name(user) if user else address} ({role})"
        for address, (user, role) in people.items()
    ]
    record = FiredStep.objects.create(
        incident=incident,
        step_key=step.key,
        repetition=firing.repetition,
        label=step.label or step.key,
        due_at=firing.due_at,
        fired_at=now,
        targets=[{"target": t.target, "label": t.label, "count": len(t.people)} for t in resolved],
        recipients=list(people),
        gaps=gaps,
        fell_through_from=fell_from,
    )
    body = f"Escalation: {record.label}" + (
        f" (repeat {firing.repetition})" if firing.repetition else ""
    )
    if fell_from:
        body += " [fell through: the step before found nobody]"
    body += ". Notified " + (", ".join(names) if names else "nobody")
    used = sorted({message.channel for message in messages})
    body += f" by {', '.join(used)}." if names else "."
    if gaps:
        body += " GAP: " + "; ".join(gaps) + "."
    record_event(
        incident,
        TimelineEntry.Kind.ESCALATED,
        body,
        now=now,
        data={
            "step": step.key,
            "repetition": firing.repetition,
            "recipients": list(people),
            "gaps": gaps,
            "fell_through_from": fell_from,
            "notifications": len(rows),
        },
    )
    log.info("fired %s#%d: %d notifications", step.key, firing.repetition, len(rows))
    return record, len(rows)


# --- What the messages say ----------------------------------------------------------------


def _log_alert(incident, alert, channel, recipients, now) -> Communication:
    """The communication log's entry for one firing on one channel (the recipients' own copies
    differ only by their acknowledge link)."""
    return Communication.objects.create(
        incident=incident,
        at=now,
        audience=Audience.INTERNAL,
        channel=channel,
        template="initial_alert",
        recipients=recipients[:500],
        recipient_count=len(recipients),
        subject=alert.subject,
        body=alert.text,
    )


def ack_url(uid) -> str:
    token = signing.dumps(str(uid), salt=ACK_SALT, compress=False)
    return settings.SITE_URL + reverse("escalation-ack", args=[token])


def alert_context(incident: Incident, firing: Firing, *, now: datetime) -> dict:
    """The runbook's INCIDENT ALERT fields (incident-response-guide.md, step 3), the war room
    when one is open, and why this recipient is paged."""
    return rendering.internal_context(
        incident, now=now, step=firing.step, repetition=firing.repetition
    )


def _email(incident, context, src, reason, address, user, role, communication) -> outbox.Message:
    uid = outbox.new_uid()
    message = rendering.render_source(
        src,
        {
            **context,
            "recipient": display_name(user) if user else address,
            "role": role,
            "ack_url": ack_url(uid) if user and incident.acknowledged_at is None else "",
        },
    )
    return outbox.Message(
        reason=reason,
        channel="email",
        recipient=address,
        subject=message.subject,
        body_text=message.text,
        body_html=message.html,
        headers=thread_headers(incident, Audience.INTERNAL),
        user=user,
        incident=incident,
        uid=uid,
        communication=communication,
    )


def _webhooks(incident, context, alert, reason, people, hooks, now) -> list[outbox.Message]:
    step, repetition = context["step"], context["repetition"]
    communication = _log_alert(incident, alert, "webhook", [hook.name for hook in hooks], now)
    text = alert.text.strip()
    payload = {
        "event": "escalation.step_fired",
        "incident": {
            "id": incident.public_id,
            "title": incident.title,
            "severity": incident.severity.code,
            "status": incident.status,
            "declared_at": incident.declared_at.isoformat(),
            "acknowledged_at": incident.acknowledged_at.isoformat()
            if incident.acknowledged_at
            else None,
            "security": incident.is_security,
            "data_loss": incident.is_data_loss,
            "url": context["incident_url"],
            "war_room": context["war_room"] or None,
        },
        "step": {
            "key": step.key,
            "label": step.label,
            "repetition": repetition,
        },
        "recipients": sorted(people),
        "text": text,
    }
    return [
        outbox.Message(
            reason=reason,
            channel="webhook",
            recipient=f"webhook:{hook.pk}",
            subject=alert.subject,
            body_text=text,
            payload=payload,
            incident=incident,
            communication=communication,
        )
        for hook in hooks
    ]


# --- Watching itself --------------------------------------------------------------------------


def stalled(now: datetime | None = None) -> dict:
    """Escalations due more than a minute ago and still not run (reported on /api/health)."""
    now = now or timezone.now()
    late = Escalation.objects.filter(next_due_at__lt=now - STALL_AFTER)
    oldest = late.order_by("next_due_at").values_list("next_due_at", flat=True).first()
    return {"count": late.count(), "oldest_due_at": oldest}
