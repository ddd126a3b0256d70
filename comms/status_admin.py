"""The status page's admin: the public services and the maintenance windows announced on it."""

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from .models import Maintenance, StatusPageService
from .status_page import maintenance_phase


@admin.register(StatusPageService)
class StatusPageServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "state_override", "internal_services"]
    list_editable = ["position", "state_override"]
    list_display_links = ["name"]
    search_fields = ["name", "description"]
    filter_horizontal = ["services"]
    fields = ["name", "description", "services", "position", "state_override"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("services")

    @admin.display(description="Internal services")
    def internal_services(self, obj):
        return ", ".join(service.name for service in obj.services.all()) or "-"


class MaintenancePhaseFilter(admin.SimpleListFilter):
    title = "when"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [("upcoming", "Upcoming"), ("ongoing", "Ongoing"), ("past", "Past")]

    def queryset(self, request, queryset):
        now = timezone.now()
        phases = {
            "upcoming": Q(starts_at__gt=now),
            "ongoing": Q(starts_at__lte=now, ends_at__gt=now),
            "past": Q(ends_at__lte=now),
        }
        if self.value() in phases:
            return queryset.filter(phases[self.value()])
        return queryset


@admin.register(Maintenance)
class MaintenanceAdmin(admin.ModelAdmin):
    list_display = ["title", "starts_at", "ends_at", "phase", "public_services", "created_by"]
    list_filter = [MaintenancePhaseFilter]
    list_select_related = ["created_by"]
    search_fields = ["title", "description"]
    date_hierarchy = "starts_at"
    filter_horizontal = ["services"]
    fields = ["title", "description", "services", "starts_at", "ends_at", "created_by"]
    readonly_fields = ["created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("services")

    @admin.display(description="When")
    def phase(self, obj):
        return maintenance_phase(obj.starts_at, obj.ends_at, timezone.now()).capitalize()

    @admin.display(description="Services")
    def public_services(self, obj):
        return ", ".join(service.name for service in obj.services.all()) or "-"

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
