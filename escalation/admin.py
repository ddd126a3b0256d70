"""On-call admin: rotations with their roster, coverage and gaps; overrides; org roles; contacts."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from ops.people import display_name

from . import calendar, handoffs, services
from . import rotations as pure
from .models import (
    ContactProfile,
    EscalationPolicy,
    EscalationStep,
    Handoff,
    HandoffChecklistItem,
    HandoffChecklistTemplateItem,
    OrgRole,
    Override,
    Rotation,
    RotationMember,
)

# Coverage shown on a rotation's page.
COVERAGE_DAYS = 30
NEXT_SHIFTS = 8


class CalendarFeedMixin:
    """The secret feed URL on the page, and an action to revoke it by issuing a new one."""

    @admin.display(description="Calendar feed URL (treat it as a password)")
    def calendar_url(self, obj):
        if not obj.pk:
            return "-"
        url = calendar.feed_url(obj)
        webcal = url.replace("https://", "webcal://", 1).replace("http://", "webcal://", 1)
        return format_html('<a href="{}">{}</a> (<a href="{}">subscribe</a>)', url, url, webcal)

    @admin.action(description="Regenerate calendar feed URL (the old URL stops working)")
    def regenerate_calendar_token(self, request, queryset):
        count = 0
        for obj in queryset:
            calendar.regenerate_token(obj)
            count += 1
        self.message_user(request, f"New feed URL for {count}; subscribers need the new URL.")


class CurrentMemberInline(admin.TabularInline):
    """The roster as it stands; saving it starts a new roster at the next handoff.

    Rows are not edited in place: the service ends the current memberships and starts new ones,
    so the shifts already worked keep the people who worked them.
    """

    model = RotationMember
    fields = ("position", "user")
    extra = 1
    ordering = ("position",)
    verbose_name = "member"
    verbose_name_plural = "members (in order of turn; changes apply from the next handoff)"

    def get_queryset(self, request):
        now = timezone.now()
        return (
            super()
            .get_queryset(request)
            .filter(until__isnull=True)
            .exclude(since__gt=now)
            .select_related("user")
        )


class WhoIsOnCallForm(forms.Form):
    at = forms.DateTimeField(
        required=False, label="Who is on call at (UTC)", help_text="YYYY-MM-DD HH:MM; empty: now"
    )


@admin.register(Rotation)
class RotationAdmin(CalendarFeedMixin, admin.ModelAdmin):
    list_display = ("name", "shift", "handoff", "timezone", "backup")
    list_select_related = ("backup",)
    search_fields = ("name",)
    inlines = [CurrentMemberInline]
    change_form_template = "admin/escalation/rotation/change_form.html"
    change_list_template = "admin/escalation/rotation/change_list.html"

    class Media:
        css = {"all": ["incidents/admin.css"]}

    readonly_fields = ("calendar_url",)
    actions = ["regenerate_calendar_token"]
    fieldsets = (
        (None, {"fields": ("name", "description", "owner", "backup")}),
        (
            "Shifts",
            {
                "fields": (
                    "shift_unit",
                    "shift_length",
                    "handoff_weekday",
                    "handoff_time",
                    "timezone",
                    "starts_on",
                )
            },
        ),
        ("Calendar feed", {"fields": ("calendar_url",)}),
    )

    def changelist_view(self, request, extra_context=None):
        form = WhoIsOnCallForm(request.GET or None)
        at = timezone.now()
        if form.is_bound and form.is_valid() and form.cleaned_data["at"]:
            at = form.cleaned_data["at"]
        # One resolver pass for every rotation on the page: constant queries.
        request._on_call = {answer.rotation.pk: answer for answer in services.on_call(at=at)}
        # "at" is this page's own question, not a lookup the changelist should filter on.
        request.GET = request.GET.copy()
        request.GET.pop("at", None)
        extra = {"who_form": form, "who_at": at, **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description="Shift")
    def shift(self, obj):
        return f"{obj.shift_length} {obj.get_shift_unit_display().lower()}"

    @admin.display(description="Handoff")
    def handoff(self, obj):
        day = (
            f"{obj.get_handoff_weekday_display()} " if obj.shift_unit == Rotation.Unit.WEEKS else ""
        )
        return f"{day}{obj.handoff_time:%H:%M}"

    def get_list_display(self, request):
        answers = getattr(request, "_on_call", {})

        @admin.display(description="On call")
        def on_call_now(obj):
            found = answers.get(obj.pk)
            if found is None:
                return "-"
            if found.is_gap:
                return format_html(
                    '<span class="gap">nobody (gap until {})</span>',
                    f"{found.until:%a %d %b %H:%M}",
                )
            return format_html(
                "{}{} until {}",
                display_name(found.user),
                " (override)" if found.is_override else "",
                f"{found.until:%a %d %b %H:%M}",
            )

        return ("name", "shift", "handoff", "timezone", on_call_now, "backup")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        rotation = self.get_object(request, object_id) if str(object_id).isdigit() else None
        if rotation is not None:
            now = timezone.now()
            # The table starts at the current shift's handoff, so it reads as whole shifts.
            start = min(pure.shift_window(services.rules_for(rotation), now)[0], now)
            spans = services.shifts(rotation.pk, start, now + timedelta(days=COVERAGE_DAYS))
            upcoming = spans
            if len(spans) < NEXT_SHIFTS:
                # Long shifts: look further ahead so the page still lists the next eight.
                upcoming = services.shifts(rotation.pk, start, now + timedelta(days=400))
            extra.update(
                upcoming=upcoming[:NEXT_SHIFTS],
                gaps=[span for span in spans if span.is_gap and span.end > now],
                coverage_days=COVERAGE_DAYS,
            )
        return super().change_view(request, object_id, form_url, extra)

    def save_formset(self, request, form, formset, change):
        if formset.model is not RotationMember:
            return super().save_formset(request, form, formset, change)
        rows = [
            f.cleaned_data
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("user")
        ]
        rows.sort(key=lambda row: row.get("position") or 0)
        users = [row["user"] for row in rows]
        # The service records the roster; the formset itself saves nothing.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        try:
            services.set_rotation_members(form.instance, users)
        except services.OnCallError as exc:
            self.message_user(request, exc.message, messages.ERROR)


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ("rotation", "user", "starts_at", "ends_at", "reason", "created_by")
    list_filter = ("rotation",)
    list_select_related = ("rotation", "user", "created_by")
    readonly_fields = ("created_by", "created_at")
    date_hierarchy = "starts_at"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(OrgRole)
class OrgRoleAdmin(admin.ModelAdmin):
    list_display = ("name", "held_by", "rotation")
    list_select_related = ("rotation",)
    filter_horizontal = ("holders",)
    prepopulated_fields = {"slug": ("name",)}
    change_list_template = "admin/escalation/orgrole/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("holders")

    @admin.display(description="Held by")
    def held_by(self, obj):
        if obj.rotation_id:
            return f"whoever is on call in {obj.rotation}"
        return ", ".join(display_name(user) for user in obj.holders.all()) or "nobody"

    def get_urls(self):
        return [
            path(
                "contacts/",
                self.admin_site.admin_view(self.contacts_view),
                name="escalation_emergency_contacts",
            ),
            *super().get_urls(),
        ]

    def contacts_view(self, request):
        """The runbook's contact table, live: every role, who holds it now, how to reach them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        at = parse_datetime(request.GET.get("at", "")) or timezone.now()
        rows = [
            (role, [(user, services.contact_of(user)) for user in people])
            for role, people in services.role_holders(at=at)
        ]
        on_call = services.on_call(at=at)
        context = {
            **self.admin_site.each_context(request),
            "title": "Emergency contacts",
            "rows": rows,
            "on_call": [(a, services.contact_of(a.user) if a.user else None) for a in on_call],
            "at": at,
            "opts": self.opts,
        }
        return render(request, "admin/escalation/emergency_contacts.html", context)


