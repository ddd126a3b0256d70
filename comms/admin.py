"""The delivery log (every notification and its state) and outgoing webhooks."""

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.html import format_html

from incidents.admin import IncidentAdmin, MineFilter
from incidents.models import Incident, Status
from incidents.sla import humanize
from ops.admin_base import RecordAdmin
from ops.people import display_name

from . import cadence, outbox
from .models import (
    Audience,
    CommsSettings,
    Communication,
    IncidentUpdate,
    Notification,
    Webhook,
)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "incident",
        "channel",
        "recipient",
        "subject",
        "state",
        "attempts",
        "sent_at",
        "short_error",
    ]
    list_filter = ["state", "channel", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["recipient", "subject", "reason", "incident__public_id", "message_id"]
    list_select_related = ["incident"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    readonly_fields = [
        "uid",
        "reason",
        "channel",
        "recipient",
        "user",
        "incident",
        "subject",
        "body_text",
        "body_html",
        "payload",
        "headers",
        "message_id",
        "state",
        "created_at",
        "next_attempt_at",
        "lease_until",
        "attempts",
        "max_attempts",
        "sent_at",
        "last_error",
        "link_used_at",
    ]

    def get_queryset(self, request):
        # A notification about a security incident is as secret as the incident.
        visible = Incident.objects.visible_to(request.user).values("pk")
        return (
            super().get_queryset(request).filter(Q(incident__isnull=True) | Q(incident__in=visible))
        )

    @admin.display(description="Last error")
    def short_error(self, obj):
        return (obj.last_error[:80] + "...") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description="Send again (failed notifications only)", permissions=["change"])
    def send_again(self, request, queryset):
        count = sum(outbox.retry_now(pk) for pk in queryset.values_list("pk", flat=True))
        skipped = queryset.count() - count
        self.message_user(request, f"{count} queued to send again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} left alone: only failed notifications are sent again."
            )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the log of what left the portal is kept


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["name", "format", "url", "is_active", "escalations"]
    list_filter = ["format", "is_active"]
    search_fields = ["name", "url"]
    fields = [
        "name",
        "url",
        "format",
        "is_active",
        "escalations",
        "updates",
        "timeout_seconds",
        "secret",
    ]


class NotificationInline(admin.TabularInline):
    model = Notification
    fields = ["recipient", "channel", "state", "attempts", "sent_at", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class DeliveryFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("failed", "Some failed"), ("pending", "Not all sent yet")]

    def queryset(self, request, queryset):
        states = {
            "failed": [Notification.State.FAILED],
            "pending": [Notification.State.PENDING, Notification.State.SENDING],
        }.get(self.value())
        if states is None:
            return queryset
        # A subquery, not a join: a join would multiply the delivery counts of the list.
        rows = Notification.objects.filter(communication=OuterRef("pk"), state__in=states)
        return queryset.filter(Exists(rows))


@admin.register(Communication)
class CommunicationAdmin(RecordAdmin):
    """The communication log: every message that left the portal or was posted by hand
    (logged from the incident's "Log a message", not added here)."""

    list_display = [
        "at",
        "incident",
        "audience",
        "channel",
        "subject_or_text",
        "recipient_count",
        "delivery",
        "author_name",
        "manual",
    ]
    list_filter = [
        "audience",
        "channel",
        "manual",
        DeliveryFilter,
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["subject", "body", "recipients", "incident__public_id", "template"]
    list_select_related = ["incident", "author"]
    date_hierarchy = "at"
    inlines = [NotificationInline]
    readonly_fields = [
        "at",
        "incident",
        "update",
        "audience",
        "channel",
        "template",
        "manual",
        "author",
        "recipient_count",
        "recipients",
        "subject",
        "body",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        visible = Incident.objects.visible_to(request.user).values("pk")
        return (
            super()
            .get_queryset(request)
            .filter(Q(incident__isnull=True) | Q(incident__in=visible))
            .with_delivery()
        )

    @admin.display(description="Subject / text")
    def subject_or_text(self, obj):
        text = obj.subject or obj.body
        return text[:90] + ("..." if len(text) > 90 else "")

    @admin.display(description="Delivery")
    def delivery(self, obj):
        return obj.delivery_summary

    @admin.display(description="Author")
    def author_name(self, obj):
        return display_name(obj.author, nobody="the portal")


class IncidentUpdateStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Status.choices

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(IncidentUpdate)
class IncidentUpdateAdmin(RecordAdmin):
    # Posted from the incident ("Post update"), so that it is sent.
    list_display = ["posted_at", "incident", "kind", "status_label", "author", "has_public_text"]
    list_filter = ["kind", IncidentUpdateStatusFilter]
    search_fields = ["incident__public_id", "progress", "public_text"]
    list_select_related = ["incident", "author"]
    readonly_fields = [
        "incident",
        "kind",
        "posted_at",
        "author",
        "status_label",
        "progress",
        "next_steps",
        "eta",
        "impact",
        "public_text",
        "audience_labels",
    ]
    fields = readonly_fields

    # The update keeps the incident's status and the audiences as codes (a status is the
    # incidents app's, the audiences a list): shown here by their names.
    @admin.display(description="Status", ordering="status")
    def status_label(self, obj):
        return Status(obj.status).label if obj.status in Status.values else obj.status

    @admin.display(description="Sent to")
    def audience_labels(self, obj):
        names = dict(Audience.choices)
        return ", ".join(names.get(code, code) for code in obj.audiences or []) or "-"

    def get_queryset(self, request):
        visible = Incident.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(incident__in=visible)

    @admin.display(boolean=True, description="Public text")
    def has_public_text(self, obj):
        return bool(obj.public_text)


@admin.register(CommsSettings)
class CommsSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "organisation", "war_room_link", "remind_before"]

    def has_add_permission(self, request):
        return False  # one row, created on first use; the list opens it

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import redirect

        # The list is only a way in: it must refuse whom the list itself would refuse.
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings_row = CommsSettings.load()
        return redirect("admin:comms_commssettings_change", settings_row.pk)


# --- The incidents list learns what communications owes -------------------------------------
# incidents imports no other app, so comms adds its column and filter to the incidents list.


class CommsOverdueFilter(admin.SimpleListFilter):
    title = "communications"
    parameter_name = "comms"

    def lookups(self, request, model_admin):
        return [("overdue", "Update overdue")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(cadence.overdue_filter(timezone.now()))
        return queryset


@admin.display(description="Next update")
def next_update(incident):
    state = getattr(incident, "comms", None)  # absent for incidents with nothing owed
    due = state.next_due_at if state is not None and incident.is_open else None
    if due is None:
        return "-"
    now = timezone.now()
    if due <= now:
        return format_html('<span class="breached">overdue {}</span>', humanize(now - due))
    return f"in {humanize(due - now)}"


def _before(items: tuple, anchor, new) -> tuple:
    index = items.index(anchor)
    return (*items[:index], new, *items[index:])


IncidentAdmin.list_display = _before(tuple(IncidentAdmin.list_display), "flags", next_update)
IncidentAdmin.list_filter = _before(
    tuple(IncidentAdmin.list_filter), MineFilter, CommsOverdueFilter
)
IncidentAdmin.list_select_related = (*IncidentAdmin.list_select_related, "comms")

from . import stakeholder_admin, status_admin, template_admin  # noqa: E402,F401
