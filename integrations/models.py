"""API keys for people and scripts, and the monitoring integrations that open incidents."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class ApiKey(AbstractAPIKey):
    """A key that acts as one portal user: it may do what that user's groups allow.

    Stored hashed by djangorestframework-api-key (only a prefix is kept in clear); the whole key
    is shown once, when it is created.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


def new_integration_key() -> str:
    return secrets.token_urlsafe(24)


DEFAULT_SEVERITY_MAP = {"critical": "P0", "error": "P1", "warning": "P2", "info": "P3"}


class Integration(models.Model):
    """A monitoring system that sends alerts: PagerDuty Events API v2 shape, Alertmanager or
    Grafana. Its key is the Events API routing key, or the secret part of its webhook URL."""

    class Kind(models.TextChoices):
        EVENTS = "events", "Events API v2 (PagerDuty shape)"
        ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
        GRAFANA = "grafana", "Grafana alerting"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EVENTS)
    key = models.CharField(max_length=64, unique=True, default=new_integration_key, editable=False)
    is_active = models.BooleanField(default=True)
    acts_as = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The portal user incidents opened by this integration are declared by.",
    )
    severity_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='Alert severity to portal severity code, e.g. {"critical": "P0", '
        '"error": "P1", "warning": "P2", "info": "P3"}.',
    )
    default_service = models.ForeignKey(
        "incidents.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    default_type = models.ForeignKey(
        "incidents.IncidentType", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=600,
        help_text="Requests a minute this key may send before it is answered 429 with "
        "Retry-After; 0 for no limit. 600 absorbs an alert storm.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def severity_code(self, alert_severity: str) -> str:
        mapping = self.severity_map if isinstance(self.severity_map, dict) else {}
        return (mapping or DEFAULT_SEVERITY_MAP).get(
            alert_severity, DEFAULT_SEVERITY_MAP.get(alert_severity, "P2")
        )

    def clean(self) -> None:
        from incidents.models import SeverityLevel

        mapping = self.severity_map
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise ValidationError(
                {"severity_map": 'An object of alert severity to code, e.g. {"critical": "P0"}.'}
            )
        active = set(SeverityLevel.objects.filter(is_active=True).values_list("code", flat=True))
        unknown = sorted(set(mapping.values()) - active)
        if unknown:
            raise ValidationError(
                {"severity_map": f"Not an active severity level: {', '.join(unknown)}."}
            )


class Alert(models.Model):
    """What a monitoring system reported under one dedup key, and the incident it opened.

    At most one row per (integration, dedup key) is open (firing or acknowledged): a trigger for
    an open key is appended to it; once it is resolved, the next trigger opens a new row and a
    new incident. For Alertmanager and Grafana the dedup key is the group key and the group's
    alerts are the ``AlertFingerprint`` rows.
    """

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    dedup_key = models.CharField(max_length=255)
    # An Events API trigger is answered before its incident exists: the request stores the
    # alert with the incident's id reserved, and a worker declares the incident moments later
    # (ingest.declare_pending). Until then ``incident`` is empty.
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    incident_public_id = models.CharField(
        "incident id", max_length=20, help_text="Reserved when the alert opened the incident."
    )
    detected_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sender says the problem began."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.FIRING)
    summary = models.TextField(blank=True)
    source = models.TextField(blank=True)
    severity = models.CharField(max_length=50, blank=True, help_text="As the sender named it.")
    component = models.TextField(blank=True)
    group = models.TextField(blank=True)
    alert_class = models.TextField("class", blank=True)
    custom_details = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(
        default=1, help_text="Triggers received (Events API) or alerts fired (Alertmanager)."
    )
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Repeated triggers are written to the timeline at most once a minute (ingest.py):
    # when the last such entry was written, and how many triggers it has not told yet.
    reported_at = models.DateTimeField()
    unreported = models.PositiveIntegerField(default=0)
    last_payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-pk"]
        constraints = [
            # The backstop behind the advisory lock in ingest.py: two open rows for one key
            # would split one problem over two incidents.
            models.UniqueConstraint(
                fields=["integration", "dedup_key"],
                condition=~models.Q(status="resolved"),
                name="alert_one_open_per_dedup_key",
            )
        ]
        indexes = [
            models.Index(fields=["integration", "dedup_key"], name="alert_dedup_key"),
            # What the declaring worker and the health check look for: a handful of rows.
            models.Index(
                fields=["first_seen_at"],
                condition=models.Q(incident__isnull=True),
                name="alert_awaiting_declaration",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration}: {self.dedup_key}"

    @property
    def is_declared(self) -> bool:
        return self.incident_id is not None


class AlertFingerprint(models.Model):
    """One alert of an Alertmanager or Grafana group, identified by its fingerprint (never by
    its summary); ``starts_at`` tells a new firing of the same alert from a repeat."""

    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="fingerprints")
    fingerprint = models.CharField(max_length=255)
    status = models.CharField(max_length=20, choices=Status.choices)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["alert", "fingerprint"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "fingerprint"], name="alert_fingerprint_once_per_alert"
            )
        ]

    def __str__(self) -> str:
        return self.fingerprint


class RateWindow(models.Model):
    """Requests counted per integration per minute (a fixed window), in the database so every
    web process shares the count."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "window_start"], name="rate_window_once_per_minute"
            )
        ]

    def __str__(self) -> str:
        return f"{self.integration_id} {self.window_start:%H:%M}: {self.count}"


class DeclarationSignal(models.Model):
    """One row: whether a declaring task was asked for since the last one started.

    An opening trigger sets it in the statement that stores its alert and asks for a task only
    when it was not set, so a storm of openings publishes one task, not thousands; the task
    clears it before it looks for alerts (ingest.declare_pending). Setting it locks the row
    until the opening commits, so a task clearing it waits for that opening and then finds its
    alert.
    """

    requested = models.BooleanField(default=False)

    def __str__(self) -> str:
        return "requested" if self.requested else "idle"