@admin.register(ContactProfile)
class ContactProfileAdmin(CalendarFeedMixin, admin.ModelAdmin):
    list_display = ("user", "email", "phone", "chat_handle", "timezone")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name", "phone")
    fields = ("user", "phone", "chat_handle", "timezone", "calendar_url")
    readonly_fields = ("calendar_url",)
    actions = ["regenerate_calendar_token"]

    @admin.display(description="Email")
    def email(self, obj):
        return obj.user.email


class HandoffChecklistInline(admin.TabularInline):
    model = HandoffChecklistItem
    fields = ("text", "done", "done_by", "done_at")
    readonly_fields = ("text", "done_by", "done_at")
    extra = 0
    can_delete = False

    class form(forms.ModelForm):  # noqa: N801 - Django's inline hook is named "form"
        done = forms.BooleanField(required=False)

        class Meta:
            model = HandoffChecklistItem
            fields = ("done",)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fields["done"].initial = bool(self.instance.done_at)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Handoff)
class HandoffAdmin(admin.ModelAdmin):
    list_display = (
        "rotation",
        "boundary_at",
        "outgoing",
        "incoming",
        "acknowledged",
        "checklist_progress",
    )
    list_filter = ("rotation", ("acknowledged_at", admin.EmptyFieldListFilter))
    list_select_related = ("rotation", "outgoing", "incoming")
    date_hierarchy = "boundary_at"
    inlines = [HandoffChecklistInline]
    actions = ["acknowledge_selected"]
    readonly_fields = (
        "rotation",
        "boundary_at",
        "outgoing",
        "incoming",
        "open_incidents_list",
        "maintenance_notes",
        "known_issues",
        "reminder_sent_at",
        "acknowledged_at",
        "acknowledged_by",
        "overdue_notified_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                items=Count("checklist"),
                items_done=Count("checklist", filter=Q(checklist__done_at__isnull=False)),
            )
        )

    def has_add_permission(self, request):
        return False  # one per boundary, created by the periodic job

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="Acknowledged")
    def acknowledged(self, obj):
        if obj.acknowledged_at:
            return f"{obj.acknowledged_at:%a %d %b %H:%M}"
        if obj.is_overdue(timezone.now()):
            return format_html('<span class="gap">{}</span>', "NOT ACKNOWLEDGED (overdue)")
        return "waiting"

    @admin.display(description="Checklist")
    def checklist_progress(self, obj):
        return f"{obj.items_done}/{obj.items}"

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # Who reads the page decides which security incidents show their titles.
            obj.reader = request.user
        return obj

    @admin.display(description="Open incidents at handoff")
    def open_incidents_list(self, obj):
        incidents = handoffs.open_incidents_for(obj, getattr(obj, "reader", None))
        if not incidents:
            return "none"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} [{}] {} ({})</li>",
                ((i["id"], i["severity"], i["title"], i["status"]) for i in incidents),
            ),
        )

    @admin.action(description="Acknowledge selected handoffs (you are the incoming engineer)")
    def acknowledge_selected(self, request, queryset):
        for handoff in queryset:
            try:
                handoffs.acknowledge_handoff(handoff, by=request.user)
            except handoffs.HandoffError as exc:
                self.message_user(request, f"{handoff}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"Acknowledged {handoff}.", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        # Every field of the form is read-only: saving the row would only write back the
        # reminder, acknowledgement and overdue columns as read at the start of this request,
        # undoing a signed link or the periodic job that acted meanwhile. Ticks are saved by
        # save_formset through the service.
        pass

    def save_formset(self, request, form, formset, change):
        if formset.model is not HandoffChecklistItem:
            return super().save_formset(request, form, formset, change)
        for item_form in formset.forms:
            if "done" in item_form.changed_data:
                handoffs.set_handoff_item(
                    item_form.instance, done=item_form.cleaned_data["done"], by=request.user
                )
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


@admin.register(HandoffChecklistTemplateItem)
class HandoffChecklistTemplateItemAdmin(admin.ModelAdmin):
    list_display = ("position", "text", "is_active")
    list_display_links = ("text",)
    list_editable = ("position", "is_active")


# --- Escalation policies ------------------------------------------------------------------


def target_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Every target a step can name, grouped as the admin shows them."""
    from django.contrib.auth import get_user_model

    roles = list(OrgRole.objects.select_related("rotation"))
    rotations = list(Rotation.objects.all())
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    return [
        ("Org roles", [(f"role:{r.slug}", r.name) for r in roles]),
        (
            "Backup on call of a role's rotation",
            [(f"backup:{r.slug}", f"Backup of {r.name}") for r in roles if r.rotation_id],
        ),
        ("Primary on call", [(f"rotation:{r.pk}", f"On call: {r.name}") for r in rotations]),
        (
            "Backup on call",
            [(f"rotation-backup:{r.pk}", f"Backup on call: {r.name}") for r in rotations],
        ),
        ("People", [(f"user:{u.pk}", display_name(u)) for u in users]),
    ]


class EscalationStepForm(forms.ModelForm):
    """Targets picked from lists (roles, rotations, people) plus free email addresses."""

    target_list = forms.MultipleChoiceField(
        label="Targets", required=False, widget=forms.SelectMultiple(attrs={"size": 8})
    )
    emails = forms.CharField(
        label="Email addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 30}),
        help_text="Addresses outside the portal, one per line.",
    )
    channel_list = forms.MultipleChoiceField(
        label="Channels",
        choices=[("email", "Email"), ("webhook", "Outgoing webhooks")],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = EscalationStep
        fields = [
            "position",
            "key",
            "label",
            "delay",
            "condition",
            "repeat_every",
            "repeat_times",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].required = False
        self.fields["key"].help_text = "Leave blank to derive it from the label."
        self.fields["target_list"].choices = target_choices()
        targets = list(self.instance.targets or []) if self.instance.pk else []
        self.initial["target_list"] = [t for t in targets if not t.startswith("email:")]
        self.initial["emails"] = "\n".join(
            t.split(":", 1)[1] for t in targets if t.startswith("email:")
        )
        self.initial["channel_list"] = list(self.instance.channels or ["email", "webhook"])

    def clean_emails(self) -> list[str]:
        from django.core.validators import validate_email

        addresses = [line.strip() for line in self.cleaned_data["emails"].splitlines()]
        addresses = [a for a in addresses if a]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"{address!r} is not an email address.") from None
        return addresses

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("key") and cleaned.get("label"):
            from django.utils.text import slugify

            cleaned["key"] = slugify(cleaned["label"])[:60] or "step"
            self.instance.key = cleaned["key"]
        targets = list(cleaned.get("target_list") or []) + [
            f"email:{a}" for a in cleaned.get("emails") or []
        ]
        self.instance.targets = targets
        self.instance.channels = list(cleaned.get("channel_list") or [])
        return cleaned


class EscalationStepInline(admin.StackedInline):
    model = EscalationStep
    form = EscalationStepForm
    extra = 0
    fields = [
        ("position", "key"),
        "label",
        ("delay", "condition"),
        ("target_list", "emails"),
        "channel_list",
        ("repeat_every", "repeat_times"),
    ]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "applies_to", "step_count", "first_step", "updated_at"]
    search_fields = ["name", "description"]
    inlines = [EscalationStepInline]
    readonly_fields = ["preview", "updated_at", "preset"]
    fieldsets = [
        (None, {"fields": ["name", "description", ("severity", "flag")]}),
        (
            "Repeat the policy",
            {
                "fields": [("repeat_from", "repeat_cycles", "repeat_gap")],
                "description": "After the last step, go round again from a step, if nobody "
                "acknowledged or resolved (each step keeps its own condition).",
            },
        ),
        ("Preview", {"fields": ["preview"]}),
        (None, {"fields": ["preset", "updated_at"]}),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("severity")
            .annotate(step_total=Count("steps"))
            .prefetch_related("steps")
        )

    @admin.display(description="Applies to")
    def applies_to(self, obj):
        if obj.severity_id:
            return f"Severity {obj.severity.code}"
        return f"Flag: {obj.get_flag_display()}" if obj.flag else "Nothing (unused)"

    @admin.display(description="Steps", ordering="step_total")
    def step_count(self, obj):
        return obj.step_total

    @admin.display(description="First step")
    def first_step(self, obj):
        steps = list(obj.steps.all())
        return steps[0].label if steps else "-"

    @admin.display(description="What would fire for an incident declared now")
    def preview(self, obj):
        """The planner replayed for this policy against the real roster: nobody acknowledges,
        nobody resolves (the worst case), for seven days. simulate_escalation shows the rest."""
        from .engine import policy_steps
        from .preview import simulate

        if not obj.pk:
            return "Save the policy to see its preview."
        now = timezone.now()
        rows = simulate(policy_steps(obj), now)
        if not rows:
            return "Nothing would fire."
        return format_html(
            "<table><thead><tr><th>After</th><th>Step</th><th>Targets</th><th>Recipients</th>"
            "<th>Channel</th></tr></thead><tbody>{}</tbody></table>"
            "<p class='help'>Assumes nobody acknowledges or resolves; recipients are who holds "
            "each role or is on call when the step would fire. Try other cases with "
            "<code>manage.py simulate_escalation</code>.</p>",
            format_html_join(
                "",
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        format_html(' class="gap-row"') if row.gaps else "",
                        row.offset,
                        row.step,
                        ", ".join(row.targets),
                        ", ".join(row.recipients) or "NOBODY (gap: falls through)",
                        row.channel,
                    )
                    for row in rows
                ),
            ),
        )
