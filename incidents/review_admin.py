"""Post-incident reviews and action items in the admin: thin shells over ``incidents.reviews``."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from . import reviews
from .models import ActionItem, Incident, Review, ReviewRules


def visible_incidents(request):
    return Incident.objects.visible_to(request.user).values("pk")


class ActionItemInline(admin.TabularInline):
    model = ActionItem
    extra = 1
    fields = ["action", "owner", "due_date", "priority", "status"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["owner"].required = True
        return formset


class OverdueReviewFilter(admin.SimpleListFilter):
    title = "due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("open", "Not complete")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(Review.overdue_at(timezone.now()))
        if self.value() == "open":
            return queryset.filter(state=Review.State.DRAFT)
        return queryset


@admin.register(Review)
class ReviewAdmin(SimpleHistoryAdmin):
    list_display = ["incident", "severity", "state", "due_at", "overdue", "reason_list"]
    list_filter = ["state", "required", OverdueReviewFilter, "incident__severity"]
    search_fields = ["incident__public_id", "incident__title"]
    list_select_related = ["incident__severity"]
    inlines = [ActionItemInline]
    readonly_fields = [
        "incident_link",
        "required",
        "reason_list",
        "state",
        "created_at",
        "due_at",
        "completed_at",
        "completed_by",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "incident_link",
                    ("state", "due_at"),
                    ("required", "reason_list"),
                    ("completed_at", "completed_by"),
                ]
            },
        ),
        ("1. Incident summary", {"fields": ["summary"]}),
        ("2. Timeline", {"fields": ["timeline"]}),
        (
            "3. Root cause analysis",
            {"fields": ["primary_cause", "contributing_factors", "why_it_happened"]},
        ),
        ("4. Resolution details", {"fields": ["immediate_fix", "verification"]}),
        ("5. Impact assessment", {"fields": ["user_impact", "data_impact", "business_impact"]}),
        ("6. What went well", {"fields": ["went_well"]}),
        ("7. What could be improved", {"fields": ["could_improve"]}),
        ("9. Lessons learned", {"fields": ["lessons_learned"]}),
    ]
    change_form_template = "admin/incidents/review/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=visible_incidents(request))

    def has_add_permission(self, request):
        return False  # created when the incident resolves, or asked for on the incident page

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.state == Review.State.COMPLETE:
            return False  # reopen it first: a complete review is the record
        return super().has_change_permission(request, obj)

    @admin.display(description="Severity", ordering="incident__severity__rank")
    def severity(self, obj):
        return obj.incident.severity.code

    @admin.display(description="Incident")
    def incident_link(self, obj):
        url = reverse("admin:incidents_incident_change", args=[obj.incident_id])
        return format_html(
            '<a href="{}">{}: {}</a>', url, obj.incident.public_id, obj.incident.title
        )

    @admin.display(description="Required because")
    def reason_list(self, obj):
        return "; ".join(obj.reasons) if obj.required else "not required (voluntary)"

    @admin.display(boolean=True)
    def overdue(self, obj):
        return obj.is_overdue(timezone.now())

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/act/<str:action>/",
                wrap(require_POST(self.act_view)),
                name="incidents_review_act",
            ),
            path(
                "<int:object_id>/export.md",
                wrap(self.markdown_view),
                name="incidents_review_markdown",
            ),
            path("<int:object_id>/print/", wrap(self.print_view), name="incidents_review_print"),
            *super().get_urls(),
        ]

    def _review(self, request, object_id) -> Review:
        review = (
            self.get_queryset(request).select_related("incident__severity").filter(pk=object_id)
        )
        found = review.first()
        if found is None or not self.has_view_permission(request, found):
            raise Http404("No such review.")
        return found

    def act_view(self, request, object_id, action):
        review = self._review(request, object_id)
        if not request.user.has_perm("incidents.change_review"):
            raise PermissionDenied
        try:
            if action == "complete":
                reviews.complete_review(review, by=request.user)
                self.message_user(request, "Review complete.", messages.SUCCESS)
            elif action == "reopen":
                reviews.reopen_review(review, by=request.user)
                self.message_user(request, "Review reopened for editing.", messages.SUCCESS)
            else:
                raise Http404("No such action.")
        except reviews.ReviewError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:incidents_review_change", args=[review.pk]))

    def markdown_view(self, request, object_id):
        export = reviews.as_markdown(self._review(request, object_id))
        response = HttpResponse(export.content, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response

    def print_view(self, request, object_id):
        review = self._review(request, object_id)
        context = {
            **reviews.context(review),
            "markdown_url": reverse("admin:incidents_review_markdown", args=[review.pk]),
        }
        return render(request, "incidents/review_print.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        review = self._review(request, object_id)
        extra = {
            "review": review,
            "missing": reviews.missing_sections(review),
            "can_act": request.user.has_perm("incidents.change_review"),
            "now": timezone.now(),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def save_formset(self, request, form, formset, change):
        items = formset.save(commit=False)
        now = timezone.now()
        for item in items:
            if item.pk is not None:
                item.save()  # the model keeps closed_at in step with status
                continue
            # A new item follows the same rules as one added anywhere else.
            reviews.add_action_item(
                form.instance,
                action=item.action,
                owner=item.owner,
                due_date=item.due_date,
                priority=item.priority,
                status=item.status,
                now=now,
            )
        for item in formset.deleted_objects:
            item.delete()


class MineFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "mine"

    def lookups(self, request, model_admin):
        return [("yes", "Mine")]

    def queryset(self, request, queryset):
        return queryset.filter(owner=request.user) if self.value() == "yes" else queryset


class OverdueItemFilter(admin.SimpleListFilter):
    title = "due"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("open", "Open")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(ActionItem.overdue_on(timezone.localdate()))
        if self.value() == "open":
            return queryset.filter(status__in=ActionItem.OPEN_STATES)
        return queryset


@admin.register(ActionItem)
class ActionItemAdmin(SimpleHistoryAdmin):
    list_display = ["action", "incident", "owner", "due_date", "priority", "status", "overdue"]
    list_editable = ["status"]
    list_filter = [
        MineFilter,
        OverdueItemFilter,
        ("owner", admin.RelatedOnlyFieldListFilter),
        "priority",
        "status",
    ]
    search_fields = ["action", "review__incident__public_id"]
    list_select_related = ["review__incident", "owner"]
    fields = ["review", "action", "owner", "due_date", "priority", "status", "closed_at"]
    readonly_fields = ["review", "closed_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(review__incident__in=visible_incidents(request))

    def has_add_permission(self, request):
        return False  # added on their review

    @admin.display(description="Incident", ordering="review__incident__public_id")
    def incident(self, obj):
        url = reverse("admin:incidents_review_change", args=[obj.review_id])
        return format_html('<a href="{}">{}</a>', url, obj.review.incident.public_id)

    @admin.display(boolean=True)
    def overdue(self, obj):
        return obj.is_open and obj.due_date < timezone.localdate()


@admin.register(ReviewRules)
class ReviewRulesAdmin(admin.ModelAdmin):
    list_display = ["__str__", "recurring_count", "recurring_days", "due_within"]

    def has_add_permission(self, request):
        return False  # one row, created on first use; the list opens it

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        rules = reviews.rules()
        return HttpResponseRedirect(reverse("admin:incidents_reviewrules_change", args=[rules.pk]))
