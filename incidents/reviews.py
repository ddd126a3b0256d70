"""Post-incident reviews: when one is required, the draft, completing it, and its action items.

incident-response-guide.md, "Post-Incident Review": conduct within 48 hours of resolution for
every P0, every P1 lasting more than 4 hours, every security incident, every incident with data
loss, and recurring incidents. An incident whose review is required closes only once the review
is complete. Each function is one transaction and writes its timeline entry.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.utils import timezone

from ops.people import display_name

from .models import (
    ActionItem,
    Incident,
    IncidentRole,
    Review,
    ReviewRules,
    Service,
    Status,
    TimelineEntry,
)

# Sections that must say something before a review is complete (the template's substance).
REQUIRED_SECTIONS = {
    "primary_cause": "Primary cause",
    "immediate_fix": "Immediate fix",
    "went_well": "What went well",
    "could_improve": "What could be improved",
    "lessons_learned": "Lessons learned",
}


class ReviewError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def rules() -> ReviewRules:
    found = ReviewRules.objects.order_by("pk").first()
    return found or ReviewRules.objects.create()


def _entry(incident: Incident, body: str, *, by, now: datetime, data: dict) -> None:
    TimelineEntry.objects.create(
        incident=incident,
        at=now,
        kind=TimelineEntry.Kind.REVIEW,
        author=by,
        body=body,
        data=data,
    )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} hours {minutes} minutes" if hours else f"{minutes} minutes"


def required_because(incident: Incident, now: datetime, review_rules: ReviewRules) -> list[str]:
    """The runbook's reasons that apply to a resolved incident (empty: no review required)."""
    reasons = []
    severity = incident.severity
    if severity.review_required:
        reasons.append(f"{severity.code} incidents always get a review")
    lasted = (incident.resolved_at or now) - incident.detected_at
    longer_than = severity.review_required_if_longer_than
    if longer_than and lasted > longer_than:
        reasons.append(
            f"{severity.code} lasting {_duration(lasted)} (over {_duration(longer_than)})"
        )
    if incident.is_security:
        reasons.append("security incident")
    if incident.is_data_loss:
        reasons.append("data loss")
    since = incident.declared_at - timedelta(days=review_rules.recurring_days)
    window = Incident.objects.filter(declared_at__gte=since, declared_at__lte=incident.declared_at)
    count = review_rules.recurring_count
    if incident.incident_type_id:
        same_type = window.filter(incident_type_id=incident.incident_type_id).count()
        if same_type >= count:
            reasons.append(
                f"recurring: {same_type} {incident.incident_type.name} incidents in "
                f"{review_rules.recurring_days} days"
            )
    # One grouped query for all the incident's services, not one count per service.
    recurring_services = (
        Service.objects.filter(pk__in=incident.affected_services.values("pk"))
        .annotate(recent=Count("incidents", filter=Q(incidents__in=window)))
        .filter(recent__gte=count)
        .order_by("name")  # Meta.ordering does not apply to a grouped query
    )
    for service in recurring_services:
        reasons.append(
            f"recurring: {service.recent} incidents affecting {service.name} in "
            f"{review_rules.recurring_days} days"
        )
    return reasons


