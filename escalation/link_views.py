"""The signed link in a handoff reminder: a GET shows a confirmation page, only its POST acts
(mail scanners open links; DESIGN.md principle 9)."""

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from . import ack_link, handoffs


@require_http_methods(["GET", "POST"])
def acknowledge_handoff(request, token: str):
    try:
        handoff = handoffs.handoff_from_token(token)
    except handoffs.HandoffError as exc:
        return render(request, "escalation/handoff_ack.html", {"error": exc.message}, status=404)
    done = False
    error = None
    if request.method == "POST":
        try:
            handoffs.acknowledge_handoff(handoff, by=handoff.incoming)
            done = True
        except handoffs.HandoffError as exc:
            error = exc.message
        handoff.refresh_from_db()
    context = {"handoff": handoff, "done": done, "error": error}
    return render(request, "escalation/handoff_ack.html", context)


@require_http_methods(["GET", "POST"])
def acknowledge_incident(request, token: str):
    """The acknowledge link of an escalation email: the page shows the incident, the POST acts."""
    try:
        notification = ack_link.notification_from_token(token)
    except ack_link.LinkError as exc:
        return render(request, "escalation/incident_ack.html", {"error": exc.message}, status=404)
    done, error = False, None
    if request.method == "POST":
        try:
            ack_link.acknowledge_from_link(notification)
            done = True
        except ack_link.LinkError as exc:
            error = exc.message
        notification.refresh_from_db()
        notification.incident.refresh_from_db()
    context = {
        "notification": notification,
        "incident": notification.incident,
        "done": done,
        "error": error,
        "refusal": None if done else ack_link.refusal(notification),
    }
    return render(request, "escalation/incident_ack.html", context)
