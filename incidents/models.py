"""The incidents app's nouns: severity policy, incidents, their roles, checklists and timeline.

Models hold fields, constraints and small derived properties. Every change of state goes through
``incidents.services``; nothing here sends or enqueues anything.
"""

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from ops.groups import SECURITY_TEAM

if TYPE_CHECKING:
    from .clock import WorkingCalendar

# Membership of this group (created by migration) makes security incidents visible.
SECURITY_TEAM_GROUP = SECURITY_TEAM


class BusinessCalendar(models.Model):
    """Working days and hours, for targets the runbooks state in business days (P3: 1 day)."""

    name = models.CharField(max_length=100, unique=True, default="Default")
    timezone = models.CharField(max_length=64, default="UTC")
    workdays = models.JSONField(
        default=list, help_text="Working weekdays, Monday=0 ... Sunday=6, e.g. [0, 1, 2, 3, 4]."
    )
    day_starts_at = models.TimeField(default="09:00")
    day_ends_at = models.TimeField(default="17:00")
    holidays = models.JSONField(
        default=list, blank=True, help_text='Dates with no working hours, e.g. ["2026-12-25"].'
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def spec(self) -> "WorkingCalendar":
        from .clock import WorkingCalendar

        return WorkingCalendar.from_model(self)

    def clean(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError({"timezone": f"Unknown time zone {self.timezone!r}."}) from exc
        if not isinstance(self.workdays, list) or not self.workdays:
            raise ValidationError({"workdays": "Name at least one working weekday (Monday=0)."})
        if any(not isinstance(day, int) or not 0 <= day <= 6 for day in self.workdays):
            raise ValidationError({"workdays": "Weekdays are numbers 0 (Monday) to 6 (Sunday)."})
        if self.day_starts_at and self.day_ends_at and self.day_starts_at >= self.day_ends_at:
            raise ValidationError({"day_ends_at": "The working day must end after it starts."})
        for holiday in self.holidays or []:
            try:
                datetime.strptime(str(holiday), "%Y-%m-%d")
            except ValueError as exc:
                raise ValidationError({"holidays": f"{holiday!r} is not YYYY-MM-DD."}) from exc


class SeverityLevel(models.Model):
    """One level of the severity policy, loaded from a preset and editable in the admin."""

    code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=50)
    rank = models.PositiveSmallIntegerField(help_text="0 is the most severe.")
    preset = models.CharField(max_length=30, blank=True, help_text="The preset it came from.")
    is_active = models.BooleanField(
        default=True, help_text="Inactive levels stay on old incidents but cannot be chosen."
    )
    definition = models.TextField()
    examples = models.TextField(blank=True, help_text="One example per line.")
    response_time = models.DurationField(help_text="Acknowledgement SLA, from declaration.")
    response_in_business_days = models.BooleanField(
        default=False, help_text="Count the response time in working days of the calendar."
    )
    resolution_target = models.DurationField(help_text="Resolution SLA, from declaration.")
    resolution_in_business_days = models.BooleanField(default=False)
    internal_update_every = models.DurationField(null=True, blank=True)
    external_update_every = models.DurationField(null=True, blank=True)
    war_room_required = models.BooleanField(default=False)
    stakeholder_email_within = models.DurationField(null=True, blank=True)
    status_page_within = models.DurationField(null=True, blank=True)
    review_required = models.BooleanField(default=False)
    review_required_if_longer_than = models.DurationField(
        null=True, blank=True, help_text="A review is required when resolution took longer."
    )

    class Meta:
        ordering = ["rank", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def example_list(self) -> list[str]:
        return [line.strip() for line in self.examples.splitlines() if line.strip()]

    def clean(self) -> None:
        for name in ("response_time", "resolution_target"):
            value = getattr(self, name)
            if value is not None and value < timedelta(0):
                raise ValidationError({name: "Must not be negative."})
        if (
            self.response_time is not None
            and self.resolution_target is not None
            and not self.response_in_business_days
            and not self.resolution_in_business_days
            and self.resolution_target < self.response_time
        ):
            raise ValidationError(
                {"resolution_target": "Resolution cannot be due before acknowledgement."}
            )


class Service(models.Model):
    """Something that can be affected by an incident (API, web app, database ...)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IncidentType(models.Model):
    """A scenario of the runbooks with its diagnosis and remediation checklist."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    default_severity = models.ForeignKey(
        SeverityLevel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    implies_security = models.BooleanField(default=False)
    implies_data_loss = models.BooleanField(default=False)
    source = models.CharField(max_length=200, blank=True, help_text="Runbook and section.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChecklistPhase(models.TextChoices):
    DIAGNOSIS = "diagnosis", "Diagnosis"
    REMEDIATION = "remediation", "Remediation"


class ChecklistTemplateItem(models.Model):
    incident_type = models.ForeignKey(
        IncidentType, on_delete=models.CASCADE, related_name="checklist"
    )
    position = models.PositiveSmallIntegerField(default=0)
    phase = models.CharField(max_length=20, choices=ChecklistPhase.choices)
    text = models.CharField(max_length=500)

    class Meta:
        ordering = ["incident_type", "position", "pk"]

    def __str__(self) -> str:
        return self.text


class Status(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    FIXING = "fixing", "Fixing"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.FIXING, Status.MONITORING)


class DetectionSource(models.TextChoices):
    MONITORING_ALERT = "monitoring_alert", "Monitoring alert"
    USER_REPORT = "user_report", "User report"
    HEALTH_CHECK = "health_check", "Health check failure"
    MANUAL = "manual", "Manual"


class Milestone(models.TextChoices):
    """The timeline the review template asks for; each is a ``<value>_at`` field on Incident."""

    DETECTED = "detected", "Detected"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    INVESTIGATION_STARTED = "investigation_started", "Investigation started"
    ROOT_CAUSE_IDENTIFIED = "root_cause_identified", "Root cause identified"
    FIX_APPLIED = "fix_applied", "Fix applied"
    SERVICE_RESTORED = "service_restored", "Service restored"
    VERIFICATION_COMPLETED = "verification_completed", "Verification complete"


class IncidentQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN_STATUSES)

    def visible_to(self, user):
        """Security incidents only for the Security Team, their responders and superusers."""
        if user.is_superuser:
            return self
        if not user.is_authenticated:
            return self.none()
        if user.groups.filter(name=SECURITY_TEAM_GROUP).exists():
            return self
        is_responder = IncidentRole.objects.filter(
            incident=OuterRef("pk"), user=user, unassigned_at__isnull=True
        )
        return self.filter(Q(is_security=False) | Q(declared_by=user) | Exists(is_responder))

    def breached(self, now: datetime):
        """Incidents that missed their acknowledgement or resolution deadline."""
        return self.filter(
            Q(acknowledged_at__isnull=True, ack_due_at__lt=now)
            | Q(acknowledged_at__gt=F("ack_due_at"))
            | Q(resolved_at__isnull=True, resolution_due_at__lt=now)
            | Q(resolved_at__gt=F("resolution_due_at"))
        )


class Incident(models.Model):
    public_id = models.CharField(max_length=20, unique=True, editable=False)
    day = models.DateField(editable=False, help_text="UTC day of declaration.")
    sequence = models.PositiveIntegerField(editable=False, help_text="Number within the day.")

    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.ForeignKey(SeverityLevel, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVESTIGATING)
    incident_type = models.ForeignKey(
        IncidentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    detection_source = models.CharField(
        max_length=20, choices=DetectionSource.choices, default=DetectionSource.MANUAL
    )
    users_affected = models.PositiveIntegerField(null=True, blank=True)
    impact_scope = models.TextField(blank=True, help_text="Who and what is affected, and how.")
    affected_services = models.ManyToManyField(Service, blank=True, related_name="incidents")
    is_security = models.BooleanField("security", default=False)
    is_data_loss = models.BooleanField("data loss", default=False)

    declared_at = models.DateTimeField(editable=False)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    # Milestones (Milestone choices): set by status changes, correctable by hand.
    detected_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    investigation_started_at = models.DateTimeField(null=True, blank=True)
    root_cause_identified_at = models.DateTimeField(null=True, blank=True)
    fix_applied_at = models.DateTimeField(null=True, blank=True)
    service_restored_at = models.DateTimeField(null=True, blank=True)
    verification_completed_at = models.DateTimeField(null=True, blank=True)

    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)

    # SLA clocks, derived from the severity when declared and when the severity changes.
    ack_due_at = models.DateTimeField(editable=False)
    resolution_due_at = models.DateTimeField(editable=False)
    time_to_acknowledge = models.DurationField(null=True, blank=True, editable=False)
    time_to_resolve = models.DurationField(null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=["day", "sequence"])
    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-declared_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "sequence"], name="incident_unique_day_seq"),
        ]
        indexes = [
            # The changelist's default order: newest first, read straight off this index.
            models.Index(fields=["-declared_at", "-id"], name="incident_declared"),
            models.Index(fields=["status", "-declared_at"], name="incident_status_declared"),
        ]
        permissions = [
            ("change_incident_severity", "Can change the severity of an incident"),
            ("close_incident", "Can close an incident"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_ack_breached(self, now: datetime | None = None) -> bool:
        if self.acknowledged_at is not None:
            return self.acknowledged_at > self.ack_due_at
        return (now or timezone.now()) > self.ack_due_at

    def is_resolution_breached(self, now: datetime | None = None) -> bool:
        if self.resolved_at is not None:
            return self.resolved_at > self.resolution_due_at
        return (now or timezone.now()) > self.resolution_due_at

    def milestone(self, milestone: Milestone) -> datetime | None:
        return getattr(self, f"{milestone.value}_at")


class IncidentRole(models.Model):
    class Role(models.TextChoices):
        COMMANDER = "commander", "Incident commander"
        TECHNICAL_LEAD = "technical_lead", "Technical lead"
        COMMUNICATIONS_LEAD = "communications_lead", "Communications lead"
        SCRIBE = "scribe", "Scribe"
        RESPONDER = "responder", "On-call responder"

    # One holder at a time for these; several on-call responders may work one incident.
    SINGLE_HOLDER = (
        Role.COMMANDER,
        Role.TECHNICAL_LEAD,
        Role.COMMUNICATIONS_LEAD,
        Role.SCRIBE,
    )

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=30, choices=Role.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    assigned_at = models.DateTimeField()
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unassigned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["incident", "role", "assigned_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "role"],
                condition=Q(unassigned_at__isnull=True) & ~Q(role="responder"),
                name="incident_role_one_active_holder",
            ),
            models.UniqueConstraint(
                fields=["incident", "role", "user"],
                condition=Q(unassigned_at__isnull=True),
                name="incident_role_user_once",
            ),
        ]
        indexes = [models.Index(fields=["user", "incident"], name="incident_role_user")]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.user}"


