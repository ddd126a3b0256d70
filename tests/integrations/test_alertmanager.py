"""Alertmanager (webhook version 4) and Grafana (version 1) receivers: one incident per alert
group, alerts by fingerprint, resolved when the whole group has resolved, repeats change
nothing."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from incidents import services
from incidents.models import Incident, Status, TimelineEntry
from integrations.models import Alert, AlertFingerprint, Integration
from tests.incidents.factories import UserFactory, incident_type

from . import (
    ago,
    am_alert,
    am_payload,
    event,
    grafana_payload,
    listed_alerts,
    make_integration,
    post_webhook,
    send,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def am() -> Integration:
    return make_integration(Integration.Kind.ALERTMANAGER)


def deliver(integration: Integration, body, **headers):
    return post_webhook(integration.kind, integration.key, body, **headers)


def snapshot() -> tuple:
    """Everything a delivery may change."""
    return (
        list(Incident.objects.values_list("pk", "status", "acknowledged_at").order_by("pk")),
        TimelineEntry.objects.count(),
        list(Alert.objects.values().order_by("pk")),
        list(AlertFingerprint.objects.values().order_by("pk")),
    )


def test_a_firing_group_opens_one_incident(am):
    body = am_payload(
        [am_alert("aaa1", instance="api-1"), am_alert("bbb2", instance="api-2")],
        commonLabels={"alertname": "HighLatency", "severity": "critical"},
    )
    response = deliver(am, body)

    assert response.status_code == 202, response.json()
    result = response.json()
    incident = Incident.objects.get()
    assert result["result"] == "opened" and result["incident"] == incident.public_id
    assert result["dedup_key"] == body["groupKey"]
    assert incident.title == "HighLatency: 2 alerts firing"
    assert incident.severity.code == "P0"
    assert incident.declared_by == am.acts_as
    assert "instance=api-1" in incident.summary and "p99 > 2s" in incident.summary
    alert = Alert.objects.get()
    assert alert.count == 2 and alert.dedup_key == body["groupKey"]
    assert set(alert.fingerprints.values_list("fingerprint", "status")) == {
        ("aaa1", "firing"),
        ("bbb2", "firing"),
    }
    entry = incident.timeline.get(kind=TimelineEntry.Kind.ALERT)
    assert entry.body.startswith("Alertmanager: 2 alerts firing")


def test_a_repeated_delivery_changes_nothing(am):
    body = am_payload([am_alert("aaa1"), am_alert("bbb2")])
    assert deliver(am, body).json()["result"] == "opened"
    before = snapshot()

    for _ in range(3):
        again = deliver(am, body)
        assert again.status_code == 202 and again.json()["result"] == "unchanged"
    assert snapshot() == before


def test_the_incident_resolves_when_every_alert_of_the_group_has_resolved(am):
    a, b = am_alert("aaa1"), am_alert("bbb2")
    opened = deliver(am, am_payload([a, b])).json()

    half = am_payload([{**a, "status": "resolved", "endsAt": ago(0)}, b])
    partly = deliver(am, half).json()
    incident = Incident.objects.get()
    assert partly["result"] == "appended" and incident.status == Status.INVESTIGATING
    assert "1 resolved" in incident.timeline.filter(kind="alert").first().body
    assert "1 of 2 still firing" in incident.timeline.filter(kind="alert").first().body

    every = am_payload([{**a, "status": "resolved", "endsAt": ago(0)}, {**b, "status": "resolved"}])
    done = deliver(am, every).json()
    incident.refresh_from_db()
    assert done["result"] == "resolved" and done["incident"] == opened["incident"]
    assert incident.status == Status.RESOLVED
    assert Alert.objects.get().status == Alert.Status.RESOLVED

    # Retries of any of the three deliveries, in any order, change nothing.
    before = snapshot()
    for body in (every, half, am_payload([a, b])):
        assert deliver(am, body).json()["result"] in ("unchanged", "matched_nothing")
    assert snapshot() == before
    assert Incident.objects.count() == 1


def test_alerts_are_told_apart_by_fingerprint_never_by_summary(am):
    same_words = {"summary": "Disk full", "description": "same text"}
    one = {**am_alert("fp-1"), "annotations": same_words}
    two = {**am_alert("fp-2"), "annotations": same_words}
    deliver(am, am_payload([one]))
    added = deliver(am, am_payload([one, two])).json()
    assert added["result"] == "appended"
    assert Alert.objects.get().count == 2

    # The same fingerprint with other words is the same alert.
    reworded = {**one, "annotations": {"summary": "Disk 99% full"}}
    assert deliver(am, am_payload([reworded, two])).json()["result"] == "unchanged"
    assert AlertFingerprint.objects.count() == 2


def test_a_delivery_cut_at_max_alerts_keeps_the_incident_open_until_one_lists_every_alert(am):
    a = am_alert("aaa1")
    opened = deliver(am, am_payload([a])).json()
    # The one alert listed has resolved, but the group still fires: two more were left out.
    cut = am_payload([{**a, "status": "resolved", "endsAt": ago(0)}], truncatedAlerts=2)
    cut["status"] = "firing"
    assert deliver(am, cut).json()["result"] == "appended"
    incident = Incident.objects.get()
    assert incident.status == Status.INVESTIGATING
    entry = incident.timeline.filter(kind="alert").first()
    assert "2 more not listed" in entry.body and entry.data["unlisted"] == 2
    assert deliver(am, cut).json()["result"] == "unchanged"  # its retry

    # A delivery listing every alert, all resolved: the group is over.
    whole = am_payload([{**a, "status": "resolved", "endsAt": ago(0)}])
    done = deliver(am, whole).json()
    incident.refresh_from_db()
    assert done["result"] == "resolved" and done["incident"] == opened["incident"]
    assert incident.status == Status.RESOLVED
    assert "no longer firing" in incident.timeline.filter(kind="alert").first().body


def test_an_alert_firing_again_after_its_group_resolved_opens_a_new_incident(am):
    a = am_alert("aaa1", starts=ago(30))
    first = deliver(am, am_payload([a])).json()
    deliver(am, am_payload([{**a, "status": "resolved", "endsAt": ago(10)}]))

    again = am_alert("aaa1", starts=ago(2))  # a new firing: a later startsAt
    second = deliver(am, am_payload([again])).json()
    assert second["result"] == "opened" and second["incident"] != first["incident"]
    assert Incident.objects.open().count() == 1


def test_an_alert_firing_again_within_an_open_group_is_counted(am):
    a, b = am_alert("aaa1", starts=ago(30)), am_alert("bbb2", starts=ago(30))
    deliver(am, am_payload([a, b]))
    deliver(am, am_payload([{**a, "status": "resolved"}, b]))
    refired = deliver(am, am_payload([am_alert("aaa1", starts=ago(1)), b])).json()
    assert refired["result"] == "appended"
    alert = Alert.objects.get()
    assert alert.count == 3
    assert alert.fingerprints.filter(status="firing").count() == 2


def test_an_incident_resolved_in_the_portal_is_not_reopened_by_the_same_firing(am):
    """Alertmanager re-sends a firing group every repeat_interval: a person's resolution
    stands until an alert fires anew."""
    a = am_alert("aaa1", starts=ago(30))
    first = deliver(am, am_payload([a])).json()
    incident = Incident.objects.get()
    services.resolve_incident(incident, by=UserFactory(), note="false alarm")

    repeat = deliver(am, am_payload([a])).json()
    assert repeat["result"] == "unchanged" and repeat["incident"] is None
    assert Incident.objects.count() == 1

    other = deliver(am, am_payload([a, am_alert("ccc3")])).json()
    assert other["result"] == "opened" and other["incident"] != first["incident"]
    assert list(Alert.objects.get(status="firing").fingerprints.values_list("fingerprint")) == [
        ("ccc3",)
    ]


def test_a_resolved_group_never_seen_firing_matches_nothing(am):
    body = am_payload([am_alert("zzz9", "resolved")])
    response = deliver(am, body)
    assert response.status_code == 202
    assert response.json()["result"] == "matched_nothing"
    assert Incident.objects.count() == 0


def test_a_long_group_key_is_hashed_into_the_dedup_key(am):
    group_key = "{}:{" + ", ".join(f'label{n}="value-{n}"' for n in range(40)) + "}"
    assert len(group_key) > 255
    first = deliver(am, am_payload([am_alert("aaa1")], group_key)).json()
    second = deliver(am, am_payload([am_alert("bbb2")], group_key)).json()
    assert first["dedup_key"].startswith("sha256:") and len(first["dedup_key"]) == 71
    assert second["result"] == "appended" and second["incident"] == first["incident"]


def test_grafana_uses_the_same_rules_with_its_own_fields():
    grafana = make_integration(Integration.Kind.GRAFANA)
    firing = grafana_payload([am_alert("g1", alertname="HighCPU")], commonLabels={})
    opened = deliver(grafana, firing)
    assert opened.status_code == 202, opened.json()
    incident = Incident.objects.get()
    assert incident.title == "HighCPU on g1"  # the alert's summary annotation
    assert "dashboardURL: http://grafana:3000/d/abc" in incident.summary
    assert "Value: B=97.5" in incident.summary  # Grafana's message
    assert deliver(grafana, firing).json()["result"] == "unchanged"

    resolved = grafana_payload([am_alert("g1", "resolved", alertname="HighCPU")])
    resolved["alerts"][0]["startsAt"] = firing["alerts"][0]["startsAt"]
    assert deliver(grafana, resolved).json()["result"] == "resolved"


def test_each_receiver_reads_its_own_version_and_kind(am):
    grafana = make_integration(Integration.Kind.GRAFANA)
    wrong_version = deliver(am, grafana_payload([am_alert("x")]))
    assert wrong_version.status_code == 400
    assert "/grafana/" in wrong_version.json()["errors"]["version"][0]
    assert deliver(grafana, am_payload([am_alert("x")])).status_code == 400

    wrong_kind = post_webhook("alertmanager", grafana.key, am_payload([am_alert("x")]))
    assert wrong_kind.status_code == 404
    assert "/grafana/" in wrong_kind.json()["detail"]
    assert post_webhook("alertmanager", "no-such-key", am_payload([])).status_code == 404
    assert Incident.objects.count() == 0


def test_the_key_may_come_as_a_bearer_token_instead(am):
    other = make_integration(Integration.Kind.ALERTMANAGER)
    body = am_payload([am_alert("aaa1")])

    ok = post_webhook("alertmanager", "prometheus", body, HTTP_AUTHORIZATION=f"Bearer {am.key}")
    assert ok.status_code == 202 and Alert.objects.get().integration == am

    for authorization, path in [
        ("Bearer no-such-key", am.key),
        (f"Bearer {am.key}", other.key),  # two different integrations named
        (f"Basic {am.key}", "prometheus"),
    ]:
        refused = post_webhook("alertmanager", path, body, HTTP_AUTHORIZATION=authorization)
        assert refused.status_code == 401, authorization
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert "detail" in refused.json()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"alerts": [{"status": "firing"}]}, "alerts.0.fingerprint"),
        ({"alerts": [{**am_alert("x"), "status": "pending"}]}, "alerts.0.status"),
        ({"alerts": [{**am_alert("x"), "startsAt": "soon"}]}, "alerts.0.startsAt"),
        ({"alerts": [{**am_alert("x"), "labels": {"a": {"b": 1}}}]}, "alerts.0.labels.a"),
        ({"alerts": "none"}, "alerts.non_field_errors"),
        ({"groupKey": ""}, "groupKey"),
        ({"version": None}, "version"),
        ({"version": 4}, "version"),
        ({"alerts": [{**am_alert("x"), "fingerprint": 7}]}, "alerts.0.fingerprint"),
        ({"alerts": [{**am_alert("x"), "labels": {"a": 1}}]}, "alerts.0.labels.a"),
        ({"truncatedAlerts": "3"}, "truncatedAlerts"),
        ({"truncatedAlerts": -1}, "truncatedAlerts"),
    ],
)
def test_a_malformed_delivery_is_a_400_naming_the_field(am, change, field):
    response = deliver(am, am_payload([am_alert("aaa1")]) | change)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert Incident.objects.count() == 0


def test_keys_printed_by_create_integration_work_in_the_url_and_as_bearer():
    make_integration()  # loads the severity scale
    keys = {}
    for kind in ("alertmanager", "grafana", "events"):
        out = StringIO()
        call_command("create_integration", f"Monitoring {kind}", "--kind", kind, stdout=out)
        lines = out.getvalue().strip().splitlines()
        assert "Key:" in lines[-2]
        keys[kind] = lines[-1]

    in_url = post_webhook("alertmanager", keys["alertmanager"], am_payload([am_alert("a")]))
    assert in_url.status_code == 202 and in_url.json()["result"] == "opened"
    as_bearer = post_webhook(
        "grafana",
        "grafana",
        grafana_payload([am_alert("g")]),
        HTTP_AUTHORIZATION=f"Bearer {keys['grafana']}",
    )
    assert as_bearer.status_code == 202 and as_bearer.json()["result"] == "opened"
    routing = send(event(keys["events"]))
    assert routing.status_code == 202 and routing.json()["result"] == "opened"
    assert Incident.objects.count() == 3


def test_the_admin_lists_alerts_but_hides_those_of_security_incidents_from_others():
    plain = make_integration(Integration.Kind.ALERTMANAGER)
    secret = make_integration(
        Integration.Kind.ALERTMANAGER, default_type=incident_type("security-breach")
    )
    deliver(plain, am_payload([am_alert("p1")], '{}:{alertname="Plain"}'))
    deliver(secret, am_payload([am_alert("s1")], '{}:{alertname="Intrusion"}'))
    assert Incident.objects.filter(is_security=True).count() == 1

    viewer = UserFactory(username="vera", groups=["Viewer"])
    page = listed_alerts(viewer)
    assert "Plain" in page and "Intrusion" not in page
    security = UserFactory(username="sam", groups=["Viewer", "Security Team"])
    assert "Intrusion" in listed_alerts(security)

    alert = Alert.objects.get(integration=plain)
    client = Client()
    client.force_login(viewer)
    detail = client.get(f"/admin/integrations/alert/{alert.pk}/change/")
    assert detail.status_code == 200 and "p1" in detail.content.decode()
    hidden = Alert.objects.get(integration=secret)
    assert client.get(f"/admin/integrations/alert/{hidden.pk}/change/").status_code == 302


def test_a_severity_map_naming_no_active_level_is_refused_in_the_admin(am):
    am.severity_map = {"critical": "P9"}
    with pytest.raises(ValidationError, match="P9"):
        am.full_clean()
    am.severity_map = ["P0"]
    with pytest.raises(ValidationError, match="alert severity to code"):
        am.full_clean()
    am.severity_map = {"critical": "P1", "page": "P0"}
    am.full_clean()


def test_a_key_no_integration_could_have_is_just_unknown():
    body = am_payload([am_alert("a")])
    assert post_webhook("alertmanager", "%00", body).status_code == 404
    assert post_webhook("alertmanager", "k" * 300, body).status_code == 404
