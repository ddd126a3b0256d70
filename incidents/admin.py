"""The incident admin: the responders' primary UI. Every change goes through incidents.services."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, Subquery
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from ops.admin_base import RecordAdmin

from . import review_admin, reviews, services  # noqa: F401 - review_admin registers
from .forms import (
    ChecklistForm,
    DeclareIncidentForm,
    IncidentActionForm,
    IncidentDetailsForm,
    MilestoneForm,
    NoteForm,
    RequireReviewForm,
    RoleForm,
    SeverityForm,
    StatusForm,
)
from .models import (
    OPEN_STATUSES,
    BusinessCalendar,
    ChecklistTemplateItem,
    Incident,
    IncidentRole,
    IncidentType,
    Milestone,
    Review,
    Service,
    SeverityLevel,
    Status,
    TimelineEntry,
)
from .services import ALLOWED_TRANSITIONS, IncidentError
from .sla import humanize, sla_clock

# The change page shows this many timeline entries; the full timeline is one link away.
TIMELINE_ON_PAGE = 100

CAN_WORK = "incidents.change_incident"
CAN_SET_SEVERITY = "incidents.change_incident_severity"
CAN_CLOSE = "incidents.close_incident"


def severity_badge(severity: SeverityLevel):
    return format_html(
        '<span class="sev-badge sev-rank-{}" title="{}">{}</span>',
        min(severity.rank, 4),
        severity.name,
        severity.code,
    )


def clock_html(incident: Incident, now):
    clock = sla_clock(incident, now)
    return format_html(
        '<span class="sla-clock sla-{}" data-due="{}" data-kind="{}">{}</span>',
        clock.state,
        clock.due_at.isoformat() if clock.due_at else "",
        clock.kind,
        clock.label,
    )


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows, so a page costs the same with 1,000 or 1,000,000 incidents.

    Past the cap the page list ends at the cap; search and filters narrow long before that.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class BreachedFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("breached", "Breached"), ("within", "Within SLA")]

    def queryset(self, request, queryset):
        breached = Incident.objects.breached(timezone.now()).values("pk")
        if self.value() == "breached":
            return queryset.filter(pk__in=breached)
        if self.value() == "within":
            return queryset.exclude(pk__in=breached)
        return queryset


class MineFilter(admin.SimpleListFilter):
    title = "involvement"
    parameter_name = "mine"

    def lookups(self, request, model_admin):
        return [("yes", "Mine (role or declared)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            mine = IncidentRole.objects.filter(
                user=request.user, unassigned_at__isnull=True
            ).values("incident")
            return queryset.filter(Q(pk__in=mine) | Q(declared_by=request.user))
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("done", "Resolved or closed")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(status__in=OPEN_STATUSES)
        if self.value() == "done":
            return queryset.exclude(status__in=OPEN_STATUSES)
        return queryset


@admin.register(Incident)
class IncidentAdmin(SimpleHistoryAdmin):
    form = IncidentDetailsForm
    action_form = IncidentActionForm
    list_display = (
        "public_id",
        "title",
        "severity_col",
        "status",
        "commander",
        "age",
        "sla",
        "flags",
    )
    list_display_links = ("public_id", "title")
    list_filter = (
        OpenFilter,
        "severity",
        "status",
        "incident_type",
        "is_security",
        "is_data_loss",
        BreachedFilter,
        MineFilter,
    )
    list_select_related = ("severity",)
    search_fields = ("public_id", "title")
    search_help_text = "Search by id (INC-20261123-001) or title."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 50
    actions = ["acknowledge_selected", "assign_me_commander", "change_status_selected"]
    change_form_template = "admin/incidents/incident/change_form.html"
    change_list_template = "admin/incidents/incident/change_list.html"
    autocomplete_fields = ()
    filter_horizontal = ("affected_services",)
    fieldsets = (
        (None, {"fields": ("title", "summary")}),
        (
            "Classification",
            {"fields": ("severity", "incident_type", "is_security", "is_data_loss")},
        ),
        (
            "Impact",
            {"fields": ("detection_source", "users_affected", "impact_scope", "affected_services")},
        ),
    )

    class Media:
        css = {"all": ["incidents/admin.css"]}
        js = ["incidents/sla-clock.js"]

    # --- queryset and permissions -------------------------------------------------------------
    def get_queryset(self, request):
        commander = (
            IncidentRole.objects.filter(
                incident=OuterRef("pk"),
                role=IncidentRole.Role.COMMANDER,
                unassigned_at__isnull=True,
            )
            .order_by()
            .values("user__username")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .visible_to(request.user)
            .annotate(commander_name=Subquery(commander))
        )

    def has_add_permission(self, request):
        return request.user.has_perm("incidents.add_incident")

    def has_delete_permission(self, request, obj=None):
        # Incidents are the record of what happened: only a superuser may erase one.
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        readonly = []
        if obj is not None and not request.user.has_perm(CAN_SET_SEVERITY):
            readonly.append("severity")
        return readonly

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(CAN_WORK):
            for name in ("acknowledge_selected", "assign_me_commander", "change_status_selected"):
                actions.pop(name, None)
        return actions

    # --- list columns -------------------------------------------------------------------------
    @admin.display(description="Severity", ordering="severity__rank")
    def severity_col(self, obj):
        return severity_badge(obj.severity)

    @admin.display(description="Commander", ordering="commander_name")
    def commander(self, obj):
        return obj.commander_name or "-"

    @admin.display(description="Age", ordering="declared_at")
    def age(self, obj):
        return humanize(timezone.now() - obj.declared_at)

    @admin.display(description="SLA clock")
    def sla(self, obj):
        return clock_html(obj, timezone.now())

    @admin.display(description="Flags")
    def flags(self, obj):
        parts = []
        if obj.is_security:
            parts.append('<span class="flag flag-security">security</span>')
        if obj.is_data_loss:
            parts.append('<span class="flag flag-data-loss">data loss</span>')
        return mark_safe(" ".join(parts))  # constant markup, no user data

    # --- list actions -------------------------------------------------------------------------
    def _each(self, request, queryset, call, done: str):
        count = 0
        for incident in queryset:
            try:
                call(incident)
                count += 1
            except IncidentError as exc:
                self.message_user(request, exc.message, messages.WARNING)
        if count:
            self.message_user(request, f"{done}: {count} incident(s).", messages.SUCCESS)

    @admin.action(description="Acknowledge selected incidents")
    def acknowledge_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda incident: services.acknowledge_incident(incident, by=request.user),
            "Acknowledged",
        )

    @admin.action(description="Assign me as incident commander")
    def assign_me_commander(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda incident: services.assign_role(
                incident, IncidentRole.Role.COMMANDER, request.user, by=request.user
            ),
            "You are now commander of",
        )

    @admin.action(description="Change status of selected incidents (choose New status)")
    def change_status_selected(self, request, queryset):
        status = request.POST.get("status")
        if status not in Status.values:
            self.message_user(request, "Choose the new status next to the action.", messages.ERROR)
            return
        self._each(
            request,
            queryset,
            lambda incident: services.change_status(incident, status, by=request.user),
            f"Moved to {Status(status).label}",
        )

    # --- declare ------------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("declare/", wrap(self.declare_view), name="incidents_incident_declare"),
            path(
                "<int:object_id>/act/<str:action>/",
                wrap(require_POST(self.act_view)),
                name="incidents_incident_act",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:incidents_incident_declare"))

    def declare_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DeclareIncidentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                incident = services.declare_incident(
                    title=data["title"],
                    severity=data["severity"],
                    incident_type=data["incident_type"],
                    summary=data["summary"],
                    is_security=data["is_security"],
                    is_data_loss=data["is_data_loss"],
                    by=request.user,
                )
            except IncidentError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                self.message_user(
                    request,
                    f"Declared {incident.public_id}. Acknowledge it and take a role.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:incidents_incident_change", args=[incident.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Declare incident",
            "form": form,
            "opts": self.opts,
            "severities": SeverityLevel.objects.filter(is_active=True),
            "media": self.media + form.media,
        }
        return render(request, "admin/incidents/incident/declare.html", context)

    # --- change page --------------------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        incident = self.get_object(request, object_id)
        if incident is None:
            # Hidden (security) or absent: the same answer, so existence does not leak.
            raise Http404("No such incident.")
        can_work = request.user.has_perm(CAN_WORK) and incident.status != Status.CLOSED
        now = timezone.now()
        transitions = [
            Status(status)
            for status in Status
            if status in ALLOWED_TRANSITIONS[incident.status]
            and (status != Status.CLOSED or request.user.has_perm(CAN_CLOSE))
        ]
        timeline = list(
            incident.timeline.select_related("author").order_by("-at", "-pk")[
                : TIMELINE_ON_PAGE + 1
            ]
        )
        milestones = [(m, incident.milestone(m)) for m in Milestone]
        roles = list(incident.roles.filter(unassigned_at__isnull=True).select_related("user"))
        extra = {
            "incident": incident,
            "now": now,
            "clock": clock_html(incident, now),
            "badge": severity_badge(incident.severity),
            "can_work": can_work,
            "can_set_severity": can_work and request.user.has_perm(CAN_SET_SEVERITY),
            "transitions": transitions,
            "milestones": milestones,
            "roles": roles,
            "is_commander": any(
                r.role == IncidentRole.Role.COMMANDER and r.user_id == request.user.pk
                for r in roles
            ),
            "show_save_and_add_another": False,
            "checklist": incident.checklist.select_related("done_by"),
            "timeline": timeline[:TIMELINE_ON_PAGE],
            "timeline_truncated": len(timeline) > TIMELINE_ON_PAGE,
            "note_form": NoteForm(),
            "role_form": RoleForm(),
            "milestone_form": MilestoneForm(),
            "severity_form": SeverityForm(initial={"severity": incident.severity_id}),
            "ack_breached": incident.is_ack_breached(now),
            "resolution_breached": incident.is_resolution_breached(now),
            "review": Review.objects.filter(incident=incident).first(),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def save_model(self, request, obj, form, change):
        """Route each edited field to the service that owns it, so each gets its timeline entry."""
        if not change:
            raise PermissionDenied("Incidents are declared on the declare page.")
        incident = Incident.objects.get(pk=obj.pk)
        data = form.cleaned_data
        try:
            if "severity" in form.changed_data and request.user.has_perm(CAN_SET_SEVERITY):
                incident = services.change_severity(incident, data["severity"], by=request.user)
            if "incident_type" in form.changed_data:
                incident = services.set_incident_type(
                    incident, data["incident_type"], by=request.user
                )
            if {"is_security", "is_data_loss"} & set(form.changed_data):
                incident = services.set_flags(
                    incident,
                    is_security=data["is_security"],
                    is_data_loss=data["is_data_loss"],
                    by=request.user,
                )
            details = {
                name: data[name] for name in services.EDITABLE_DETAILS if name in form.changed_data
            }
            services.update_details(
                incident,
                by=request.user,
                affected_services=data["affected_services"]
                if "affected_services" in form.changed_data
                else None,
                **details,
            )
        except IncidentError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def save_related(self, request, form, formsets, change):
        # affected_services were saved by update_details; nothing else is related.
        pass

    # --- buttons on the change page -----------------------------------------------------------
    def act_view(self, request, object_id, action):
        incident = self.get_object(request, object_id)
        if incident is None:
            raise Http404("No such incident.")
        if not request.user.has_perm(CAN_WORK):
            raise PermissionDenied
        handler = self.ACTIONS.get(action)
        if handler is None:
            raise Http404("No such action.")
        try:
            text = handler(self, request, incident)
        except IncidentError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            if text:
                self.message_user(request, text, messages.SUCCESS)
        url = reverse("admin:incidents_incident_change", args=[incident.pk])
        anchor = request.POST.get("anchor", "")
        return HttpResponseRedirect(f"{url}#{anchor}" if anchor.isidentifier() else url)

    def _form(self, form_class, request):
        form = form_class(request.POST)
        if not form.is_valid():
            errors = "; ".join(
                f"{form.fields[name].label or name if name in form.fields else ''}: {' '.join(e)}"
                for name, e in form.errors.items()
            )
            raise IncidentError(errors)
        return form.cleaned_data

    def _acknowledge(self, request, incident):
        services.acknowledge_incident(incident, by=request.user)
        return f"Acknowledged {incident.public_id}."

    def _status(self, request, incident):
        data = self._form(StatusForm, request)
        if data["status"] == Status.CLOSED and not request.user.has_perm(CAN_CLOSE):
            raise PermissionDenied
        services.change_status(incident, data["status"], by=request.user, note=data["note"])
        return f"Status is now {Status(data['status']).label}."

    def _severity(self, request, incident):
        if not request.user.has_perm(CAN_SET_SEVERITY):
            raise PermissionDenied
        data = self._form(SeverityForm, request)
        services.change_severity(incident, data["severity"], by=request.user, reason=data["reason"])
        return f"Severity is now {data['severity'].code}; SLA deadlines recomputed."

    def _take_command(self, request, incident):
        services.assign_role(incident, IncidentRole.Role.COMMANDER, request.user, by=request.user)
        return "You are the incident commander."

    def _role(self, request, incident):
        data = self._form(RoleForm, request)
        services.assign_role(incident, data["role"], data["user"], by=request.user)
        return f"{data['user']} is now {IncidentRole.Role(data['role']).label.lower()}."

    def _unassign(self, request, incident):
        try:
            assignment = incident.roles.get(pk=int(request.POST.get("assignment", "")))
        except (ValueError, IncidentRole.DoesNotExist) as exc:
            raise IncidentError("No such role assignment on this incident.") from exc
        services.unassign_role(assignment, by=request.user)
        return "Role handed back."

    def _checklist(self, request, incident):
        data = self._form(ChecklistForm, request)
        try:
            item = incident.checklist.get(pk=data["item"])
        except incident.checklist.model.DoesNotExist as exc:
            raise IncidentError("No such checklist item on this incident.") from exc
        services.set_checklist_item(item, done=data["done"], by=request.user)
        return None

    def _note(self, request, incident):
        data = self._form(NoteForm, request)
        services.add_note(incident, data["body"], kind=data["kind"], by=request.user)
        return "Note added to the timeline."

    def _milestone(self, request, incident):
        data = self._form(MilestoneForm, request)
        services.correct_milestone(
            incident, data["milestone"], data["at"], by=request.user, reason=data["reason"]
        )
        return f"{Milestone(data['milestone']).label} corrected."

    def _require_review(self, request, incident):
        data = self._form(RequireReviewForm, request)
        try:
            reviews.require_review(incident, by=request.user, reason=data["reason"])
        except reviews.ReviewError as exc:
            raise IncidentError(exc.message) from exc
        return "A post-incident review is required for this incident."

    ACTIONS = {
        "acknowledge": _acknowledge,
        "require-review": _require_review,
        "status": _status,
        "severity": _severity,
        "take-command": _take_command,
        "role": _role,
        "unassign": _unassign,
        "checklist": _checklist,
        "note": _note,
        "milestone": _milestone,
    }

    def history_view(self, request, object_id, extra_context=None):
        if self.get_object(request, object_id) is None:
            raise Http404("No such incident.")
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # A past version is shown read-only (SIMPLE_HISTORY_REVERT_DISABLED): a revert would
        # bypass the services and their timeline entries. Hidden incidents stay hidden.
        if self.get_object(request, object_id) is None:
            raise Http404("No such incident.")
        if request.method != "GET":
            raise PermissionDenied("Past versions are read only.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # The timeline is never deleted on its own, but it goes with its incident when a
        # superuser erases one.
        if request.user.is_superuser:
            perms_needed = {name for name in perms_needed if name != "timeline entry"}
        return deleted, model_count, perms_needed, protected


@admin.register(TimelineEntry)
class TimelineEntryAdmin(RecordAdmin):
    """The whole timeline, read only: entries are append-only and never edited here."""

    list_display = ("at", "incident_link", "kind", "note_kind", "author", "body")
    list_filter = ("kind", "note_kind")
    list_select_related = ("incident", "author")
    search_fields = ("incident__public_id", "body")
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    date_hierarchy = None

    def get_queryset(self, request):
        visible = Incident.objects.visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(incident__in=visible)

    @admin.display(description="Incident", ordering="incident__public_id")
    def incident_link(self, obj):
        url = reverse("admin:incidents_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident.public_id)


class ChecklistTemplateItemInline(admin.TabularInline):
    model = ChecklistTemplateItem
    extra = 1
    fields = ("position", "phase", "text")


@admin.register(IncidentType)
class IncidentTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "default_severity", "implies_security", "implies_data_loss")
    list_select_related = ("default_severity",)
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")
    inlines = [ChecklistTemplateItemInline]


@admin.register(SeverityLevel)
class SeverityLevelAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "is_active",
        "response_time",
        "resolution_target",
        "internal_update_every",
        "war_room_required",
        "review_required",
        "preset",
    )
    list_filter = ("is_active", "preset")
    fieldsets = (
        (None, {"fields": ("code", "name", "rank", "is_active", "preset")}),
        ("Definition", {"fields": ("definition", "examples")}),
        (
            "SLA",
            {
                "fields": (
                    "response_time",
                    "response_in_business_days",
                    "resolution_target",
                    "resolution_in_business_days",
                )
            },
        ),
        (
            "Communication and review",
            {
                "fields": (
                    "internal_update_every",
                    "external_update_every",
                    "war_room_required",
                    "stakeholder_email_within",
                    "status_page_within",
                    "review_required",
                    "review_required_if_longer_than",
                )
            },
        ),
    )

    def has_delete_permission(self, request, obj=None):
        # Incidents point at their severity; retire a level with "active" instead.
        return False


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ("name", "timezone", "workdays", "day_starts_at", "day_ends_at")
