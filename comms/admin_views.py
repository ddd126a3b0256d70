"""The incident's communications pages in the admin: post an update, log a message sent by
hand, set its public face. Thin shells over ``comms.services``."""

import functools

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from incidents.models import Incident, Status
from incidents.services import IncidentError

from . import services
from .forms import ManualMessageForm, PublicFaceForm, UpdateForm
from .models import Audience

CAN_WORK = "incidents.change_incident"


def _incident(request, pk: int, *, work: bool = True) -> Incident:
    """The incident if the user may see it (else 404, as the incident page does) and, for
    ``work``, may work it (else 403)."""
    incident = (
        Incident.objects.visible_to(request.user).select_related("severity").filter(pk=pk).first()
    )
    if incident is None:
        raise Http404("No such incident.")
    if work and not request.user.has_perm(CAN_WORK):
        raise PermissionDenied
    return incident


def _open_record(view):
    """The view gets the incident, visible and workable; a closed incident is a finished record
    (the panel offers no buttons), so it is sent back with a message."""

    @functools.wraps(view)
    def wrapped(request, pk: int):
        incident = _incident(request, pk)
        if incident.status == Status.CLOSED:
            messages.error(request, f"{incident.public_id} is closed.")
            return _back(incident)
        return view(request, incident)

    return wrapped


def _back(incident: Incident, anchor: str = "communications") -> HttpResponseRedirect:
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    return HttpResponseRedirect(f"{url}#{anchor}")


def _context(request, incident: Incident, title: str, **extra) -> dict:
    from django.contrib import admin

    return {
        **admin.site.each_context(request),
        "title": title,
        "incident": incident,
        "opts": Incident._meta,
        **extra,
    }


@_open_record
def post_update_view(request, incident: Incident):
    now = timezone.now()
    state = services.state_of(incident)
    defaults = services.default_audiences(incident, state, now)
    if request.method == "POST":
        form = UpdateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                update, sent = services.post_update(
                    incident,
                    services.UpdateInput(
                        status=data["status"],
                        progress=data["progress"],
                        next_steps=data["next_steps"],
                        eta=data["eta"],
                        impact=data["impact"],
                        public_text=data["public_text"],
                        audiences=tuple(data["audiences"]),
                    ),
                    by=request.user,
                )
            except IncidentError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                if update.kind == update.Kind.RESOLUTION:
                    messages.success(request, "Resolved: the resolution notice is on its way.")
                else:
                    messages.success(request, f"Update sent to {sent.describe()}.")
                return _back(incident)
    else:
        latest = incident.updates.order_by("-posted_at", "-pk").first()
        form = UpdateForm(
            initial={
                "status": incident.status,
                "impact": latest.impact if latest else incident.impact_scope,
                "eta": latest.eta if latest else "",
                "public_text": services.suggested_public_text(incident, latest, now=now)
                if Audience.PUBLIC in defaults
                else "",
                "audiences": defaults,
            }
        )
    return render(
        request,
        "admin/comms/post_update.html",
        _context(
            request,
            incident,
            f"Post an update: {incident.public_id}",
            form=form,
            state=state,
            defaults=defaults,
            responders=len(services.internal_recipients(incident)),
            stakeholders=services.stakeholder_count(incident),
            is_public=state.is_public and not incident.is_security,
        ),
    )


@_open_record
def log_message_view(request, incident: Incident):
    if request.method == "POST":
        form = ManualMessageForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            recipients = [r.strip() for r in data["recipients"].split(",") if r.strip()]
            try:
                services.log_manual(
                    incident,
                    audience=data["audience"],
                    channel=data["channel"],
                    body=data["body"],
                    subject=data["subject"],
                    recipients=recipients,
                    by=request.user,
                )
            except IncidentError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Logged.")
                return _back(incident)
    else:
        form = ManualMessageForm()
    return render(
        request,
        "admin/comms/log_message.html",
        _context(request, incident, f"Log a message sent by hand: {incident.public_id}", form=form),
    )


@require_POST
@_open_record
def public_face_view(request, incident: Incident):
    state = services.state_of(incident)
    form = PublicFaceForm(request.POST, instance=state)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return _back(incident)
    try:
        services.set_public_face(
            incident,
            is_public=form.cleaned_data["is_public"],
            title=form.cleaned_data["public_title"],
            impact=form.cleaned_data["public_impact"],
            by=request.user,
        )
    except IncidentError as exc:  # a security incident is never public
        messages.error(request, exc.message)
        return _back(incident)
    messages.success(request, "Status page settings saved.")
    return _back(incident)
