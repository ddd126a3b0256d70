"""Admin building blocks every app uses."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """A record the portal writes (timeline entries, alerts, messages sent): people read it
    in the admin and never add, change or delete it there."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
