"""Forms of the communications pages in the admin."""

from django import forms

from incidents.models import OPEN_STATUSES, Status

from .models import Audience, Communication, IncidentComms


class UpdateForm(forms.Form):
    status = forms.ChoiceField(
        choices=[(s.value, s.label) for s in Status if s in (*OPEN_STATUSES, Status.RESOLVED)]
    )
    progress = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What we have found and done.",
    )
    next_steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="What we do next."
    )
    eta = forms.CharField(
        label="ETA", max_length=200, required=False, help_text="Expected resolution."
    )
    impact = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Current user impact."
    )
    public_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="For the status page and stakeholders. No internal detail: names, hosts, "
        "customers.",
    )
    audiences = forms.MultipleChoiceField(
        choices=Audience.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    def clean(self):
        data = super().clean()
        audiences = data.get("audiences") or []
        if not audiences:
            raise forms.ValidationError("Choose at least one audience.")
        # A resolution without public text posts the runbook's "resolved" words instead.
        resolving = data.get("status") == Status.RESOLVED
        if (
            Audience.PUBLIC in audiences
            and not resolving
            and not (data.get("public_text") or "").strip()
        ):
            self.add_error("public_text", "The status page shows only the public text: write it.")
        return data


class ManualMessageForm(forms.Form):
    audience = forms.ChoiceField(choices=Audience.choices)
    channel = forms.ChoiceField(
        choices=[
            (c.value, c.label)
            for c in Communication.Channel
            if c not in (Communication.Channel.WEBHOOK, Communication.Channel.STATUS_PAGE)
        ]
    )
    recipients = forms.CharField(
        required=False, max_length=1000, help_text="Who it went to, comma separated."
    )
    subject = forms.CharField(required=False, max_length=300)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="What was said")


class PublicFaceForm(forms.ModelForm):
    class Meta:
        model = IncidentComms
        fields = ["is_public", "public_title", "public_impact"]
