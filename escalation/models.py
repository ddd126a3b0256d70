"""People, org roles and on-call rotations: the answer to "who is on call right now?".

The answer itself is computed by the pure functions of ``escalation.rotations``; these models
only hold the rules, the roster history and the overrides it reads.
"""

import secrets
from datetime import time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import DateTimeField, ExpressionWrapper, F, Q


def new_token() -> str:
    return secrets.token_urlsafe(24)


class ContactProfile(models.Model):
    """How to reach a person; email comes from the user account."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact"
    )
    phone = models.CharField(max_length=40, blank=True)
    chat_handle = models.CharField(max_length=80, blank=True, help_text="e.g. @alice on Slack")
    timezone = models.CharField(max_length=64, default="UTC")
    calendar_token = models.CharField(
        max_length=64, unique=True, default=new_token, help_text="Secret of the personal iCal feed."
    )

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"Contact of {self.user}"

    def clean(self) -> None:
        _check_zone(self.timezone, "timezone")


def _check_zone(name: str, field: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({field: f"Unknown time zone {name!r}."}) from exc


class Rotation(models.Model):
    """A schedule of shifts handed from member to member (runbook: weekly, Monday 00:00 UTC)."""

    class Unit(models.TextChoices):
        HOURS = "hours", "Hours"
        DAYS = "days", "Days"
        WEEKS = "weeks", "Weeks"

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Told when a handoff is not acknowledged.",
    )
    shift_unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.WEEKS)
    shift_length = models.PositiveSmallIntegerField(default=1)
    handoff_weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, default=Weekday.MONDAY, help_text="Used by weekly shifts."
    )
    handoff_time = models.TimeField(default=time(0, 0))
    timezone = models.CharField(max_length=64, default="UTC")
    starts_on = models.DateField(help_text="The first handoff is on or after this date.")
    backup = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backs_up",
        help_text="The rotation escalations reach as 'backup on call'.",
    )
    calendar_token = models.CharField(
        max_length=64, unique=True, default=new_token, help_text="Secret of the iCal feed."
    )
    # Running notes the outgoing engineer keeps; each handoff takes a snapshot.
    maintenance_notes = models.TextField(blank=True, help_text="Scheduled maintenance to know.")
    known_issues = models.TextField(blank=True, help_text="Known issues to watch.")
    handoff_reminder_before = models.DurationField(
        default=timedelta(hours=1), help_text="The incoming person is emailed this long before."
    )
    handoff_ack_within = models.DurationField(
        default=timedelta(hours=4),
        help_text="An unacknowledged handoff is flagged and emailed to the owner after this.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(shift_length__gte=1), name="rotation_length_min_1"),
            models.CheckConstraint(condition=~Q(backup=F("pk")), name="rotation_not_own_backup"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        _check_zone(self.timezone, "timezone")
        if self.backup_id and self.backup_id == self.pk:
            raise ValidationError({"backup": "A rotation cannot be its own backup."})


class RotationMember(models.Model):
    """A person's place in a rotation over a span of time.

    Rows are never rewritten when the roster changes: the old row gets ``until`` and a new row
    starts, so past shifts keep the roster they had (escalation.services.set_rotation_members).
    """

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rotation", "position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(until__isnull=True) | Q(since__isnull=True) | Q(until__gt=F("since")),
                name="rotation_member_span_order",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.rotation} (#{self.position})"


class Override(models.Model):
    """Someone covers a span of a rotation: part of a shift, or several."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["rotation", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="override_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["rotation", "ends_at"], name="override_rotation_end")]

    def __str__(self) -> str:
        return f"{self.user} covers {self.rotation} {self.starts_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "An override must end after it starts."})


class OrgRole(models.Model):
    """A role escalations can target (DevOps Lead, Security Team ...): people or a rotation."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    holders = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="org_roles")
    rotation = models.ForeignKey(
        Rotation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="org_roles",
        help_text="When set, whoever is on call in this rotation holds the role.",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class HandoffChecklistTemplateItem(models.Model):
    """The handoff checklist of incident-escalation-flow.md ("On-Call Handoff"), editable."""

    position = models.PositiveSmallIntegerField(default=0)
    text = models.CharField(max_length=300)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.text


class HandoffQuerySet(models.QuerySet):
    def overdue(self, now):
        """Not acknowledged within the rotation's ``handoff_ack_within`` of the boundary."""
        deadline = ExpressionWrapper(
            F("boundary_at") + F("rotation__handoff_ack_within"), output_field=DateTimeField()
        )
        return (
            self.filter(acknowledged_at__isnull=True)
            .alias(ack_due_at=deadline)
            .filter(ack_due_at__lt=now)
        )


