"""Communications follows incidents through the one signal ``incidents`` sends, inside the
service's transaction: the war room, the due times and the resolution notice commit (or roll
back) with the change that caused them."""

from django.dispatch import receiver

from incidents.models import Status
from incidents.signals import incident_changed

from . import cadence, war_room
from .models import IncidentComms
from .services import send_resolution, state_of


@receiver(incident_changed, dispatch_uid="comms.follow")
def _on_incident_changed(sender, *, incident, change, now, by=None, **kwargs) -> None:
    if change == "declared":
        # A new incident has no row yet: plan it and write it once (declaring is the hot path
        # of alert ingestion).
        state = IncidentComms(incident=incident, is_public=cadence.public_by_default(incident))
        cadence.plan(incident, state)
        war_room.open_if_required(incident, state, now=now, save=False)
        state.save()
        return
    if change == "status" and incident.status == Status.RESOLVED:
        send_resolution(incident, by=by, now=now)
        return
    if change not in ("severity", "flags", "status"):
        return  # an acknowledgement or a milestone owes nobody a message
    state = state_of(incident)
    if change != "status":
        if incident.is_security:
            # A security incident is never on the status page, whatever was set before.
            state.is_public = False
        war_room.open_if_required(incident, state, now=now, save=False)
    cadence.plan(incident, state)
    state.save()
