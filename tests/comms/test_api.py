"""The communications API: posting an update sends it (real SMTP), the updates and the log read
back, a message sent by hand is logged; the same keys, groups and secrecy as the incidents API."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from comms import services
from comms.models import (
    Communication,
    IncidentComms,
    IncidentUpdate,
    Notification,
    Stakeholder,
    StakeholderList,
)
from incidents import services as incident_services
from incidents.models import IncidentRole, Status, TimelineEntry
from integrations.services import create_api_key
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
Role = IncidentRole.Role


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def client_for(*groups: str, username: str) -> APIClient:
    user = UserFactory(username=username, groups=list(groups))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(username, user=user).key}")
    client.user = user
    return client


@pytest.fixture
def rita() -> APIClient:
    """A responder's key; rita commands the incidents below, otto is their technical lead."""
    return client_for("Responder", username="rita")


@pytest.fixture
def otto():
    return UserFactory(username="otto")


def declared(rita, otto, code="P1", **kwargs):
    incident = declare("Checkout is down", code=code, by=rita.user, **kwargs)
    incident_services.assign_role(incident, Role.COMMANDER, rita.user, by=rita.user)
    incident_services.assign_role(incident, Role.TECHNICAL_LEAD, otto, by=rita.user)
    return incident


@pytest.fixture
def incident(rita, otto):
    return declared(rita, otto)


def updates_url(incident) -> str:
    return f"/api/v1/incidents/{incident.public_id}/updates/"


def log_url(incident) -> str:
    return f"/api/v1/incidents/{incident.public_id}/communications/"


def test_posting_an_update_emails_the_responders_and_moves_the_status(
    rita, incident, smtp_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = rita.post(
            updates_url(incident),
            {
                "status": "identified",
                "progress": "A bad deploy of the payment service.",
                "next_steps": "Rolling back.",
                "eta": "13:00 UTC",
                "impact": "No orders",
                "audiences": ["internal"],
            },
            format="json",
        )
    assert deliver_pending() == ["sent", "sent"]

    assert response.status_code == 201, response.json()
    body = response.json()
    update = IncidentUpdate.objects.get(incident=incident)
    assert body == {
        "id": update.pk,
        "posted_at": "2026-03-11T12:00:00Z",
        "kind": "update",
        "status": "identified",
        "progress": "A bad deploy of the payment service.",
        "next_steps": "Rolling back.",
        "eta": "13:00 UTC",
        "impact": "No orders",
        "public_text": "",
        "audiences": ["internal"],
        "author": "rita",
        "sent": {"responders": 2, "webhooks": 0, "stakeholders": 0, "status_page": False},
    }
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "otto@example.com",
        "rita@example.com",
    ]
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "A bad deploy of the payment service." in text and "Rolling back." in text
    assert incident.timeline.filter(
        kind=TimelineEntry.Kind.COMMUNICATION, body="Update sent to 2 responders."
    ).exists()
    # The next update is due an hour (P1) after this one.
    assert IncidentComms.objects.get(incident=incident).next_update_due_at == T0 + timedelta(
        hours=1
    )


def test_the_old_text_field_is_kept_as_progress(rita, incident):
    response = rita.post(updates_url(incident), {"text": "Rolling back", "status": "fixing"})

    assert response.status_code == 201, response.json()
    assert response.json()["progress"] == "Rolling back"
    assert response.json()["status"] == "fixing"
    # Omitted audiences: what P1 calls for at declaration (responders; the status page needs
    # public text, so nothing was posted there).
    assert response.json()["audiences"] == ["internal", "public"]
    assert response.json()["sent"]["status_page"] is False


def test_the_default_audiences_reach_stakeholders_and_the_status_page(
    rita, otto, smtp_server, django_capture_on_commit_callbacks
):
    executives = StakeholderList.objects.create(name="Executives")
    executives.severities.set([severity("P0")])
    Stakeholder.objects.create(stakeholder_list=executives, email="ceo@example.com")
    p0 = declared(rita, otto, code="P0")

    with django_capture_on_commit_callbacks(execute=True):
        response = rita.post(
            updates_url(p0),
            {"progress": "Rolling back.", "public_text": "Checkout is failing for some."},
            format="json",
        )
    deliver_pending()

    assert response.status_code == 201, response.json()
    assert response.json()["audiences"] == ["internal", "stakeholders", "public"]
    assert response.json()["sent"] == {
        "responders": 2,
        "webhooks": 0,
        "stakeholders": 1,
        "status_page": True,
    }
    to_ceo = [m for m in smtp_server.messages if m["To"] == "ceo@example.com"]
    assert len(to_ceo) == 1
    assert "Checkout is failing for some." in to_ceo[0].get_body(("plain",)).get_content()
    assert "Rolling back." not in to_ceo[0].get_body(("plain",)).get_content()