class Handoff(models.Model):
    """One shift change of one rotation: who hands to whom, what they must know, and proof the
    incoming engineer took over. Created once per boundary by a periodic job."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="handoffs")
    boundary_at = models.DateTimeField()
    outgoing = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incoming = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    open_incidents = models.JSONField(default=list, blank=True)
    maintenance_notes = models.TextField(blank=True)
    known_issues = models.TextField(blank=True)
    created_at = models.DateTimeField()
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    objects = HandoffQuerySet.as_manager()

    class Meta:
        ordering = ["-boundary_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rotation", "boundary_at"], name="handoff_once_per_boundary"
            )
        ]
        indexes = [
            models.Index(
                fields=["boundary_at"],
                condition=Q(acknowledged_at__isnull=True),
                name="handoff_unacknowledged",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rotation} handoff {self.boundary_at:%Y-%m-%d %H:%M} UTC"

    def is_overdue(self, now) -> bool:
        return (
            self.acknowledged_at is None
            and now > self.boundary_at + self.rotation.handoff_ack_within
        )


class HandoffChecklistItem(models.Model):
    handoff = models.ForeignKey(Handoff, on_delete=models.CASCADE, related_name="checklist")
    position = models.PositiveSmallIntegerField(default=0)
    text = models.CharField(max_length=300)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["handoff", "position", "pk"]

    def __str__(self) -> str:
        return self.text


class Condition(models.TextChoices):
    NOT_ACKNOWLEDGED = "not_acknowledged", "Not acknowledged"
    NOT_RESOLVED = "not_resolved", "Not resolved"
    ROOT_CAUSE_NOT_IDENTIFIED = "root_cause_not_identified", "Root cause not identified"


class Flag(models.TextChoices):
    SECURITY = "security", "Security incident"
    DATA_LOSS = "data_loss", "Data loss"


class EscalationPolicy(models.Model):
    """Who hears about an incident, and when: one per severity level, plus flag rules.

    A policy applies to a severity level (its steps are the incident's escalation) or to a flag
    (its steps are added when an incident is or becomes flagged). Running escalations keep the
    snapshot they started with; editing a policy changes only escalations that start later.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    severity = models.OneToOneField(
        "incidents.SeverityLevel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalation_policy",
        help_text="Incidents of this severity follow this policy.",
    )
    flag = models.CharField(
        max_length=20,
        choices=Flag.choices,
        blank=True,
        help_text="Or: add this policy's steps to every incident with this flag.",
    )
    repeat_from = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="After the last step, start again from this step number (1 is the first).",
    )
    repeat_cycles = models.PositiveSmallIntegerField(
        default=0, help_text="How many times to go round again (0: never)."
    )
    repeat_gap = models.DurationField(
        default=timedelta(minutes=15),
        help_text="Time between the last step and the first step of the next round.",
    )
    preset = models.CharField(max_length=30, blank=True, help_text="The preset it came from.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["severity__rank", "flag", "name"]
        verbose_name_plural = "escalation policies"
        constraints = [
            models.UniqueConstraint(
                fields=["flag"], condition=~Q(flag=""), name="one_policy_per_flag"
            ),
            models.CheckConstraint(
                condition=Q(severity__isnull=True) | Q(flag=""),
                name="policy_for_severity_or_flag",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.severity_id and self.flag:
            raise ValidationError(
                {"flag": "A policy applies to a severity level or to a flag, not both."}
            )
        if self.repeat_cycles and not self.repeat_from:
            raise ValidationError({"repeat_from": "Say which step the next round starts from."})


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    key = models.SlugField(
        max_length=60,
        help_text="Stable name of the step: a running escalation never fires the same key twice.",
    )
    label = models.CharField(max_length=200, help_text="What the step means, in the timeline.")
    delay = models.DurationField(
        help_text="From declaration, e.g. 00:15:00 for 15 minutes, 2:00:00 for two hours."
    )
    condition = models.CharField(
        max_length=30, choices=Condition.choices, default=Condition.NOT_ACKNOWLEDGED
    )
    targets = models.JSONField(
        default=list,
        help_text="role:<slug>, backup:<role slug>, rotation:<id>, rotation-backup:<id>, "
        "user:<id>, email:<address>",
    )
    channels = models.JSONField(default=list, help_text='"email", "webhook"')
    repeat_every = models.DurationField(null=True, blank=True)
    repeat_times = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["policy", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "key"], name="step_key_unique_in_policy")
        ]

    def __str__(self) -> str:
        return self.label or self.key

    def clean(self) -> None:
        if self.delay is not None and self.delay < timedelta(0):
            raise ValidationError({"delay": "A step's delay cannot be negative."})
        if self.repeat_times and not (self.repeat_every and self.repeat_every > timedelta(0)):
            raise ValidationError({"repeat_every": "A repeating step needs a positive interval."})
        # Not tied to a field: the admin edits these through its own pickers.
        if not self.targets:
            raise ValidationError("Choose at least one target or give an address.")
        if not self.channels:
            raise ValidationError("Choose at least one channel.")


class Escalation(models.Model):
    """The running escalation of one incident: its policy snapshot and when it is next due.

    ``next_due_at`` is the only thing the tick reads; it is NULL once nothing is left to fire.
    """

    incident = models.OneToOneField(
        "incidents.Incident", on_delete=models.CASCADE, related_name="escalation"
    )
    steps = models.JSONField(default=list, help_text="The policy steps this incident follows.")
    policies = models.JSONField(default=list, help_text="Names of the policies snapshotted.")
    snapshot_at = models.DateTimeField()
    next_due_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_due_at"],
                condition=Q(next_due_at__isnull=False),
                name="escalation_due",
            )
        ]

    def __str__(self) -> str:
        return f"Escalation of incident {self.incident_id}"


class FiredStep(models.Model):
    """A step that fired: recorded once per incident, step and repetition (never twice)."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="fired_steps"
    )
    step_key = models.CharField(max_length=120)
    repetition = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField()
    targets = models.JSONField(default=list, help_text="Each target and who it meant.")
    recipients = models.JSONField(default=list)
    gaps = models.JSONField(default=list, help_text="Targets that resolved to nobody.")
    fell_through_from = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["incident", "fired_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "step_key", "repetition"], name="step_fires_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} (#{self.repetition})"