def draft(incident: Incident) -> dict[str, str]:
    """The sections the portal can fill from the incident: summary, timeline, impact."""
    detected = incident.detected_at
    end = incident.resolved_at or timezone.now()
    services = ", ".join(s.name for s in incident.affected_services.all()) or "not recorded"
    users = incident.users_affected if incident.users_affected is not None else "not recorded"
    summary = "\n".join(
        [
            f"Date/Time: {detected:%Y-%m-%d %H:%M} UTC",
            f"Duration: {_duration(end - detected)}",
            f"Severity: {incident.severity.code} - {incident.severity.name}",
            f"Service Affected: {services}",
            f"Users Impacted: {users}",
            "",
            incident.title + (f"\n{incident.summary}" if incident.summary else ""),
        ]
    )
    acknowledged = (
        f" - {display_name(incident.acknowledged_by)}" if incident.acknowledged_by_id else ""
    )
    milestones = [
        ("Detection", incident.detected_at, f" - {incident.get_detection_source_display()}"),
        ("Acknowledgment", incident.acknowledged_at, acknowledged),
        ("Investigation Start", incident.investigation_started_at, ""),
        ("Root Cause Identified", incident.root_cause_identified_at, ""),
        ("Fix Applied", incident.fix_applied_at, ""),
        ("Service Restored", incident.service_restored_at, ""),
        ("Verification Complete", incident.verification_completed_at, ""),
    ]
    lines = [
        f"{name}: {at:%Y-%m-%d %H:%M} UTC{extra}" if at else f"{name}: not recorded"
        for name, at, extra in milestones
    ]
    entries = incident.timeline.exclude(kind=TimelineEntry.Kind.REVIEW).order_by("at", "pk")
    lines += ["", "Timeline entries:"] + [
        f"{entry.at:%Y-%m-%d %H:%M} {entry.body}" for entry in entries.iterator()
    ]
    data_impact = (
        "Data loss was reported during the incident." if incident.is_data_loss else "None reported."
    )
    return {
        "summary": summary,
        "timeline": "\n".join(lines),
        "user_impact": incident.impact_scope,
        "data_impact": data_impact,
    }


@transaction.atomic
def on_resolved(incident: Incident, *, by, now: datetime) -> Review | None:
    """Called by the resolve service in its transaction: create (or re-date) the review."""
    review_rules = rules()
    reasons = required_because(incident, now, review_rules)
    review = Review.objects.select_for_update().filter(incident=incident).first()
    if review is None and not reasons:
        return None
    due_at = now + review_rules.due_within
    if review is None:
        review = Review.objects.create(
            incident=incident,
            required=True,
            reasons=reasons,
            created_at=now,
            due_at=due_at,
            **draft(incident),
        )
    else:
        review.reasons = list(dict.fromkeys([*review.reasons, *reasons]))
        review.required = review.required or bool(reasons)
        if review.state == Review.State.DRAFT:
            review.due_at = due_at
            # Re-draft the sections the portal wrote, unless someone edited them.
            for field, value in draft(incident).items():
                if not getattr(review, field).strip():
                    setattr(review, field, value)
        review.save()
    if review.required and review.state == Review.State.DRAFT:
        _entry(
            incident,
            f"Post-incident review required ({'; '.join(review.reasons)}), "
            f"due {review.due_at:%Y-%m-%d %H:%M} UTC",
            by=by,
            now=now,
            data={"reasons": review.reasons, "due_at": review.due_at.isoformat()},
        )
    return review


def refuse_close(incident: Incident) -> str | None:
    """Why this incident cannot be closed yet (its required review is not complete)."""
    review = Review.objects.filter(incident=incident).first()
    if review and review.required and review.state != Review.State.COMPLETE:
        return (
            f"{incident.public_id} needs its post-incident review completed before it can be "
            "closed."
        )
    return None