def test_resolving_through_the_updates_endpoint_sends_the_resolution_notice(
    rita, incident, smtp_server, django_capture_on_commit_callbacks, clock
):
    clock.shift(timedelta(minutes=40))
    with django_capture_on_commit_callbacks(execute=True):
        response = rita.post(
            updates_url(incident),
            {"status": "resolved", "progress": "Rolled back; orders flow again."},
            format="json",
        )
    deliver_pending()

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "resolution" and body["status"] == "resolved"
    # P1 is on the status page by default: the runbook's "resolved" words went there.
    assert body["sent"] == {"responders": 2, "webhooks": 0, "stakeholders": 0, "status_page": True}
    assert body["public_text"] and body["audiences"] == ["internal", "public"]
    assert IncidentUpdate.objects.get(incident=incident).public_text == body["public_text"]
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.resolved_at == T0 + timedelta(minutes=40)
    assert len(smtp_server.messages) == 2
    assert all("resolved" in m["Subject"].lower() for m in smtp_server.messages)
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "Rolled back; orders flow again." in text
    # One update: the resolution notice carries the update's words.
    assert IncidentUpdate.objects.filter(incident=incident).count() == 1

    again = rita.post(updates_url(incident), {"status": "resolved", "progress": "x"})
    assert again.status_code == 400 and again.json()["errors"] == {
        "status": [f"{incident.public_id} is resolved already: reopen it to post an update."]
    }


def test_a_viewer_key_reads_but_may_not_post(incident):
    viewer = client_for("Viewer", username="vic")

    assert viewer.get(updates_url(incident)).status_code == 200
    assert viewer.get(log_url(incident)).status_code == 200
    refused = viewer.post(updates_url(incident), {"progress": "x"})
    assert refused.status_code == 403 and "detail" in refused.json()
    assert viewer.post(log_url(incident), {"audience": "internal"}).status_code == 403
    assert not IncidentUpdate.objects.exists()


def test_a_security_incident_is_not_found_for_a_key_not_cleared(rita, otto):
    breach = declare("Tokens leaked", code="P1", by=otto, is_security=True)
    cleared = client_for("Responder", "Security Team", username="sam")

    for url in (updates_url(breach), log_url(breach)):
        assert rita.get(url).status_code == 404
        assert rita.post(url, {"progress": "x"}).json() == {"detail": "Not found."}
        assert cleared.get(url).status_code == 200
    assert not IncidentUpdate.objects.exists()
    assert cleared.post(updates_url(breach), {"progress": "Rotated"}).status_code == 201


def test_no_key_is_a_401(incident):
    assert APIClient().get(updates_url(incident)).status_code == 401


def test_a_bad_audience_names_the_field(rita, incident):
    unknown = rita.post(
        updates_url(incident), {"progress": "x", "audiences": ["everyone"]}, format="json"
    )
    assert unknown.status_code == 400
    assert list(unknown.json()["errors"]) == ["audiences"]

    unwritten = rita.post(
        updates_url(incident), {"progress": "x", "audiences": ["public"]}, format="json"
    )
    assert unwritten.status_code == 400 and list(unwritten.json()["errors"]) == ["public_text"]

    none = rita.post(updates_url(incident), {"progress": "x", "audiences": []}, format="json")
    assert none.status_code == 400 and list(none.json()["errors"]) == ["audiences"]

    # The public hears only about an incident on the status page.
    IncidentComms.objects.filter(incident=incident).update(is_public=False)
    private = rita.post(
        updates_url(incident),
        {"progress": "x", "public_text": "y", "audiences": ["public"]},
        format="json",
    )
    assert private.status_code == 400
    assert private.json()["errors"] == {
        "audiences": ["This incident is not on the status page: make it public first."]
    }
    assert not IncidentUpdate.objects.exists()
    assert not Notification.objects.filter(reason__startswith="update:").exists()


