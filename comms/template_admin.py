"""The runbooks' message templates in the admin: edit, validate, preview, reset.

The shipped text lives in ``comms.defaults``; a row is the admin's copy (``comms.rendering``
explains which one is in force). Editing marks the row customised only when the text differs
from the default, so saving the form unchanged never pins an old default in place.
"""

from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from incidents.models import Incident
from ops.people import display_name

from . import rendering
from .defaults import EMAIL, INTERNAL, PUBLIC, TEMPLATES, TemplateDefault
from .models import IncidentUpdate, MessageTemplate

# --- What a template may use ---------------------------------------------------------------
# Mirrors rendering.internal_context / public_context (tests/comms/test_templates_admin.py
# fails when a variable there is missing here). Each entry: name, meaning, sample value; the
# samples are what an edited template is test-rendered against before it is saved.

_T = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
_SEVERITY = {"code": "P1", "name": "High", "definition": "Major functionality degraded."}
_INCIDENT = {
    "public_id": "INC-20260105-001",
    "title": "Checkout is down",
    "summary": "Payments fail with a 502.",
    "impact_scope": "All customers paying by card.",
    "severity": _SEVERITY,
    "status": "identified",
    "detected_at": _T,
    "declared_at": _T,
    "acknowledged_at": _T + timedelta(minutes=3),
    "resolved_at": None,
    "verification_completed_at": None,
    "is_security": False,
    "is_data_loss": False,
    "users_affected": 1200,
}
_UPDATE = {
    "kind": "update",
    "posted_at": _T + timedelta(minutes=40),
    "status": "identified",
    "progress": "Found an expired certificate on the payment gateway.",
    "next_steps": "Renewing it and restarting the gateway.",
    "eta": "15:00 UTC",
    "impact": "Card payments fail.",
    "public_text": "Card payments are failing; we have found the cause and are fixing it.",
}

VARIABLES: dict[str, list[tuple[str, str, object]]] = {
    INTERNAL: [
        (
            "incident",
            "The incident: public_id, title, summary, impact_scope, detected_at, declared_at, "
            "acknowledged_at, resolved_at, verification_completed_at, is_security, "
            "is_data_loss, users_affected",
            _INCIDENT,
        ),
        ("severity", "Its severity level: code, name, definition", _SEVERITY),
        ("status", "The status in capitals, e.g. INVESTIGATING", "IDENTIFIED"),
        ("now", "When the message is rendered (UTC)", _T + timedelta(minutes=45)),
        ("elapsed", "Time since declaration, in words", "45m"),
        ("impact", 'The impact scope, else the summary, else "Being assessed"', "Card payments"),
        ("assigned_to", 'The incident commander, else "On-call engineer"', "Ada Lovelace"),
        (
            "next_update",
            "When the next internal update is due (a time, or empty)",
            _T + timedelta(hours=1),
        ),
        ("internal_update_every", 'The severity\'s update cadence, e.g. "30 minutes"', "1 hour"),
        ("war_room", "The war room link or channel, once opened", "#incident-2026-01-05-checkout"),
        ("war_room_is_url", "Whether war_room is a web link", False),
        (
            "update",
            "The latest update (or empty): progress, next_steps, eta, impact, public_text, "
            "posted_at, status",
            _UPDATE,
        ),
        ("resolved_at", "When it was resolved (now while it is open)", _T + timedelta(hours=1)),
        ("duration", "From declaration to resolution (or now), in words", "1h"),
        ("root_cause", "The review's primary cause, if written", "Expired TLS certificate."),
        ("review_required", "Whether a post-incident review is required", True),
        ("incident_url", "The incident's page in the portal", "https://portal.example.com/admin/"),
    ],
    PUBLIC: [
        ("title", "The public title (never the internal one)", "Service disruption: Checkout"),
        ("status", "The status in capitals, e.g. INVESTIGATING", "IDENTIFIED"),
        ("services", "The affected status page services, comma separated", "Checkout, Payments"),
        ("public_text", "The latest update's public text", _UPDATE["public_text"]),
        ("now", "When the message is rendered (UTC)", _T + timedelta(minutes=45)),
        ("started_at", "When the incident was declared", _T),
        ("resolved_at", "When it was resolved (now while it is open)", _T + timedelta(hours=1)),
        ("duration", "From start to resolution (or now), in words", "1h"),
        (
            "next_update",
            "When the next stakeholder update is due (a time, or empty)",
            _T + timedelta(hours=2),
        ),
        ("organisation", "The organisation's name (communication settings)", "Example"),
        ("status_page_url", "The public status page", "https://portal.example.com/status/"),
        (
            "unsubscribe_url",
            "The recipient's own unsubscribe link (stakeholder email)",
            "https://portal.example.com/unsubscribe/example/",
        ),
    ],
}

