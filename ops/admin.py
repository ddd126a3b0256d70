from django.contrib import admin

from .models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("source", "seen_at", "detail")
    readonly_fields = ("source", "seen_at", "detail")

    # Written only by the worker and beat; an operator reads them here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
