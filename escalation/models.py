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
