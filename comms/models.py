"""The notification outbox: one row per message to one recipient on one channel for one reason.

A row is written in the same transaction as the decision to send it (an escalation step firing,
an update posted) and is the truth about that message; a Celery task is only the wake-up that
sends it. See ``comms.outbox``.
"""

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


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
    communication = models.ForeignKey(
        "Communication",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        help_text="The logged message this delivery belongs to.",
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
    updates = models.BooleanField(
        default=True, help_text="Receive incident updates and resolution notices."
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


# --- Communications (issue 7): templates, updates, the log, stakeholders, status page --------


class MessageTemplate(models.Model):
    """One message of the runbooks. The text the portal ships lives in ``comms.defaults``; a row
    is the admin's copy: while ``customised`` is off it mirrors the default, once edited it
    overrides it, and "reset" puts the default back."""

    key = models.CharField(max_length=40, unique=True)
    subject = models.CharField(
        max_length=300, blank=True, help_text="Email subject (email templates only)."
    )
    body_text = models.TextField("plain text")
    body_html = models.TextField("HTML", blank=True, help_text="Email templates only.")
    customised = models.BooleanField(default=False, editable=False)
    updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        from .defaults import TEMPLATES

        default = TEMPLATES.get(self.key)
        return default.name if default else self.key


class Audience(models.TextChoices):
    INTERNAL = "internal", "Responders and org roles"
    STAKEHOLDERS = "stakeholders", "Stakeholders"
    PUBLIC = "public", "Status page"


class ServiceState(models.TextChoices):
    """The status page's vocabulary, best first (the order ``worst`` relies on)."""

    OPERATIONAL = "operational", "Operational"
    MAINTENANCE = "under_maintenance", "Under maintenance"
    DEGRADED = "degraded_performance", "Degraded performance"
    PARTIAL = "partial_outage", "Partial outage"
    MAJOR = "major_outage", "Major outage"


class IncidentComms(models.Model):
    """What communications owes one incident: its public face, the next deadlines, war room."""

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="comms"
    )
    is_public = models.BooleanField(
        "on the status page",
        default=False,
        help_text="Shown on the public status page (title, impact and public updates only).",
    )
    public_title = models.CharField(
        max_length=200, blank=True, help_text="The title the public sees (never the internal one)."
    )
    public_impact = models.CharField(
        max_length=24,
        choices=[c for c in ServiceState.choices if c[0] != ServiceState.OPERATIONAL],
        blank=True,
        help_text="What the affected public services show while it is open; blank derives it "
        "from the severity.",
    )

    next_update_due_at = models.DateTimeField(null=True, blank=True)
    next_stakeholder_due_at = models.DateTimeField(null=True, blank=True)
    next_status_page_due_at = models.DateTimeField(null=True, blank=True)
    reminded_for = models.DateTimeField(
        null=True, blank=True, help_text="The update due time the commander was reminded of."
    )
    last_update_at = models.DateTimeField(null=True, blank=True)
    last_stakeholder_email_at = models.DateTimeField(null=True, blank=True)
    last_status_post_at = models.DateTimeField(null=True, blank=True)

    war_room_url = models.CharField(max_length=300, blank=True)
    war_room_opened_at = models.DateTimeField(null=True, blank=True)
    war_room_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = verbose_name_plural = "incident communications"
        indexes = [
            models.Index(
                fields=["next_update_due_at"],
                condition=Q(next_update_due_at__isnull=False),
                name="comms_update_due",
            ),
            models.Index(
                fields=["next_stakeholder_due_at"],
                condition=Q(next_stakeholder_due_at__isnull=False),
                name="comms_stakeholder_due",
            ),
            models.Index(
                fields=["next_status_page_due_at"],
                condition=Q(next_status_page_due_at__isnull=False),
                name="comms_status_due",
            ),
        ]

    def __str__(self) -> str:
        return f"Communications of {self.incident_id}"

    @property
    def next_due_at(self):
        """The soonest of the three due times, or None when nothing is owed."""
        dues = [
            due
            for due in (
                self.next_update_due_at,
                self.next_stakeholder_due_at,
                self.next_status_page_due_at,
            )
            if due is not None
        ]
        return min(dues, default=None)


class IncidentUpdate(models.Model):
    """One update: what the commander wrote (or what the cadence sent for them)."""

    class Kind(models.TextChoices):
        UPDATE = "update", "Update"
        RESOLUTION = "resolution", "Resolution notice"
        SCHEDULED = "scheduled", "Scheduled (sent on the cadence)"

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="updates"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.UPDATE)
    posted_at = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20)
    progress = models.TextField(blank=True, help_text="What we have found and done.")
    next_steps = models.TextField(blank=True, help_text="What we are doing next.")
    eta = models.CharField("ETA", max_length=200, blank=True, help_text="Expected resolution.")
    impact = models.TextField(blank=True, help_text="Current user impact.")
    public_text = models.TextField(
        blank=True, help_text="For the status page and stakeholders: no internal detail."
    )
    audiences = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-posted_at", "-pk"]
        indexes = [models.Index(fields=["incident", "-posted_at"], name="update_incident_at")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.posted_at:%Y-%m-%d %H:%M}"


