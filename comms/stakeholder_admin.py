"""Stakeholder lists in the admin: who is emailed for which severities and services."""

import re
from dataclasses import dataclass, field

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet

from . import unsubscribe as links
from .models import Stakeholder, StakeholderList

# "Ada Lovelace <ada@example.com>", as mail clients copy addresses; the name may be quoted.
NAMED = re.compile(r'^\s*"?(?P<name>[^"<]*?)"?\s*<(?P<email>[^<>]+)>\s*$')


@dataclass
class Parsed:
    people: list[tuple[str, str]] = field(default_factory=list)  # (name, email), first wins
    repeated: int = 0  # lines naming an address an earlier line named


def parse_addresses(text: str) -> Parsed:
    """One address per line, bare or ``Name <addr>``; blank lines ignored. Raises a
    ValidationError listing every bad line by number, so a long paste is fixed in one go."""
    parsed, seen, errors = Parsed(), set(), []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = NAMED.match(line)
        name, email = (match["name"].strip(), match["email"].strip()) if match else ("", line)
        try:
            validate_email(email)
        except ValidationError:
            errors.append(f"Line {number}: {line!r} is not a valid email address.")
            continue
        if email.lower() in seen:
            parsed.repeated += 1
            continue
        seen.add(email.lower())
        parsed.people.append((name[:150], email))
    if errors:
        raise ValidationError(errors)
    return parsed


def add_members(stakeholder_list: StakeholderList, people: list[tuple[str, str]]) -> int:
    """Add (name, email) pairs not on the list yet; return how many were added.

    Compared without case: mail systems treat addresses so, and an unsubscribed person pasted in
    again must stay unsubscribed (the resubscribe action is for when they ask)."""
    on_list = {email.lower() for email in stakeholder_list.members.values_list("email", flat=True)}
    new = [
        Stakeholder(stakeholder_list=stakeholder_list, name=name, email=email)
        for name, email in people
        if email.lower() not in on_list
    ]
    # ignore_conflicts: the unique constraint, not the check above, settles a concurrent add.
    Stakeholder.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


class StakeholderListForm(forms.ModelForm):
    add_many = forms.CharField(
        label="Add many",
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={
                "rows": 6,
                "cols": 60,
                "placeholder": "Ada Lovelace <ada@example.com>\nops@example.com",
            }
        ),
        help_text='One address per line, "Name <address>" or just the address. Addresses already '
        "on the list (subscribed or not) are skipped.",
    )

    class Meta:
        model = StakeholderList
        fields = ["name", "description", "is_active", "severities", "services"]

    def clean_add_many(self) -> Parsed:
        return parse_addresses(self.cleaned_data["add_many"])


class MembersFormSet(BaseInlineFormSet):
    def clean(self):
        """Two rows of one save with the same address in another case: the database would
        refuse the second (one address per list whatever its case), so the form says so."""
        super().clean()
        seen: set[str] = set()
        for form in self.forms:
            if not form.has_changed() and form.instance.pk is None:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            email = (form.cleaned_data.get("email") or "").lower()
            if email and email in seen:
                form.add_error("email", "This address is already on the list.")
            seen.add(email)


class StakeholderInline(admin.TabularInline):
    model = Stakeholder
    formset = MembersFormSet
    fields = ["name", "email", "unsubscribed_at"]
    readonly_fields = ["unsubscribed_at"]
    extra = 0


@admin.register(StakeholderList)
class StakeholderListAdmin(admin.ModelAdmin):
    form = StakeholderListForm
    list_display = ["name", "is_active", "severity_list", "service_list", "subscribed", "members"]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]
    filter_horizontal = ["severities", "services"]
    inlines = [StakeholderInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "is_active"]}),
        ("Subscribed to", {"fields": ["severities", "services"]}),
        ("Members", {"fields": ["add_many"]}),
    ]

    def get_queryset(self, request):
        # Counts and both many-to-many columns in constant queries, whatever the number of lists.
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=Count("members", distinct=True),
                subscribed_count=Count(
                    "members", filter=Q(members__unsubscribed_at__isnull=True), distinct=True
                ),
            )
            .prefetch_related("severities", "services")
        )

    @admin.display(description="Members", ordering="member_count")
    def members(self, obj):
        return obj.member_count

    @admin.display(description="Subscribed", ordering="subscribed_count")
    def subscribed(self, obj):
        return obj.subscribed_count

    @admin.display(description="Severities")
    def severity_list(self, obj):
        return ", ".join(level.code for level in obj.severities.all()) or "-"

    @admin.display(description="Services")
    def service_list(self, obj):
        return ", ".join(service.name for service in obj.services.all()) or "every service"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        parsed: Parsed = form.cleaned_data.get("add_many") or Parsed()
        if not parsed.people:
            return
        added = add_members(form.instance, parsed.people)
        skipped = len(parsed.people) - added + parsed.repeated
        text = f"Added {added} address{'es' if added != 1 else ''} to {form.instance}."
        if skipped:
            text += f" Skipped {skipped} already on the list or repeated."
        self.message_user(request, text, messages.SUCCESS)


class SubscribedFilter(admin.SimpleListFilter):
    title = "subscription"
    parameter_name = "subscribed"

    def lookups(self, request, model_admin):
        return [("yes", "Subscribed"), ("no", "Unsubscribed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(unsubscribed_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(unsubscribed_at__isnull=False)
        return queryset


@admin.register(Stakeholder)
class StakeholderAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "name",
        "stakeholder_list",
        "is_subscribed",
        "created_at",
        "unsubscribed_at",
    ]
    list_filter = ["stakeholder_list", SubscribedFilter]
    search_fields = ["email", "name", "stakeholder_list__name"]
    list_select_related = ["stakeholder_list"]
    fields = ["stakeholder_list", "name", "email", "created_at", "unsubscribed_at"]
    readonly_fields = ["created_at", "unsubscribed_at"]
    actions = ["resubscribe"]

    @admin.display(description="Subscribed", boolean=True)
    def is_subscribed(self, obj):
        return obj.unsubscribed_at is None

    @admin.action(description="Resubscribe (only when they asked to be)", permissions=["change"])
    def resubscribe(self, request, queryset):
        count = links.resubscribe(queryset)
        self.message_user(request, f"{count} resubscribed.", messages.SUCCESS)