class ChecklistItem(models.Model):
    """One line of the playbook copied onto an incident; ticking it records who and when."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="checklist")
    source_type = models.ForeignKey(
        IncidentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveSmallIntegerField(default=0)
    phase = models.CharField(max_length=20, choices=ChecklistPhase.choices)
    text = models.CharField(max_length=500)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident", "position", "pk"]

    def __str__(self) -> str:
        return self.text


class TimelineEntry(models.Model):
    """Append-only record of everything that happened to an incident.

    Rows are only ever inserted: the model refuses updates and a database trigger (migration
    0002) rejects an UPDATE from any client.
    """

    class Kind(models.TextChoices):
        DECLARED = "declared", "Declared"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        STATUS_CHANGED = "status_changed", "Status changed"
        SEVERITY_CHANGED = "severity_changed", "Severity changed"
        TYPE_CHANGED = "type_changed", "Type changed"
        FLAGS_CHANGED = "flags_changed", "Flags changed"
        DETAILS_CHANGED = "details_changed", "Details changed"
        ROLE_ASSIGNED = "role_assigned", "Role assigned"
        ROLE_UNASSIGNED = "role_unassigned", "Role unassigned"
        CHECKLIST_DONE = "checklist_done", "Checklist item done"
        CHECKLIST_UNDONE = "checklist_undone", "Checklist item reopened"
        MILESTONE_CORRECTED = "milestone_corrected", "Milestone corrected"
        NOTE = "note", "Note"
        ESCALATED = "escalated", "Escalation"
        REVIEW = "review", "Post-incident review"
        ALERT = "alert", "Alert"
        COMMUNICATION = "communication", "Communication"

    class NoteKind(models.TextChoices):
        UPDATE = "update", "Update"
        HYPOTHESIS = "hypothesis", "Hypothesis"
        ACTION = "action", "Action taken"
        COMMAND = "command", "Command run"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    note_kind = models.CharField(max_length=20, choices=NoteKind.choices, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "timeline entries"
        indexes = [models.Index(fields=["incident", "-at"], name="timeline_incident_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("Timeline entries are append-only.")
        super().save(*args, **kwargs)

    @property
    def is_manual(self) -> bool:
        return self.kind == self.Kind.NOTE


class DailySequence(models.Model):
    """Last incident number handed out per UTC day; see services.next_public_id."""

    day = models.DateField(primary_key=True)
    last = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.day}: {self.last}"


class ReviewRules(models.Model):
    """When a post-incident review is required beyond the severity's own rule (one row)."""

    recurring_count = models.PositiveSmallIntegerField(
        default=3,
        help_text="An incident is recurring when its type or one of its services had this many "
        "incidents (itself included) within the window below.",
    )
    recurring_days = models.PositiveSmallIntegerField(default=30)
    due_within = models.DurationField(
        default=timedelta(hours=48), help_text="Runbook: conduct within 48 hours of resolution."
    )
    remind_before = models.DurationField(
        default=timedelta(days=2), help_text="Action item owners are reminded this long before."
    )
    escalate_after = models.DurationField(
        default=timedelta(hours=24),
        help_text="An overdue review goes to the Engineering Manager this long after its due time "
        "(the commander is reminded at once).",
    )

    class Meta:
        verbose_name = verbose_name_plural = "review rules"

    def __str__(self) -> str:
        return "Review rules"


