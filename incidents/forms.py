"""Forms of the incident admin: each validates input for exactly one service call."""

from django import forms
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model

from .models import (
    OPEN_STATUSES,
    Incident,
    IncidentRole,
    IncidentType,
    Milestone,
    SeverityLevel,
    Status,
    TimelineEntry,
)


class DeclareIncidentForm(forms.Form):
    """Only what is needed at 3 a.m.; everything else can be filled in later."""

    title = forms.CharField(
        max_length=200,
        widget=forms.TextInput(attrs={"autofocus": True, "size": 60}),
        help_text="What is broken, as users see it: 'Checkout returns 500 errors'.",
    )
    # No preselected level: an accidental P0 pages every lead, an accidental P3 pages nobody.
    severity = forms.ModelChoiceField(
        queryset=SeverityLevel.objects.filter(is_active=True), empty_label="Choose a severity"
    )
    incident_type = forms.ModelChoiceField(
        queryset=IncidentType.objects.all(),
        required=False,
        label="Type",
        help_text="Copies the type's diagnosis and remediation checklist onto the incident.",
    )
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=False)
    is_security = forms.BooleanField(
        required=False,
        label="Security incident",
        help_text="Visible only to the Security Team and the incident's responders.",
    )
    is_data_loss = forms.BooleanField(required=False, label="Data loss")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["severity"].label_from_instance = lambda level: (
            f"{level.code} {level.name}: {level.definition[:90]}"
        )


class NoteForm(forms.Form):
    kind = forms.ChoiceField(choices=TimelineEntry.NoteKind.choices)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 70}), label="Note")


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices)
    note = forms.CharField(required=False, max_length=500)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=IncidentRole.Role.choices)
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")
    )


class MilestoneForm(forms.Form):
    milestone = forms.ChoiceField(choices=Milestone.choices)
    at = forms.DateTimeField(
        required=False,
        label="Time (UTC)",
        help_text="YYYY-MM-DD HH:MM, in UTC. Empty clears the milestone.",
    )
    reason = forms.CharField(max_length=300)


class RequireReviewForm(forms.Form):
    reason = forms.CharField(max_length=300)


class ChecklistForm(forms.Form):
    item = forms.IntegerField()
    done = forms.BooleanField(required=False)


class SeverityForm(forms.Form):
    severity = forms.ModelChoiceField(queryset=SeverityLevel.objects.filter(is_active=True))
    reason = forms.CharField(required=False, max_length=300)


class IncidentActionForm(ActionForm):
    """The changelist's action bar, with the status the "change status" action moves to."""

    status = forms.ChoiceField(
        choices=[("", "---------")]
        + [(s.value, s.label) for s in Status if s in OPEN_STATUSES]
        + [(Status.RESOLVED.value, Status.RESOLVED.label)],
        required=False,
        label="New status",
    )


class IncidentDetailsForm(forms.ModelForm):
    """The editable part of the change page; saving goes through the services."""

    class Meta:
        model = Incident
        fields = [
            "title",
            "summary",
            "severity",
            "incident_type",
            "is_security",
            "is_data_loss",
            "detection_source",
            "users_affected",
            "impact_scope",
            "affected_services",
        ]
        widgets = {"title": forms.TextInput(attrs={"size": 80})}

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.status == Status.CLOSED:
            raise forms.ValidationError("This incident is closed; its record can no longer change.")
        return cleaned