class CommunicationQuerySet(models.QuerySet):
    def with_delivery(self):
        """Each entry's outbox rows counted by state, in the same query: a stakeholder email can
        have thousands of rows, whose bodies are not needed to count them."""
        return self.annotate(
            **{
                f"delivery_{state}": models.Count(
                    "notifications", filter=Q(notifications__state=state)
                )
                for state in Notification.State.values
            }
        )


class Communication(models.Model):
    """The communication log: one message to one audience on one channel, sent or by hand."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook / chat"
        STATUS_PAGE = "status_page", "Status page"
        CHAT = "chat", "Chat (by hand)"
        PHONE = "phone", "Phone (by hand)"
        OTHER = "other", "Other (by hand)"

    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="communications",
    )
    update = models.ForeignKey(
        IncidentUpdate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="communications",
    )
    at = models.DateTimeField(db_index=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    audience = models.CharField(max_length=20, choices=Audience.choices)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    template = models.CharField(max_length=40, blank=True)
    manual = models.BooleanField(default=False, help_text="Posted by hand, outside the portal.")
    recipients = models.JSONField(default=list, blank=True)
    recipient_count = models.PositiveIntegerField(default=0)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField()

    objects = CommunicationQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["incident", "-at"], name="communication_incident_at")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.get_audience_display()}: {self.subject}"

    @property
    def delivery(self) -> dict[str, int]:
        """Outbox rows by state (read from ``with_delivery()``), the states with none left out."""
        counts = {
            state: getattr(self, f"delivery_{state}", 0) for state in Notification.State.values
        }
        return {state: n for state, n in counts.items() if n}

    @property
    def delivery_summary(self) -> str:
        """ "3 sent, 1 pending", for the admin's log."""
        if self.manual:
            return "posted by hand"
        if self.channel == self.Channel.STATUS_PAGE:
            return "published"
        counts = self.delivery
        if not counts:
            return "nobody to send to" if not self.recipient_count else "-"
        return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


class StakeholderList(models.Model):
    """People who get emailed updates, for the severities and services they subscribed to."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    severities = models.ManyToManyField(
        "incidents.SeverityLevel",
        related_name="+",
        help_text="Incidents of these severities are emailed to the list.",
    )
    services = models.ManyToManyField(
        "incidents.Service",
        blank=True,
        related_name="+",
        help_text="Only incidents affecting one of these; none chosen means every service.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stakeholder(models.Model):
    stakeholder_list = models.ForeignKey(
        StakeholderList, on_delete=models.CASCADE, related_name="members", verbose_name="list"
    )
    name = models.CharField(max_length=150, blank=True)
    email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["stakeholder_list", "email"]
        constraints = [
            # An address is one person whatever its case ("add many" compares the same way).
            models.UniqueConstraint(
                models.F("stakeholder_list"),
                Lower("email"),
                name="stakeholder_once_per_list",
                violation_error_message="This address is already on the list.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class StatusPageService(models.Model):
    """A service as the public sees it on the status page."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    services = models.ManyToManyField(
        "incidents.Service",
        blank=True,
        related_name="+",
        help_text="The internal services behind it: their public incidents set its state.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    state_override = models.CharField(
        "state set by hand",
        max_length=24,
        choices=ServiceState.choices,
        blank=True,
        help_text="Blank: derived from open public incidents and maintenance.",
    )

    class Meta:
        ordering = ["position", "name"]
        verbose_name = "status page service"

    def __str__(self) -> str:
        return self.name


class Maintenance(models.Model):
    """Scheduled maintenance, announced on the status page."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Public text.")
    services = models.ManyToManyField(StatusPageService, related_name="maintenances")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-starts_at"]
        verbose_name_plural = "maintenance windows"

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "Maintenance must end after it starts."})


class CommsSettings(models.Model):
    """One row: the war-room link, reminders and the names the messages use."""

    organisation = models.CharField(
        max_length=100, default="Our", help_text='Signs user emails ("<organisation> Team").'
    )
    status_page_title = models.CharField(max_length=100, default="Service status")
    war_room_link = models.CharField(
        max_length=300,
        default="#incident-{date}-{slug}",
        help_text="Video call URL or chat channel. Placeholders: {date} (YYYY-MM-DD), {slug} "
        "(from the title), {id} (INC-...), {number} (the day's number).",
    )
    remind_before = models.DurationField(
        default=timedelta(minutes=5), help_text="The commander is reminded this long before."
    )

    class Meta:
        verbose_name = verbose_name_plural = "communication settings"

    def __str__(self) -> str:
        return "Communication settings"

    @classmethod
    def load(cls) -> "CommsSettings":
        return cls.objects.order_by("pk").first() or cls.objects.create()
