"""The notification outbox: one row per message to one recipient on one channel for one reason.

A row is written in the same transaction as the decision to send it (an escalation step firing,
an update posted) and is the truth about that message; a Celery task is only the wake-up that
sends it. See ``comms.outbox``.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Notification(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    reason = models.CharField(
        max_length=200, help_text="Why it was sent, e.g. escalation:<incident>:<step>:<repetition>"
    )
    channel = models.CharField(max_length=20)
    recipient = models.CharField(max_length=254, help_text="Email address or webhook:<id>.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="Webhook body.")
    headers = models.JSONField(default=dict, blank=True, help_text="Extra email headers.")
    message_id = models.CharField(
        max_length=200, unique=True, help_text="Stable identity: a resend carries the same one."
    )

    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(help_text="When the next attempt is due.")
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When a send task was last queued for it."
    )
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A sender holds it until then."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    link_used_at = models.DateTimeField(
        null=True, blank=True, help_text="When its acknowledge link was used."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["reason", "recipient", "channel"], name="notification_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "sending"]),
                name="notification_unsent",
            ),
            models.Index(fields=["incident", "created_at"], name="notification_by_incident"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.recipient}: {self.subject}"

    def get_channel_display(self) -> str:
        return self.channel.capitalize()


class Webhook(models.Model):
    """An outgoing webhook: escalations (and updates) are POSTed to it, signed."""

    class Format(models.TextChoices):
        JSON = "json", "Plain JSON"
        SLACK = "slack", "Slack incoming webhook"
        TEAMS = "teams", "Microsoft Teams incoming webhook"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.JSON)
    secret = models.CharField(
        max_length=128,
        blank=True,
        help_text="Signs each body (HMAC-SHA256, header X-Portal-Signature). Leave blank to "
        "generate one.",
    )
    is_active = models.BooleanField(default=True)
    escalations = models.BooleanField(
        default=True, help_text="Receive escalation steps whose channels include webhook."
    )
    timeout_seconds = models.PositiveSmallIntegerField(default=10)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.secret:
            self.secret = secrets.token_urlsafe(32)
        super().save(*args, **kwargs)