# Variables only some senders pass (the escalation engine's alert email).
EXTRA_VARIABLES: dict[str, list[tuple[str, str, object]]] = {
    "initial_alert": [
        (
            "step",
            "The escalation step that sent it: label, key",
            {"label": "Page on call", "key": "on-call"},
        ),
        ("repetition", "Which repeat of the step (0 the first time)", 0),
        ("role", "The org role the recipient was paged as", "Backend Lead"),
        (
            "ack_url",
            "The recipient's acknowledge link (escalation email only)",
            "https://portal.example.com/incident/acknowledge/example/",
        ),
    ],
}


def variables_for(key: str, shipped: TemplateDefault) -> list[tuple[str, str, object]]:
    return VARIABLES[shipped.context] + EXTRA_VARIABLES.get(key, [])


def sample_context(key: str, shipped: TemplateDefault) -> dict:
    return {name: sample for name, _, sample in variables_for(key, shipped)}


def _lf(text: str) -> str:
    # Browsers post textareas with CRLF; the shipped text and every channel use LF.
    return text.replace("\r\n", "\n")


def render_preview(
    key: str, src: rendering.Source, incident: Incident, *, now: datetime
) -> tuple[rendering.Rendered | None, str | None]:
    """``src`` rendered as template ``key`` against a real incident and its latest update, with
    placeholder links where a real message carries one per recipient. Sends nothing. Returns
    the rendering, or the error an admin-written template raised (shown, never a 500)."""
    update = IncidentUpdate.objects.filter(incident=incident).first()
    extra = {"unsubscribe_url": f"{settings.SITE_URL}/unsubscribe/example/"}
    if key == "initial_alert":
        extra["ack_url"] = f"{settings.SITE_URL}/incident/acknowledge/example/"
    context = rendering.context_for(key, incident, now=now, update=update, **extra)
    try:
        return rendering.render_source(src, context, kind=rendering.default(key).kind), None
    except Exception as exc:  # whatever admin-written code raises
        return None, f"{type(exc).__name__}: {exc}"


# --- The form ------------------------------------------------------------------------------


