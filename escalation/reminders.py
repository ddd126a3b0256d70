"""Reminders that keep reviews and action items from rotting (the review issue, point 3).

* An action item's owner hears ``remind_before`` its due date, and again once it is overdue.
* An overdue review goes to the incident's commander at once, then, ``escalate_after`` later, to
  the Engineering Manager role.

Each reminder is claimed with a conditional UPDATE and written to the notification outbox in the
same transaction: sent once, never lost, visible in the delivery log.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from comms import outbox
from comms.services import email_people
from incidents import reviews
from incidents.models import ActionItem, Review
from ops.people import display_name

from .models import OrgRole
from .services import role_holders

MANAGER_ROLE = "engineering-manager"


def _link(name: str, pk: int) -> str:
    return settings.SITE_URL + reverse(name, args=[pk])


def remind_action_items(now: datetime | None = None) -> int:
    now = now or timezone.now()
    today = now.date()
    soon = today + reviews.rules().remind_before
    open_items = ActionItem.objects.filter(
        status__in=[ActionItem.State.OPEN, ActionItem.State.IN_PROGRESS], owner__isnull=False
    ).select_related("owner", "review__incident")
    sent = 0
    due_soon = open_items.filter(reminded_at__isnull=True, due_date__lte=soon, due_date__gte=today)
    overdue = open_items.filter(ActionItem.overdue_on(today), overdue_reminded_at__isnull=True)
    for field, items, what in (
        ("reminded_at", due_soon, "is due on {due}"),
        ("overdue_reminded_at", overdue, "was due on {due} and is still open"),
    ):
        for item in items:
            with transaction.atomic():
                if not outbox.claim_once(ActionItem, item.pk, field, now):
                    continue
                incident = item.review.incident
                sent += email_people(
                    [item.owner],
                    reason=f"action-item-{field}:{item.pk}",
                    subject=f"[Action item] {item.action} ({incident.public_id})",
                    body=f"Hello {display_name(item.owner)},\n\n"
                    f"Your action item from the review of {incident.public_id} "
                    f"({incident.title}) {what.format(due=item.due_date.isoformat())}:\n\n"
                    f"  {item.action}\n  Priority: {item.get_priority_display()}\n\n"
                    f"Update it: {_link('admin:incidents_actionitem_change', item.pk)}\n",
                    incident=incident,
                )
    return sent


def remind_reviews(now: datetime | None = None) -> int:
    now = now or timezone.now()
    escalate_after = reviews.rules().escalate_after
    # Only the reviews still owed a reminder: a review reminded twice is not read again.
    overdue = (
        Review.objects.filter(Review.overdue_at(now))
        .filter(
            Q(commander_reminded_at__isnull=True)
            | Q(manager_reminded_at__isnull=True, due_at__lte=now - escalate_after)
        )
        .select_related("incident__declared_by")
    )
    sent = 0
    managers = None
    for review in overdue:
        incident = review.incident
        url = _link("admin:incidents_review_change", review.pk)
        late = f"was due {review.due_at:%Y-%m-%d %H:%M} UTC"
        with transaction.atomic():
            if review.commander_reminded_at is None and outbox.claim_once(
                Review, review.pk, "commander_reminded_at", now
            ):
                who = reviews.commander(incident) or incident.declared_by
                sent += email_people(
                    [who],
                    reason=f"review-overdue-commander:{review.pk}",
                    subject=f"[Review overdue] {incident.public_id}: {incident.title}",
                    body=f"Hello {display_name(who)},\n\nThe post-incident review of "
                    f"{incident.public_id} {late} (the runbook asks for it within 48 hours "
                    f"of resolution). Required because: {'; '.join(review.reasons)}.\n\n"
                    f"Write it: {url}\n",
                    incident=incident,
                )
        if now < review.due_at + escalate_after or review.manager_reminded_at is not None:
            continue
        if managers is None:
            role = OrgRole.objects.filter(slug=MANAGER_ROLE).prefetch_related("holders").first()
            managers = role_holders([role], now)[0][1] if role else []
        with transaction.atomic():
            if outbox.claim_once(Review, review.pk, "manager_reminded_at", now):
                sent += email_people(
                    managers,
                    reason=f"review-overdue-manager:{review.pk}",
                    subject=f"[Review overdue, escalated] {incident.public_id}: {incident.title}",
                    body=f"The post-incident review of {incident.public_id} {late} and is still "
                    f"not complete; its commander was reminded. Required because: "
                    f"{'; '.join(review.reasons)}.\n\nReview: {url}\n",
                    incident=incident,
                )
    return sent


def run_reminders(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {"action_items": remind_action_items(now), "reviews": remind_reviews(now)}
