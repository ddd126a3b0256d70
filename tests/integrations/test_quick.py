"""The fast path of POST /api/v1/events/: the same answers as the serializer it skips, the same
rules, and few statements (docs/benchmarks.md, "Alert ingestion")."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.models import Incident, TimelineEntry
from integrations import ingest
from integrations.api import EventsV2EventSerializer, _clean, quick_trigger
from integrations.models import Alert, Integration

from . import event, make_integration, send

FULL = {
    "routing_key": "k" * 32,
    "event_action": "trigger",
    "dedup_key": "checkout/errors",
    "payload": {
        "summary": "Checkout error rate above 5%",
        "source": "checkout-api.prod",
        "severity": "critical",
        "timestamp": "2026-03-10T13:58:00Z",
        "component": " checkout-api ",
        "group": "payments",
        "class": "error rate",
        "custom_details": {"error_rate": 0.07, "hosts": ["a", "b"]},
    },
    "client": "Prometheus",
    "client_url": "http://prometheus:9090",
    "links": [{"href": "http://runbook", "text": " runbook "}],
    "images": [{"src": "http://graph.png", "href": "http://graph", "alt": "graph"}],
    "unknown": "ignored",
}


def serializer_data(body):
    serializer = EventsV2EventSerializer(data=body)
    return serializer.validated_data if serializer.is_valid() else None


@pytest.mark.parametrize(
    "body",
    [
        FULL,
        event("k" * 32),
        event("k" * 32, dedup_key=""),
        event("k" * 32, dedup_key=None, timestamp=None, custom_details=[1, "x"]),
        {**FULL, "links": [], "images": []},
    ],
)
def test_the_common_triggers_take_the_fast_path_with_the_serializers_answer(body):
    quick = quick_trigger(body)
    assert quick is not None
    assert quick == serializer_data(body)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
near_text = st.sampled_from(["", " ", "  x  ", "x" * 1024, "x" * 1025, "k" * 64, "k" * 65])
near_choice = st.sampled_from(
    [
        "trigger",
        "acknowledge",
        "critical",
        "info",
        "fatal",
        "2026-03-10",
        "2026-03-10T14:00:00+01:00",
    ]
)
# Mostly text, as senders send, so most bodies stay valid and the fast path has to answer.
values = st.text(max_size=8) | near_text | near_choice | json_values
TOP = [*FULL, "payload"]
PAYLOAD = list(FULL["payload"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=st.just({}) | st.dictionaries(st.sampled_from(TOP), values, max_size=2),
    payload=st.just({}) | st.dictionaries(st.sampled_from(PAYLOAD), values, max_size=2),
    dropped=st.lists(st.sampled_from(TOP + [f"payload.{name}" for name in PAYLOAD]), max_size=2),
    link=st.none()
    | st.dictionaries(st.sampled_from(["href", "text", "src", "alt"]), values, max_size=2),
)
def test_the_fast_path_never_answers_other_than_the_serializer(top, payload, dropped, link):
    body = {**FULL, "payload": {**FULL["payload"], **payload}, **top}
    if link is not None and isinstance(body.get("links"), list):
        body["links"] = [*body["links"], link]
    for name in dropped:
        if name.startswith("payload.") and isinstance(body.get("payload"), dict):
            body["payload"].pop(name.removeprefix("payload."), None)
        else:
            body.pop(name, None)
    body = _clean(body)  # as read_json gives every body to both
    quick = quick_trigger(body)
    if quick is not None:  # else the serializer decides, as it always has
        assert quick == serializer_data(body)


# --- Through the endpoint -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_trigger_is_one_statement_and_its_incident_is_declared_after_the_answer(
    django_assert_num_queries,
):
    events = make_integration()
    assert send(event(events.key, dedup_key="warm")).status_code == 202  # reads the key

    # One call counts the request (checking the remembered integration) and appends.
    with django_assert_num_queries(1):
        appended = send(event(events.key, dedup_key="warm"), declare=False)
    assert appended.json()["result"] == "appended"
    with django_assert_num_queries(1):
        appended = send(event(events.key, dedup_key="warm", summary="x"), declare=False)
    assert appended.json()["result"] == "appended"
    assert Alert.objects.get().count == 3 and Alert.objects.get().summary == "x"

    # An opening too: the answer names the incident's id, reserved in the same call...
    with django_assert_num_queries(1):
        opened = send(event(events.key, dedup_key="new"), declare=False).json()
    assert opened["result"] == "opened" and opened["incident"].startswith("INC-")
    alert = Alert.objects.get(dedup_key="new")
    assert (alert.incident, alert.incident_public_id) == (None, opened["incident"])
    assert not Incident.objects.filter(public_id=opened["incident"]).exists()
    # ...and a trigger meanwhile counts on the alert awaiting its incident, with that id.
    with django_assert_num_queries(1):
        again = send(event(events.key, dedup_key="new"), declare=False).json()
    assert (again["result"], again["incident"]) == ("appended", opened["incident"])

    # The worker the request woke declares it, with that id.
    assert ingest.declare_pending() == {"declared": 1, "waiting": 0}
    incident = Incident.objects.get(public_id=opened["incident"])
    alert.refresh_from_db()
    assert alert.incident == incident and alert.count == 2
    assert ingest.declare_pending() == {"declared": 0, "waiting": 0}


@pytest.mark.django_db
def test_a_disabled_or_changed_integration_is_seen_by_the_next_request():
    events = make_integration()
    assert send(event(events.key, dedup_key="a")).status_code == 202
    assert ingest.cached_integration(events.key, Integration.Kind.EVENTS) is not None

    Integration.objects.filter(pk=events.pk).update(severity_map={"critical": "P3"})
    assert send(event(events.key, dedup_key="b")).status_code == 202
    assert Incident.objects.get(alerts__dedup_key="b").severity.code == "P3"

    Integration.objects.filter(pk=events.pk).update(is_active=False)
    refused = send(event(events.key, dedup_key="a"))
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    assert ingest.cached_integration(events.key, Integration.Kind.EVENTS) is None
    Integration.objects.filter(pk=events.pk).update(is_active=True)
    assert send(event(events.key, dedup_key="a")).json()["result"] == "appended"

    Integration.objects.filter(pk=events.pk).delete()
    assert send(event(events.key, dedup_key="a")).status_code == 401


@pytest.mark.django_db
def test_an_unlimited_integration_is_checked_too():
    events = make_integration(rate_limit_per_minute=0)
    assert send(event(events.key, dedup_key="a")).status_code == 202
    Integration.objects.filter(pk=events.pk).update(is_active=False)
    assert send(event(events.key, dedup_key="a")).status_code == 401


@pytest.mark.django_db
def test_over_the_limit_on_the_fast_path_is_counted_once_and_refused():
    events = make_integration(rate_limit_per_minute=2)
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        assert send(event(events.key, dedup_key="a")).status_code == 202
        assert send(event(events.key, dedup_key="a")).status_code == 202
        refused = send(event(events.key, dedup_key="a"))
        assert refused.status_code == 429 and refused["Retry-After"] == "55"
        assert "may send 2 requests a minute" in refused.json()["detail"]
    assert Alert.objects.get().count == 2


@pytest.mark.django_db
def test_the_fast_path_answers_as_drf_does():
    events = make_integration()
    send(event(events.key, dedup_key="a"))
    response = send(event(events.key, dedup_key="a"))
    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "POST, OPTIONS" and response["Vary"] == "Accept"
    assert response.content.startswith(b'{"status":"success","message":"Event processed: added')


@pytest.mark.django_db
def test_a_trigger_is_counted_on_the_alert_but_told_once_a_minute_on_either_path():
    events = make_integration()
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        send(event(events.key, dedup_key="d"))
        for seconds in (10, 30, 59):
            clock.move_to(start + timedelta(seconds=seconds))
            send(event(events.key, dedup_key="d"))
        clock.move_to(start + timedelta(seconds=60))
        send(event(events.key, dedup_key="d", summary="now"))
        clock.move_to(start + timedelta(seconds=61))
        send(event(events.key, dedup_key="d"))
    alert = Alert.objects.get()
    assert (alert.count, alert.unreported) == (6, 1)
    entries = alert.incident.timeline.filter(kind=TimelineEntry.Kind.ALERT).order_by("at")
    assert [entry.data.get("count") for entry in entries] == [1, 5]
    assert "4 more triggers" in entries[1].body
