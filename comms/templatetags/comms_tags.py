"""The communications panel on an incident's page and the overdue list on the admin home."""

from django import template
from django.utils import timezone

from incidents.models import Incident

from .. import cadence, war_room
from ..forms import PublicFaceForm
from ..models import Communication, IncidentComms

register = template.Library()

LOG_SHOWN = 30
OVERDUE_SHOWN = 20


@register.inclusion_tag("admin/comms/comms_panel.html", takes_context=True)
def comms_panel(context, incident):
    request = context["request"]
    now = timezone.now()
    state = IncidentComms.objects.filter(incident=incident).first()
    log = list(
        Communication.objects.filter(incident=incident)
        .with_delivery()
        .select_related("author")
        .order_by("-at", "-pk")[:LOG_SHOWN]
    )
    return {
        "incident": incident,
        "state": state,
        "overdue": cadence.overdue(state, now) if incident.is_open else [],
        "now": now,
        "log": log,
        "participants": war_room.participants(incident)
        if state and state.war_room_opened_at
        else [],
        "can_work": request.user.has_perm("incidents.change_incident")
        and incident.status != "closed",
        "public_form": PublicFaceForm(instance=state) if state else PublicFaceForm(),
    }


@register.inclusion_tag("admin/comms/overdue_panel.html", takes_context=True)
def overdue_comms_panel(context):
    request = context["request"]
    now = timezone.now()
    incidents = list(
        Incident.objects.visible_to(request.user)
        .filter(cadence.overdue_filter(now))
        .select_related("severity", "comms")
        .order_by("severity__rank", "declared_at")[:OVERDUE_SHOWN]
    )
    rows = [(incident, cadence.overdue(incident.comms, now)) for incident in incidents]
    return {"rows": rows, "now": now}
