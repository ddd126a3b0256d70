"""The delivery log (every notification and its state) and outgoing webhooks."""

from django.contrib import admin, messages
from django.db.models import Q

from incidents.models import Incident

from . import outbox
from .models import Notification, Webhook


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
    fields = ["name", "url", "format", "is_active", "escalations", "timeout_seconds", "secret"]