@transaction.atomic
def require_review(incident: Incident, *, by, reason: str, now: datetime | None = None) -> Review:
    """A review asked for by hand (any incident, before or after resolution)."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ReviewError("Say why this incident needs a review.", field="reason")
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    review = Review.objects.select_for_update().filter(incident=incident).first()
    why = f"requested by {display_name(by)}: {reason}"
    due_at = (incident.resolved_at + rules().due_within) if incident.resolved_at else None
    if review is None:
        review = Review.objects.create(
            incident=incident,
            required=True,
            reasons=[why],
            created_at=now,
            due_at=due_at,
            **draft(incident),
        )
    else:
        if review.state == Review.State.COMPLETE:
            raise ReviewError(f"The review of {incident.public_id} is already complete.")
        review.required = True
        review.reasons = [*review.reasons, why]
        review.due_at = review.due_at or due_at
        review.save(update_fields=["required", "reasons", "due_at"])
    _entry(incident, f"Post-incident review {why}", by=by, now=now, data={"reason": reason})
    return review


def missing_sections(review: Review) -> list[str]:
    return [
        label for field, label in REQUIRED_SECTIONS.items() if not getattr(review, field).strip()
    ]


@transaction.atomic
def complete_review(review: Review, *, by, now: datetime | None = None) -> Review:
    now = now or timezone.now()
    # The incident's lock first, in the order reopen_review and change_status take them.
    Incident.objects.select_for_update().get(pk=review.incident_id)
    review = Review.objects.select_for_update().select_related("incident").get(pk=review.pk)
    if review.state == Review.State.COMPLETE:
        raise ReviewError("This review is already complete.")
    if review.incident.resolved_at is None:
        raise ReviewError("Resolve the incident before completing its review.")
    missing = missing_sections(review)
    if missing:
        raise ReviewError(f"Fill in before completing: {', '.join(missing)}.")
    unowned = review.action_items.filter(owner__isnull=True).count()
    if unowned:
        raise ReviewError(f"{unowned} action item(s) have no owner: every action needs one.")
    review.state = Review.State.COMPLETE
    review.completed_at = now
    review.completed_by = by
    review._history_user = by
    review.save(update_fields=["state", "completed_at", "completed_by"])
    late = review.due_at is not None and now > review.due_at
    _entry(
        review.incident,
        f"{display_name(by)} completed the post-incident review"
        + (" (after its due time)" if late else ""),
        by=by,
        now=now,
        data={"late": late, "action_items": review.action_items.count()},
    )
    return review


@transaction.atomic
def reopen_review(review: Review, *, by, now: datetime | None = None) -> Review:
    now = now or timezone.now()
    # The incident's lock first, as change_status takes it before reading the review: a reopen
    # racing a close then waits for it and sees the closed status, instead of leaving a closed
    # incident with a draft review.
    incident = Incident.objects.select_for_update().get(pk=review.incident_id)
    review = Review.objects.select_for_update().get(pk=review.pk)
    if incident.status == Status.CLOSED:
        raise ReviewError("The incident is closed; its review is part of the record.")
    if review.state != Review.State.COMPLETE:
        raise ReviewError("This review is not complete.")
    review.state = Review.State.DRAFT
    review.completed_at = None
    review.completed_by = None
    review.save(update_fields=["state", "completed_at", "completed_by"])
    _entry(incident, f"{display_name(by)} reopened the review", by=by, now=now, data={})
    return review


def add_action_item(
    review: Review,
    *,
    action: str,
    owner,
    due_date: date,
    priority: str = ActionItem.Priority.MEDIUM,
    status: str = ActionItem.State.OPEN,
    now: datetime | None = None,
) -> ActionItem:
    now = now or timezone.now()
    action = (action or "").strip()
    if not action:
        raise ReviewError("Describe the action.", field="action")
    if owner is None:
        raise ReviewError("Every action item needs an owner.", field="owner")
    return ActionItem.objects.create(
        review=review,
        action=action,
        owner=owner,
        due_date=due_date,
        priority=priority,
        status=status,
        created_at=now,
    )


def set_action_status(item: ActionItem, status: str, *, now: datetime | None = None) -> ActionItem:
    item.status = ActionItem.State(status)
    if not item.is_open and item.closed_at is None:
        item.closed_at = now or timezone.now()
    item.save(update_fields=["status"])  # the model keeps closed_at in step with status
    return item


@dataclass(frozen=True)
class Export:
    filename: str
    content: str


def commander(incident: Incident):
    role = (
        IncidentRole.objects.filter(
            incident=incident, role=IncidentRole.Role.COMMANDER, unassigned_at__isnull=True
        )
        .select_related("user")
        .first()
    )
    return role.user if role else None


def context(review: Review) -> dict:
    incident = review.incident
    return {
        "review": review,
        "incident": incident,
        "items": list(review.action_items.select_related("owner")),
    }


def as_markdown(review: Review) -> Export:
    text = render_to_string("incidents/review.md", context(review))
    return Export(f"{review.incident.public_id}-review.md", text)
