"""REST API v1 for incidents: keys, permissions, the same services and timeline as the admin."""

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from incidents.models import Incident, Service, TimelineEntry
from integrations.services import create_api_key

from .factories import UserFactory, declare, incident_type, severity

pytestmark = pytest.mark.django_db


def client_for(*groups: str, username: str = "bot") -> APIClient:
    user = UserFactory(username=username, groups=list(groups))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(username, user=user).key}")
    client.user = user
    return client


@pytest.fixture
def responder() -> APIClient:
    severity("P1")
    return client_for("Responder", username="rita")


def test_a_key_declares_works_and_resolves_an_incident(responder):
    Service.objects.create(name="Checkout API")
    created = responder.post(
        "/api/v1/incidents/",
        {
            "title": "Checkout is down",
            "severity": "P1",
            "incident_type": "complete-outage",
            "services": ["Checkout API"],
            "impact_scope": "No orders",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    public_id = body["id"]
    assert public_id.startswith("INC-") and body["services"] == ["Checkout API"]
    assert body["declared_by"] == "rita" and body["status"] == "investigating"

    url = f"/api/v1/incidents/{public_id}/"
    assert responder.post(url + "acknowledge/").json()["acknowledged_by"] == "rita"
    note = responder.post(url + "notes/", {"body": "Pods crash-looping", "kind": "hypothesis"})
    assert note.status_code == 201 and note.json()["note_kind"] == "hypothesis"
    role = responder.post(url + "roles/", {"role": "commander", "user": "rita"})
    assert role.json()["roles"][0]["role"] == "commander"
    # The updates endpoint (comms.api) still takes its first shape: one text and a status.
    update = responder.post(url + "updates/", {"text": "Rolling back", "status": "fixing"})
    assert update.status_code == 201
    assert (update.json()["progress"], update.json()["status"]) == ("Rolling back", "fixing")
    items = responder.get(url + "checklist/").json()
    tick = responder.post(url + "checklist/", {"item": items[0]["id"], "done": True})
    assert tick.json()["done"] is True and tick.json()["done_by"] == "rita"
    resolved = responder.post(url + "resolve/", {"note": "rolled back"})
    assert resolved.json()["status"] == "resolved"

    kinds = [e["kind"] for e in responder.get(url + "timeline/").json()["results"]]
    # The same timeline entries the admin writes, newest first.
    assert kinds[0] == TimelineEntry.Kind.STATUS_CHANGED and "declared" in kinds
    assert "acknowledged" in kinds and "checklist_done" in kinds


def test_bad_input_is_a_4xx_json_error_naming_the_field(responder):
    response = responder.post("/api/v1/incidents/", {"title": "", "severity": "P9"}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"title", "severity"}
    assert "P9" in errors["severity"][0]

    incident = declare(code="P1")
    url = f"/api/v1/incidents/{incident.public_id}/"
    responder.post(url + "acknowledge/")
    again = responder.post(url + "acknowledge/")
    assert again.status_code == 400 and "already acknowledged" in again.json()["detail"]
    bad_status = responder.post(url + "status/", {"status": "sleeping"})
    assert bad_status.status_code == 400 and "status" in bad_status.json()["errors"]
    not_json = responder.post("/api/v1/incidents/", data="{nope", content_type="application/json")
    assert not_json.status_code == 400 and "detail" in not_json.json()


def test_filters_search_and_open(responder):
    a = declare("Checkout is down", code="P1")
    declare("Search is slow", code="P2")
    resolved = declare("Old outage", code="P1")
    responder.post(f"/api/v1/incidents/{resolved.public_id}/resolve/")

    def ids(query: str) -> set[str]:
        return {i["id"] for i in responder.get(f"/api/v1/incidents/?{query}").json()["results"]}

    assert ids("severity=P1") == {a.public_id, resolved.public_id}
    assert resolved.public_id not in ids("open=true")
    assert ids("open=false") == {resolved.public_id}
    assert ids("search=checkout") == {a.public_id}
    assert ids("status=resolved") == {resolved.public_id}
    assert responder.get("/api/v1/incidents/?declared_after=not-a-date").status_code == 400


def test_permissions_follow_the_admin_groups(responder):
    incident = declare(code="P1")
    viewer = client_for("Viewer", username="vic")
    assert viewer.get(f"/api/v1/incidents/{incident.public_id}/").status_code == 200
    assert viewer.post(f"/api/v1/incidents/{incident.public_id}/acknowledge/").status_code == 403
    # Changing severity is the commander's.
    refused = responder.patch(
        f"/api/v1/incidents/{incident.public_id}/", {"severity": "P2"}, format="json"
    )
    assert refused.status_code == 403
    commander = client_for("Incident Commander", username="cmd")
    changed = commander.patch(
        f"/api/v1/incidents/{incident.public_id}/",
        {"severity": "P2", "severity_reason": "fewer users than feared", "title": "Checkout slow"},
        format="json",
    )
    assert changed.status_code == 200
    assert (changed.json()["severity"], changed.json()["title"]) == ("P2", "Checkout slow")


def test_a_security_incident_is_a_404_to_anyone_not_cleared(responder):
    secret = declare("Tokens leaked", code="P1", is_security=True, by=UserFactory())
    assert responder.get(f"/api/v1/incidents/{secret.public_id}/").status_code == 404
    assert secret.public_id not in str(responder.get("/api/v1/incidents/").json())
    cleared = client_for("Responder", "Security Team", username="sam")
    assert cleared.get(f"/api/v1/incidents/{secret.public_id}/").status_code == 200


def test_keys_are_refused_when_unknown_revoked_expired_or_in_the_query_string(responder):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/incidents/").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer nope.nope")
    assert bad.get("/api/v1/incidents/").json()["detail"] == "Unknown API key."
    new = create_api_key("temp", user=UserFactory(username="tmp", groups=["Viewer"]))
    in_url = APIClient().get(f"/api/v1/incidents/?key={new.key}")
    assert in_url.status_code == 401 and "never in the URL" in in_url.json()["detail"]
    new.api_key.revoked = True
    new.api_key.save()
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {new.key}")
    assert revoked.get("/api/v1/incidents/").status_code == 401


def test_create_api_key_prints_the_key_last_and_it_works():
    severity("P1")
    out = StringIO()
    call_command("create_api_key", "deploy-bot", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/incidents/").status_code == 200
    declared = client.post("/api/v1/incidents/", {"title": "Deploy failed", "severity": "P1"})
    assert declared.status_code == 201
    assert Incident.objects.get(public_id=declared.json()["id"]).declared_by.username == (
        "api.deploy-bot"
    )


def test_severity_levels_and_the_schema_are_served(responder):
    codes = [level["code"] for level in responder.get("/api/v1/severity-levels/").json()["results"]]
    assert codes[:4] == ["P0", "P1", "P2", "P3"]
    schema = responder.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/incidents/{public_id}/acknowledge/" in schema.json()["paths"]
    incident_type("complete-outage")


def test_an_unknown_api_path_is_a_json_404(responder):
    for path in ("/api/v1/incidents/not-an-id/", "/api/v1/nothing/", "/api/v2/"):
        response = responder.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