def test_an_empty_update_is_refused(rita, incident):
    response = rita.post(updates_url(incident), {"progress": "   ", "text": ""}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Write what changed: progress, next steps, ETA, impact or public text."
    }
    closed = rita.post(updates_url(incident), {"status": "closed", "progress": "x"})
    assert closed.status_code == 400 and "status" in closed.json()["errors"]
    too_long = rita.post(updates_url(incident), {"eta": "x" * 201})
    assert too_long.status_code == 400 and "eta" in too_long.json()["errors"]
    assert not IncidentUpdate.objects.exists()


def test_the_updates_list_newest_first(rita, incident, clock):
    services.post_update(incident, services.UpdateInput(progress="First"), by=rita.user)
    clock.shift(timedelta(minutes=30))
    services.post_update(incident, services.UpdateInput(progress="Second"), by=rita.user)

    body = rita.get(updates_url(incident)).json()

    assert body["count"] == 2
    assert [u["progress"] for u in body["results"]] == ["Second", "First"]
    assert body["results"][0]["posted_at"] == "2026-03-11T12:30:00Z"
    assert body["results"][0]["author"] == "rita"


def test_the_communication_log_shows_delivery(rita, incident, django_capture_on_commit_callbacks):
    services.post_update(
        incident,
        services.UpdateInput(progress="Rolling back.", audiences=("internal",)),
        by=rita.user,
    )
    email = Communication.objects.get(incident=incident, channel="email")
    first = email.notifications.order_by("pk").first()
    Notification.objects.filter(pk=first.pk).update(state=Notification.State.SENT)

    body = rita.get(log_url(incident)).json()

    assert body["count"] == 1
    [entry] = body["results"]
    assert entry == {
        "id": email.pk,
        "at": "2026-03-11T12:00:00Z",
        "audience": "internal",
        "channel": "email",
        "template": "progress_update",
        "manual": False,
        "subject": email.subject,
        "body": email.body,
        "recipient_count": 2,
        "author": "rita",
        "update": email.update_id,
        "delivery": {"pending": 1, "sent": 1},
    }


def test_the_lists_cost_the_same_queries_at_any_size(rita, incident, clock):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert rita.get(url).status_code == 200
        return len(captured)

    services.post_update(
        incident, services.UpdateInput(progress="One", audiences=("internal",)), by=rita.user
    )
    small = (queries(updates_url(incident)), queries(log_url(incident)))
    for n in range(4):
        clock.shift(timedelta(minutes=10))
        services.post_update(incident, services.UpdateInput(progress=f"More {n}"), by=rita.user)
    assert Communication.objects.filter(incident=incident).count() >= 5

    assert (queries(updates_url(incident)), queries(log_url(incident))) == small


def test_a_message_sent_by_hand_is_logged(rita, incident):
    response = rita.post(
        log_url(incident),
        {
            "audience": "stakeholders",
            "channel": "phone",
            "subject": "Called the CEO",
            "body": "Explained the outage and the ETA.",
            "recipients": ["CEO", "CFO"],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    entry = Communication.objects.get(incident=incident, manual=True)
    assert (entry.audience, entry.channel, entry.recipients, entry.author) == (
        "stakeholders",
        "phone",
        ["CEO", "CFO"],
        rita.user,
    )
    assert response.json()["recipient_count"] == 2
    assert response.json()["delivery"] == {} and response.json()["manual"] is True
    assert incident.timeline.filter(
        kind=TimelineEntry.Kind.COMMUNICATION, data__communication=entry.pk
    ).exists()
    assert rita.get(log_url(incident)).json()["results"][0]["id"] == entry.pk

    webhook = rita.post(
        log_url(incident), {"audience": "internal", "channel": "webhook", "body": "x"}
    )
    blank = rita.post(log_url(incident), {"audience": "internal", "channel": "chat", "body": " "})
    assert webhook.status_code == 400 and list(webhook.json()["errors"]) == ["channel"]
    assert blank.status_code == 400 and list(blank.json()["errors"]) == ["body"]


def test_an_unknown_incident_is_a_json_404(rita):
    missing = rita.get("/api/v1/incidents/INC-20260311-999/updates/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    malformed = rita.get("/api/v1/incidents/nope/updates/")
    assert malformed.status_code == 404 and malformed.json() == {"detail": "Not found."}
