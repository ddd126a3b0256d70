from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from incidents.admin import CappedCountPaginator
from incidents.models import SECURITY_TEAM_GROUP, Incident
from ops.admin_base import RecordAdmin

from .models import Alert, AlertFingerprint, ApiKey, Integration
from .services import service_user, where_to_send

# The library's own key model is not used: ours acts as a user.
admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    """The key is shown once, in the message after saving; only its hash is kept."""

    list_display = [*APIKeyModelAdmin.list_display, "user", "last_used_at"]
    search_fields = [*APIKeyModelAdmin.search_fields, "user__username"]
    autocomplete_fields = []
    raw_id_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "last_used_at"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "is_active", "rate_limit_per_minute", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["key", "endpoint", "alerts_link"]
    raw_id_fields = ["acts_as"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:  # as create_integration does: a user of its own unless one is named
            field = form.base_fields["acts_as"]
            field.required = False
            field.help_text = (
                "The portal user incidents opened by this integration are declared by. Leave "
                "empty for a user of its own (group Responder, no password)."
            )
        return form

    def save_model(self, request, obj, form, change):
        if not change and obj.acts_as_id is None:
            obj.acts_as = service_user(obj.name, "integration")
        super().save_model(request, obj, form, change)

    @admin.display(description="Where to send alerts")
    def endpoint(self, obj):
        if not obj.pk:
            return "Save to get the key."
        return where_to_send(obj, obj.key)

    @admin.display(description="Alerts received")
    def alerts_link(self, obj):
        if not obj.pk:
            return "-"
        url = reverse("admin:integrations_alert_changelist") + f"?integration__id__exact={obj.pk}"
        return format_html('<a href="{}">See its alerts</a>', url)


class AlertFingerprintInline(admin.TabularInline):
    model = AlertFingerprint
    fields = ["fingerprint", "status", "labels", "annotations", "starts_at", "ends_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    """Alerts are what monitoring sent: written by integrations/ingest.py, never by hand."""

    list_display = [
        "dedup_key",
        "integration",
        "incident_link",
        "status",
        "severity",
        "count",
        "fingerprint_count",
        "first_seen_at",
        "last_seen_at",
    ]
    list_filter = ["status", "integration", "severity"]
    list_select_related = ["integration", "incident"]
    search_fields = ["dedup_key", "summary", "source", "incident_public_id"]
    date_hierarchy = "last_seen_at"
    inlines = [AlertFingerprintInline]
    # An alert storm makes this table large: no full count.
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = [
        "integration",
        "dedup_key",
        "incident_link",
        "status",
        "summary",
        "source",
        "severity",
        "component",
        "group",
        "alert_class",
        "custom_details",
        "count",
        "first_seen_at",
        "last_seen_at",
        "acknowledged_at",
        "resolved_at",
        "last_payload",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # An alert shows what its incident is about: hidden with a security incident the
        # user may not see. One awaiting its incident (a moment, normally) is shown unless the
        # integration's type would make that incident a security one.
        visible = Incident.objects.visible_to(request.user).values("pk")
        awaiting = Q(incident__isnull=True)
        user = request.user
        if not (user.is_superuser or user.groups.filter(name=SECURITY_TEAM_GROUP).exists()):
            awaiting &= ~Q(integration__default_type__implies_security=True)
        return (
            super()
            .get_queryset(request)
            .filter(Q(incident__in=visible) | awaiting)
            .annotate(fingerprint_total=Count("fingerprints"))
        )

    @admin.display(description="Incident", ordering="incident_public_id")
    def incident_link(self, obj):
        if obj.incident_id is None:
            return f"{obj.incident_public_id} (being declared)"
        url = reverse("admin:incidents_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident_public_id)

    @admin.display(description="Group alerts", ordering="fingerprint_total")
    def fingerprint_count(self, obj):
        return obj.fingerprint_total or "-"