_CODE = {"rows": 22, "cols": 100, "class": "vLargeTextField", "style": "font-family: monospace;"}


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["subject", "body_text", "body_html"]
        widgets = {
            "subject": forms.TextInput(attrs={"size": 100}),
            "body_text": forms.Textarea(attrs=_CODE),
            "body_html": forms.Textarea(attrs=_CODE),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shipped = TEMPLATES.get(self.instance.key)
        if "subject" in self.fields and self.shipped and self.shipped.kind == EMAIL:
            self.fields["subject"].required = True

    def _compiled(self, name: str) -> str:
        text = _lf(self.cleaned_data.get(name) or "")
        try:
            rendering.check(text)
        except rendering.TemplateSyntaxError as exc:
            raise forms.ValidationError(f"Template syntax error: {exc}") from exc
        return text

    def clean_subject(self):
        return self._compiled("subject")

    def clean_body_text(self):
        return self._compiled("body_text")

    def clean_body_html(self):
        return self._compiled("body_html")

    def clean(self):
        cleaned = super().clean()
        if self.shipped is None:
            return cleaned
        context = sample_context(self.instance.key, self.shipped)
        # Each part alone, so an error lands on the field that has it. Anything a template can
        # raise while rendering (a bad filter argument, {% url %} of nothing, an include of a
        # missing file) would otherwise raise when the message is sent.
        for name in ("subject", "body_text", "body_html"):
            if name not in cleaned or name in self.errors:
                continue
            parts = {"subject": "", "body_text": "", "body_html": ""}
            parts[name] = cleaned[name]
            try:
                rendering.render_source(rendering.Source(**parts), context, kind=self.shipped.kind)
            except Exception as exc:  # whatever admin-written code raises
                self.add_error(name, f"Does not render: {type(exc).__name__}: {exc}")
        return cleaned


def _same_as_shipped(obj: MessageTemplate, shipped: TemplateDefault) -> bool:
    # Trailing whitespace is ignored: form fields strip it, and rendering strips the text.
    return all(
        _lf(getattr(obj, name)).strip() == getattr(shipped, name).strip()
        for name in ("subject", "body_text", "body_html")
    )


# --- The admin -----------------------------------------------------------------------------


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = [
        "name",
        "key",
        "kind",
        "audience_context",
        "customised",
        "updated_at",
        "updated_by",
    ]
    list_display_links = ["name", "key"]
    list_filter = ["customised"]
    list_select_related = ["updated_by"]
    search_fields = ["key", "subject", "body_text"]
    readonly_fields = [
        "name",
        "key",
        "kind",
        "audience_context",
        "source",
        "customised",
        "updated_at",
        "updated_by",
        "variables",
    ]
    change_form_template = "admin/comms/messagetemplate/change_form.html"

    def has_add_permission(self, request):
        return False  # one row per shipped template, made by rendering.ensure_templates

    def has_delete_permission(self, request, obj=None):
        return False  # "reset to default" is how an edit is undone

    def get_fieldsets(self, request, obj=None):
        shipped = TEMPLATES.get(obj.key) if obj else None
        parts = (
            ["body_text"]
            if shipped and shipped.kind != EMAIL
            else ["subject", "body_text", "body_html"]
        )
        return [
            (
                None,
                {
                    "fields": [
                        "name",
                        ("key", "kind", "audience_context"),
                        "source",
                        ("customised", "updated_at", "updated_by"),
                    ]
                },
            ),
            ("Message", {"fields": parts}),
            ("Variables available", {"fields": ["variables"]}),
        ]

    # --- columns and read-only help --------------------------------------------------------

    @admin.display(description="Name")
    def name(self, obj):
        return str(obj)

    @admin.display(description="Kind")
    def kind(self, obj):
        shipped = TEMPLATES.get(obj.key)
        if shipped is None:
            return "-"
        return (
            "Email (subject, text, HTML)" if shipped.kind == EMAIL else "Text (chat, status page)"
        )

    @admin.display(description="Audience context")
    def audience_context(self, obj):
        shipped = TEMPLATES.get(obj.key)
        if shipped is None:
            return "-"
        if shipped.context == PUBLIC:
            return "Public (the incident's public face only)"
        return "Internal (the whole incident)"

    @admin.display(description="Source (runbook section)")
    def source(self, obj):
        shipped = TEMPLATES.get(obj.key)
        return shipped.source if shipped else "No longer shipped."

    @admin.display(description="Variables")
    def variables(self, obj):
        shipped = TEMPLATES.get(obj.key)
        if shipped is None:
            return "-"
        rows = format_html_join(
            "\n",
            "<tr><td><code>{{{{ {} }}}}</code></td><td>{}</td></tr>",
            ((name, meaning) for name, meaning, _ in variables_for(obj.key, shipped)),
        )
        note = (
            "Public templates see no incident object, so they cannot print an internal field."
            if shipped.context == PUBLIC
            else "Django template syntax: {{ incident.title }}, {% if war_room %}...{% endif %}, "
            '{{ next_update|date:"H:i" }}.'
        )
        return format_html(
            '<table class="template-variables">{}</table><p class="help">{}</p>', rows, note
        )

    # --- list ------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        # The rows come from the shipped templates: the list is complete even before
        # `manage.py bootstrap` ran.
        rendering.ensure_templates()
        return super().changelist_view(request, extra_context)

    # --- saving ----------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        shipped = TEMPLATES.get(obj.key)
        if shipped is not None and _same_as_shipped(obj, shipped):
            # Stored as shipped, so the row keeps following the default.
            obj.subject, obj.body_text, obj.body_html = (
                shipped.subject,
                shipped.body_text,
                shipped.body_html,
            )
            obj.customised = False
        else:
            obj.customised = True
        obj.updated_at = timezone.now()
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    # --- reset and preview -----------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/reset/", wrap(self.reset_view), name="comms_messagetemplate_reset"
            ),
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name="comms_messagetemplate_preview",
            ),
            *super().get_urls(),
        ]

    def _template(self, request, object_id) -> MessageTemplate:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such message template.")
        return obj

    def _page(self, request, obj, title: str, **context) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": title,
            "change_url": reverse("admin:comms_messagetemplate_change", args=[obj.pk]),
            **context,
        }

    def reset_view(self, request, object_id):
        """GET asks to confirm, POST puts the shipped text back."""
        obj = self._template(request, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        if obj.key not in TEMPLATES:
            raise Http404("This template is no longer shipped; there is no default to restore.")
        if request.method == "POST":
            rendering.reset(obj.key, by=request.user)
            self.message_user(
                request, f"{obj} is back to the text the portal ships.", messages.SUCCESS
            )
            return HttpResponseRedirect(
                reverse("admin:comms_messagetemplate_change", args=[obj.pk])
            )
        context = self._page(
            request,
            obj,
            f"Reset {obj} to default?",
            edited_by=display_name(obj.updated_by, nobody=""),
        )
        return render(request, "admin/comms/messagetemplate/reset.html", context)

    def preview_view(self, request, object_id):
        """The template rendered against a real incident the user may see.

        GET previews the text in force; a POST from the change form's Preview button previews
        the unsaved text it carries. Nothing is saved either way."""
        obj = self._template(request, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        shipped = TEMPLATES.get(obj.key)
        if shipped is None:
            raise Http404("This template is no longer shipped.")
        data = request.POST if request.method == "POST" else request.GET
        unsaved = request.method == "POST" and "body_text" in request.POST
        if unsaved:
            src = rendering.Source(
                subject=_lf(data.get("subject", "")) if shipped.kind == EMAIL else "",
                body_text=_lf(data.get("body_text", "")),
                body_html=_lf(data.get("body_html", "")) if shipped.kind == EMAIL else "",
            )
        else:
            src = rendering.source(obj.key)

        visible = Incident.objects.visible_to(request.user)
        choices = list(visible.select_related("severity").order_by("-declared_at", "-id")[:50])
        incident = None
        chosen = data.get("incident", "")
        if chosen.isdigit():
            # Any incident the user may see, not only the 50 listed; never one they may not.
            incident = visible.filter(pk=int(chosen)).select_related("severity").first()
        if incident is None and choices:
            incident = choices[0]

        rendered, error = None, None
        if incident is not None:
            rendered, error = render_preview(obj.key, src, incident, now=timezone.now())

        page = self._page(
            request,
            obj,
            f"Preview: {obj}",
            shipped=shipped,
            is_email=shipped.kind == EMAIL,
            src=src,
            unsaved=unsaved,
            incidents=choices,
            incident=incident,
            rendered=rendered,
            error=error,
        )
        return render(request, "admin/comms/messagetemplate/preview.html", page)
