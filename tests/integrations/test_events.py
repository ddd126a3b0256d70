"""POST /api/v1/events/: the PagerDuty Events API v2 shape, deduplicated into incidents."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.models import (
    DetectionSource,
    Incident,
    Service,
    SeverityLevel,
    Status,
    TimelineEntry,
)
from integrations.ingest import declare_pending
from integrations.models import Alert, Integration
from ops.services import portal_health
from tests.incidents.factories import UserFactory, incident_type, severity

from . import event, listed_alerts, make_integration, send

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def events() -> Integration:
    return make_integration()


def alert_entries(incident: Incident) -> list[TimelineEntry]:
    return list(incident.timeline.filter(kind=TimelineEntry.Kind.ALERT).order_by("at", "pk"))


def test_a_trigger_opens_an_incident_and_says_which(events, clock):
    response = send(
        event(
            events.key,
            dedup_key="checkout/errors",
            component="checkout-api",
            group="payments",
            custom_details={"error_rate": 0.07},
            **{"class": "error rate", "timestamp": "2026-03-10T13:58:00Z"},
        )
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    incident = Incident.objects.get()
    assert body == {
        "status": "success",
        "message": f"Event accepted: opens {incident.public_id}.",
        "dedup_key": "checkout/errors",
        "incident": incident.public_id,
        "result": "opened",
    }
    assert incident.title == "Checkout error rate above 5%"
    assert incident.severity.code == "P0"  # critical, by the default map
    assert incident.detection_source == DetectionSource.MONITORING_ALERT
    assert incident.declared_by == events.acts_as
    assert incident.detected_at == datetime(2026, 3, 10, 13, 58, tzinfo=UTC)
    assert "checkout/errors" in incident.summary

    alert = Alert.objects.get()
    assert (alert.incident, alert.status, alert.count) == (incident, Alert.Status.FIRING, 1)
    assert (alert.component, alert.group, alert.alert_class) == (
        "checkout-api",
        "payments",
        "error rate",
    )
    assert alert.custom_details == {"error_rate": 0.07}
    [entry] = alert_entries(incident)
    assert "critical alert from checkout-api.prod" in entry.body
    assert entry.data["dedup_key"] == "checkout/errors" and entry.author == events.acts_as


def test_repeated_triggers_count_on_the_alert_and_reach_the_timeline_once_a_minute(events, clock):
    first = send(event(events.key, dedup_key="db/disk")).json()
    for _ in range(5):
        clock.shift(timedelta(seconds=5))
        again = send(event(events.key, dedup_key="db/disk", summary="Disk 97% full"))
        assert again.status_code == 202
        assert again.json()["result"] == "appended"
        assert again.json()["incident"] == first["incident"]

    incident = Incident.objects.get()
    alert = Alert.objects.get()
    assert alert.count == 6 and alert.summary == "Disk 97% full"
    assert alert.last_seen_at == T0 + timedelta(seconds=25)
    assert len(alert_entries(incident)) == 1  # the opening entry only, within the minute

    clock.shift(timedelta(seconds=40))  # a minute after the opening entry
    send(event(events.key, dedup_key="db/disk", summary="Disk 98% full"))
    entries = alert_entries(incident)
    assert len(entries) == 2
    assert entries[-1].body.startswith(f"{events.name}: 6 more triggers since 14:00:00 UTC")
    assert "(7 in all)" in entries[-1].body and "Disk 98% full" in entries[-1].body
    assert Incident.objects.count() == 1


def test_a_trigger_without_dedup_key_gets_one_and_each_opens_its_own_incident(events):
    one = send(event(events.key)).json()
    two = send(event(events.key, dedup_key="")).json()

    assert len(one["dedup_key"]) == 32 and one["dedup_key"] != two["dedup_key"]
    assert one["result"] == two["result"] == "opened"
    assert Incident.objects.count() == 2
    # The returned key then acknowledges and resolves.
    assert send(event(events.key, "resolve", one["dedup_key"])).json()["result"] == "resolved"
    assert Incident.objects.get(public_id=one["incident"]).status == Status.RESOLVED


def test_acknowledge_and_resolve_act_on_the_incident_and_are_idempotent(events):
    opened = send(event(events.key, dedup_key="api/5xx")).json()
    incident = Incident.objects.get(public_id=opened["incident"])

    ack = send(event(events.key, "acknowledge", "api/5xx"))
    assert ack.status_code == 202
    assert ack.json()["result"] == "acknowledged"
    incident.refresh_from_db()
    assert incident.acknowledged_by == events.acts_as
    again = send(event(events.key, "acknowledge", "api/5xx")).json()
    assert again["result"] == "unchanged" and again["incident"] == incident.public_id

    # A trigger while acknowledged is still the same problem.
    assert send(event(events.key, dedup_key="api/5xx")).json()["result"] == "appended"
    assert Alert.objects.get().status == Alert.Status.ACKNOWLEDGED

    resolved = send(event(events.key, "resolve", "api/5xx")).json()
    assert resolved["result"] == "resolved" and resolved["incident"] == incident.public_id
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert Alert.objects.get().resolved_at is not None

    again = send(event(events.key, "resolve", "api/5xx"))
    assert again.status_code == 202
    assert again.json()["result"] == "matched_nothing" and again.json()["incident"] is None


def test_acknowledge_or_resolve_of_an_unknown_key_matches_nothing(events):
    for action in ("acknowledge", "resolve"):
        response = send(event(events.key, action, "never-seen"))
        assert response.status_code == 202
        body = response.json()
        assert body["result"] == "matched_nothing" and body["incident"] is None
        assert "matched nothing" in body["message"].lower()
    assert Incident.objects.count() == 0


def test_a_trigger_after_a_resolve_opens_a_new_incident(events):
    first = send(event(events.key, dedup_key="queue/lag")).json()
    send(event(events.key, "resolve", "queue/lag"))
    second = send(event(events.key, dedup_key="queue/lag")).json()

    assert second["result"] == "opened" and second["incident"] != first["incident"]
    assert Alert.objects.filter(dedup_key="queue/lag").count() == 2
    assert Alert.objects.filter(status=Alert.Status.FIRING).count() == 1


def test_an_incident_resolved_in_the_portal_ends_its_alert(events):
    first = send(event(events.key, dedup_key="cache/miss")).json()
    incident = Incident.objects.get(public_id=first["incident"])
    services.resolve_incident(incident, by=UserFactory(), note="fixed by hand")

    second = send(event(events.key, dedup_key="cache/miss")).json()
    assert second["result"] == "opened" and second["incident"] != first["incident"]
    old = Alert.objects.get(incident=incident)
    assert old.status == Alert.Status.RESOLVED and old.resolved_at is not None
    # And a resolve for the ended alert does not touch the old incident.
    assert (
        send(event(events.key, "resolve", "cache/miss")).json()["incident"] == (second["incident"])
    )


def test_acknowledge_after_a_person_acknowledged_is_accepted(events):
    opened = send(event(events.key, dedup_key="search/slow")).json()
    incident = Incident.objects.get(public_id=opened["incident"])
    services.acknowledge_incident(incident, by=UserFactory(username="pat"))

    response = send(event(events.key, "acknowledge", "search/slow"))
    assert response.status_code == 202 and response.json()["result"] == "acknowledged"
    incident.refresh_from_db()
    assert incident.acknowledged_by.username == "pat"
    assert "already acknowledged" in alert_entries(incident)[-1].body


def test_the_integration_maps_severity_and_sets_service_and_type():
    service = Service.objects.create(name="Payments API")
    events = make_integration(
        severity_map={"critical": "P1", "warning": "P3"},
        default_service=service,
        default_type=incident_type("complete-outage"),
    )
    send(event(events.key, dedup_key="a", severity="critical"))
    send(event(events.key, dedup_key="b", severity="warning"))

    a = Incident.objects.get(alerts__dedup_key="a")
    b = Incident.objects.get(alerts__dedup_key="b")
    assert (a.severity.code, b.severity.code) == ("P1", "P3")
    assert list(a.affected_services.all()) == [service]
    assert a.incident_type.slug == "complete-outage"


def test_a_mapped_severity_that_is_missing_falls_back_to_the_least_severe_and_says_so():
    events = make_integration(severity_map={"critical": "P9"})
    SeverityLevel.objects.filter(code="P1").update(is_active=False)

    opened = send(event(events.key, severity="critical")).json()
    incident = Incident.objects.get(public_id=opened["incident"])
    assert incident.severity.code == "P3"
    assert any("declared as P3" in e.body for e in alert_entries(incident))


def test_with_no_active_severity_the_alert_waits_for_one_and_health_says_so(events):
    SeverityLevel.objects.update(is_active=False)

    response = send(event(events.key, dedup_key="db/down"))
    assert response.status_code == 202
    reserved = response.json()["incident"]
    assert Incident.objects.count() == 0 and Alert.objects.get().incident is None
    assert declare_pending() == {"declared": 0, "waiting": 1}
    # Acting on it needs its incident now: the sender is told to retry.
    refused = send(event(events.key, "acknowledge", "db/down"))
    assert refused.status_code == 503 and "severity" in refused.json()["detail"]

    later = timezone.now() + timedelta(minutes=2)
    status, checks = portal_health(later)
    assert status == "degraded"
    assert checks["escalation"].figure["alerts_awaiting_incident"] == 1
    # Triggers meanwhile, even a minute on, count on it and are accepted.
    with time_machine.travel(later, tick=False):
        again = send(event(events.key, dedup_key="db/down"))
    assert again.status_code == 202 and again.json()["incident"] == reserved
    assert Alert.objects.get().count == 2

    SeverityLevel.objects.update(is_active=True)
    assert declare_pending() == {"declared": 1, "waiting": 0}
    incident = Incident.objects.get()
    assert incident.public_id == reserved
    assert portal_health(later)[1]["escalation"].figure["alerts_awaiting_incident"] == 0


def test_the_incident_is_declared_from_the_trigger_that_opened_it(events):
    send(event(events.key, dedup_key="disk", summary="Disk 80% full", severity="warning"),
         declare=False)  # fmt: skip
    send(event(events.key, dedup_key="disk", summary="Disk 95% full", severity="critical"),
         declare=False)  # fmt: skip
    declare_pending()

    incident = Incident.objects.get()
    assert (incident.title, incident.severity.code) == ("Disk 80% full", "P2")
    alert = Alert.objects.get()
    assert alert.count == 2
    assert alert.last_payload["payload"]["summary"] == "Disk 95% full"  # the latest is kept
    # Once declared, triggers update the alert's description as before.
    send(event(events.key, dedup_key="disk", summary="Disk 99% full"))
    alert.refresh_from_db()
    assert alert.summary == "Disk 99% full" and Incident.objects.get().title == "Disk 80% full"


def test_a_trigger_after_a_resolve_in_the_portal_is_answered_before_its_incident(events):
    first = send(event(events.key, dedup_key="db")).json()
    incident = Incident.objects.get(public_id=first["incident"])
    services.resolve_incident(incident, by=UserFactory(), note="fixed")

    again = send(event(events.key, dedup_key="db"), declare=False).json()
    assert again["result"] == "opened" and again["incident"] != first["incident"]
    assert not Incident.objects.filter(public_id=again["incident"]).exists()
    declare_pending()
    assert Incident.objects.get(public_id=again["incident"]).status == Status.INVESTIGATING


def test_a_future_or_ancient_timestamp_is_not_the_detection_time(events, clock):
    send(event(events.key, dedup_key="f", timestamp="2026-03-11T00:00:00Z"))
    send(event(events.key, dedup_key="o", timestamp="2020-01-01T00:00:00Z"))
    assert set(Incident.objects.values_list("detected_at", flat=True)) == {T0}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"payload": {"summary": "x" * 1025}}, "payload.summary"),
        ({"dedup_key": "k" * 256}, "dedup_key"),
        ({"payload": {"severity": "fatal"}}, "payload.severity"),
        ({"payload": {"severity": None}}, "payload.severity"),
        ({"payload": {"source": ""}}, "payload.source"),
        ({"payload": {"timestamp": "yesterday"}}, "payload.timestamp"),
        ({"payload": {"timestamp": "9999-12-31T23:59:59-05:00"}}, None),
        ({"payload": {"component": {"a": 1}}}, "payload.component"),
        ({"payload": "not an object"}, "payload.non_field_errors"),
        ({"event_action": "snooze"}, "event_action"),
        ({"event_action": None}, "event_action"),
        ({"links": "http://x"}, "links.non_field_errors"),
        ({"links": [{"text": "no href"}]}, "links.0.href"),
    ],
)
def test_invalid_fields_are_a_400_naming_the_field(events, change, field):
    body = event(events.key, dedup_key="k")
    for name, value in change.items():
        if name == "payload" and isinstance(value, dict):
            body["payload"].update(value)
        else:
            body[name] = value

    response = send(body)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    if field:
        assert field in errors, errors
    else:
        assert len(errors) == 1
    assert Incident.objects.count() == 0


def test_missing_pieces_are_named():
    events = make_integration()
    no_payload = send({"routing_key": events.key, "event_action": "trigger"})
    assert no_payload.status_code == 400 and "payload" in no_payload.json()["errors"]
    for action in ("acknowledge", "resolve"):
        response = send({"routing_key": events.key, "event_action": action})
        assert response.status_code == 400
        assert list(response.json()["errors"]) == ["dedup_key"]
    # An acknowledge's payload is ignored, as in the original API.
    ack = send(event(events.key, "acknowledge", "x") | {"payload": {"junk": True}})
    assert ack.status_code == 202
    no_key = send({"event_action": "trigger", "payload": {"summary": "s"}})
    assert no_key.status_code == 400
    assert {"routing_key", "payload.source", "payload.severity"} <= set(no_key.json()["errors"])
    number_key = send(event(events.key) | {"routing_key": 12345})
    assert number_key.status_code == 400 and "routing_key" in number_key.json()["errors"]


def test_an_unknown_disabled_or_wrong_kind_key_is_a_401():
    alertmanager = make_integration(Integration.Kind.ALERTMANAGER)
    disabled = make_integration(is_active=False)

    for key, says in [
        ("no-such-key", "No integration has this key."),
        (disabled.key, "disabled"),
        (alertmanager.key, "/alertmanager/"),
    ]:
        response = send(event(key))
        assert response.status_code == 401
        assert says in response.json()["errors"]["routing_key"][0]
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Incident.objects.count() == 0


def test_a_user_session_or_api_key_is_not_needed_nor_enough(events):
    """The routing key is the credential; a logged-in admin without one is refused."""
    client = APIClient()
    client.force_login(UserFactory(is_superuser=True))
    response = send({"event_action": "trigger"}, client)
    assert response.status_code == 400 and "routing_key" in response.json()["errors"]


def test_a_key_printed_by_create_integration_works_as_routing_key():
    make_integration()  # loads the severity scale
    out = StringIO()
    call_command("create_integration", "Datadog", "--kind", "events", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]

    response = send(event(key, dedup_key="dd-1"))
    assert response.status_code == 202 and response.json()["result"] == "opened"
    assert Integration.objects.get(key=key).name == "Datadog"


def test_the_admin_shows_an_alert_awaiting_its_incident_but_not_a_security_one_to_others():
    plain = make_integration()
    secret = make_integration(default_type=incident_type("security-breach"))
    opened = send(event(plain.key, dedup_key="plain/1", summary="Plain"), declare=False).json()
    send(event(secret.key, dedup_key="secret/1", summary="Intrusion"), declare=False)

    page = listed_alerts(UserFactory(username="vera", groups=["Viewer"]))
    assert f"{opened['incident']} (being declared)" in page
    assert "plain/1" in page and "secret/1" not in page
    assert "secret/1" in listed_alerts(
        UserFactory(username="sam", groups=["Viewer", "Security Team"])
    )


def test_an_integration_added_in_the_admin_gets_a_user_of_its_own_unless_one_is_named():
    severity("P1")
    admin_user = UserFactory(username="ada", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(admin_user)
    form = {
        "kind": "events",
        "is_active": "on",
        "severity_map": "{}",
        "rate_limit_per_minute": "600",
    }

    response = client.post("/admin/integrations/integration/add/", {**form, "name": "Datadog"})
    assert response.status_code == 302, response.content.decode()[:2000]
    datadog = Integration.objects.get(name="Datadog")
    assert datadog.acts_as.username == "integration.datadog"
    assert list(datadog.acts_as.groups.values_list("name", flat=True)) == ["Responder"]
    assert not datadog.acts_as.has_usable_password()
    # It works as a routing key at once.
    assert send(event(datadog.key, dedup_key="x")).json()["result"] == "opened"
    assert Incident.objects.get().declared_by == datadog.acts_as

    named = {**form, "name": "Pingdom", "acts_as": str(admin_user.pk)}
    assert client.post("/admin/integrations/integration/add/", named).status_code == 302
    assert Integration.objects.get(name="Pingdom").acts_as == admin_user
