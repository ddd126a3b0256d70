"""Acknowledging from an escalation email (DESIGN.md principle 9).

The link carries the notification's uid, signed with a salt used for nothing else and
expiring after ACK_LINK_MAX_AGE. Opening it changes nothing; the confirmation page's POST
acknowledges the incident as the person the email was sent to, once.
"""

from datetime import datetime

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from comms.models import Notification
from incidents.services import IncidentError, acknowledge_incident
from ops.people import display_name

from .engine import ACK_SALT


class LinkError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def notification_from_token(token: str) -> Notification:
    try:
        uid = signing.loads(token, salt=ACK_SALT, max_age=settings.ACK_LINK_MAX_AGE.total_seconds())
    except signing.SignatureExpired as exc:
        raise LinkError(
            "This link has expired. Acknowledge the incident in the portal instead."
        ) from exc
    except signing.BadSignature as exc:
        raise LinkError("This link is not valid (it may have been cut or altered).") from exc
    notification = (
        Notification.objects.select_related(
            "incident__severity", "incident__acknowledged_by", "user"
        )
        .filter(uid=uid, incident__isnull=False)
        .first()
    )
    if notification is None or notification.user is None:
        raise LinkError("This link does not lead to an incident any more.")
    return notification


def refusal(notification: Notification) -> str | None:
    """Why the button would do nothing, in words for the page; None when it would work."""
    if notification.link_used_at is not None:
        return f"This link was already used at {notification.link_used_at:%Y-%m-%d %H:%M} UTC."
    return incident_refusal(notification.incident)


def incident_refusal(incident) -> str | None:
    """Why the incident cannot be acknowledged any more; None when it can."""
    if incident.acknowledged_at is not None:
        return (
            f"{incident.public_id} was already acknowledged by "
            f"{display_name(incident.acknowledged_by, nobody='the portal')} at "
            f"{incident.acknowledged_at:%Y-%m-%d %H:%M} UTC."
        )
    if not incident.is_open:
        return f"{incident.public_id} is {incident.get_status_display().lower()}."
    return None


@transaction.atomic
def acknowledge_from_link(notification: Notification, *, now: datetime | None = None):
    now = now or timezone.now()
    # Claim the link first: two clicks at once acknowledge once.
    claimed = Notification.objects.filter(pk=notification.pk, link_used_at__isnull=True).update(
        link_used_at=now
    )
    notification.refresh_from_db()
    if not claimed:
        raise LinkError(refusal(notification) or "This link was already used.")
    # Not ``refusal``: the link is used now, by this very click.
    reason = incident_refusal(notification.incident)
    if reason:
        raise LinkError(reason)
    try:
        return acknowledge_incident(notification.incident, by=notification.user, now=now)
    except IncidentError as exc:
        raise LinkError(exc.message) from exc