class Review(models.Model):
    """The post-incident review of incident-response-guide.md, one per incident."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        COMPLETE = "complete", "Complete"

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="review")
    required = models.BooleanField(default=True)
    reasons = models.JSONField(default=list, blank=True, help_text="Why it is required.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField()
    due_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Set when the incident is resolved."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # 1. Incident summary  2. Timeline (drafted from the incident, editable)
    summary = models.TextField(blank=True)
    timeline = models.TextField(blank=True)
    # 3. Root cause analysis
    primary_cause = models.TextField(blank=True)
    contributing_factors = models.TextField(blank=True)
    why_it_happened = models.TextField(blank=True, verbose_name="why did it happen")
    # 4. Resolution details
    immediate_fix = models.TextField(blank=True)
    verification = models.TextField(blank=True)
    # 5. Impact assessment
    user_impact = models.TextField(blank=True)
    data_impact = models.TextField(blank=True)
    business_impact = models.TextField(blank=True)
    # 6, 7, 9
    went_well = models.TextField(blank=True, verbose_name="what went well")
    could_improve = models.TextField(blank=True, verbose_name="what could be improved")
    lessons_learned = models.TextField(blank=True)
    commander_reminded_at = models.DateTimeField(null=True, blank=True)
    manager_reminded_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-due_at"]

    def __str__(self) -> str:
        return f"Review of {self.incident.public_id}"

    @classmethod
    def overdue_at(cls, now: datetime) -> Q:
        """The reviews owed and past their due time: the one definition the admin filter, the
        metrics and the reminders share (is_overdue says it of one review)."""
        return Q(required=True, state=cls.State.DRAFT, due_at__lt=now)

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.required
            and self.state == self.State.DRAFT
            and self.due_at is not None
            and now > self.due_at
        )


class ActionItem(models.Model):
    class Priority(models.TextChoices):
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"
        WONT_DO = "wont_do", "Won't do"

    OPEN_STATES = (State.OPEN, State.IN_PROGRESS)

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="action_items")
    action = models.CharField(max_length=300)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="action_items",
    )
    due_date = models.DateField()
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    overdue_reminded_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["due_date", "pk"]
        indexes = [
            models.Index(
                fields=["due_date"],
                condition=Q(status__in=["open", "in_progress"]),
                name="action_item_open_due",
            )
        ]

    def __str__(self) -> str:
        return self.action

    def save(self, *args, **kwargs):
        # closed_at follows status on every path (the review's inline, the list, the API).
        self.closed_at = None if self.is_open else (self.closed_at or timezone.now())
        fields = kwargs.get("update_fields")
        if fields is not None and "status" in fields:
            kwargs["update_fields"] = {*fields, "closed_at"}
        super().save(*args, **kwargs)

    @classmethod
    def overdue_on(cls, today: date) -> Q:
        """The items still open whose due date has passed (the admin filter, the metrics and
        the reminders)."""
        return Q(status__in=cls.OPEN_STATES, due_date__lt=today)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATES
