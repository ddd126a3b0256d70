"""What protects ingestion: body size (413), rate per key (429 + Retry-After), malformed bodies
(a 4xx JSON error, never a 500), and exactly one incident under concurrent deliveries."""

import json
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.db import connection, connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from incidents.models import Incident, TimelineEntry
from integrations import ingest, tasks
from integrations.api import MAX_BODY_BYTES
from integrations.models import Alert, AlertFingerprint, Integration, RateWindow
from tests.conftest import wait_for

from . import am_alert, am_payload, event, grafana_payload, make_integration, post_webhook, send

T0 = datetime(2026, 3, 10, 14, 0, 15, tzinfo=UTC)
THREADS = 50


def raw(path: str, body: bytes, **headers):
    return APIClient().post(path, body, content_type="application/json", **headers)


# --- Body size --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_512_kb_is_a_413_and_one_just_under_is_accepted():
    events = make_integration()
    am = make_integration(Integration.Kind.ALERTMANAGER)
    body = event(events.key, dedup_key="big")
    padding = MAX_BODY_BYTES - len(json.dumps(body | {"pad": ""}).encode()) - 200
    fits = body | {"payload": body["payload"] | {"custom_details": {"log": "x" * padding}}}
    assert len(json.dumps(fits).encode()) <= MAX_BODY_BYTES

    accepted = send(fits)
    assert accepted.status_code == 202, accepted.json()
    assert len(Alert.objects.get().custom_details["log"]) == padding

    too_big = json.dumps(body | {"pad": "x" * MAX_BODY_BYTES}).encode()
    for path in ("/api/v1/events/", f"/api/v1/integrations/{am.key}/alertmanager/"):
        response = raw(path, too_big)
        assert response.status_code == 413
        assert "512 KB" in response.json()["detail"]
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_the_size_is_checked_on_the_body_too_not_only_the_header():
    events = make_integration()
    big = json.dumps(event(events.key) | {"pad": "x" * MAX_BODY_BYTES}).encode()
    # A lying Content-Length: Django reads at most what it declares, and that is cut short.
    response = raw("/api/v1/events/", big, CONTENT_LENGTH="100")
    assert response.status_code == 400
    assert Incident.objects.count() == 0


# --- Rate limit -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_over_the_rate_limit_is_a_429_with_retry_after_until_the_next_minute():
    limited = make_integration(rate_limit_per_minute=3)
    other = make_integration(rate_limit_per_minute=3)

    with time_machine.travel(T0, tick=False) as clock:
        for n in range(3):
            assert send(event(limited.key, dedup_key="storm")).status_code == 202, n
        refused = send(event(limited.key, dedup_key="storm"))
        assert refused.status_code == 429
        assert refused["Retry-After"] == "45"  # 14:00:15 -> 14:01:00
        assert f"{limited.name} may send 3 requests a minute" in refused.json()["detail"]
        # Per key: another integration is not held back.
        assert send(event(other.key)).status_code == 202

        clock.shift(timedelta(seconds=44))
        assert send(event(limited.key, dedup_key="storm"))["Retry-After"] == "1"
        clock.shift(timedelta(seconds=1))
        assert send(event(limited.key, dedup_key="storm")).status_code == 202
    assert Alert.objects.get(integration=limited).count == 4
    # Earlier minutes are forgotten as a new one starts.
    assert RateWindow.objects.filter(integration=limited).count() == 1


@pytest.mark.django_db
def test_the_rate_limit_holds_for_webhooks_and_zero_means_none():
    am = make_integration(Integration.Kind.ALERTMANAGER, rate_limit_per_minute=1)
    unlimited = make_integration(rate_limit_per_minute=0)
    body = am_payload([am_alert("a")])
    with time_machine.travel(T0, tick=False):
        assert post_webhook("alertmanager", am.key, body).status_code == 202
        refused = post_webhook("alertmanager", am.key, body)
        assert refused.status_code == 429 and int(refused["Retry-After"]) == 45
        for _ in range(5):
            assert send(event(unlimited.key, dedup_key="d")).status_code == 202


def test_the_default_limit_absorbs_an_alert_storm():
    assert Integration._meta.get_field("rate_limit_per_minute").default == 600


# --- Malformed bodies -------------------------------------------------------------------------

BAD_BODIES = [
    b"",
    b"   ",
    b"{",
    b"[]",
    b"null",
    b"1",
    b'"trigger"',
    b"\xff\xfe\x00garbage",
    b'{"routing_key": "%(key)s", "event_action": "trigger", "payload": NaN}',
    b'{"routing_key": "%(key)s", "event_action": "trigger", "x": Infinity}',
    b'{"routing_key": "%(key)s", "event_action": "trigger", "x": 1e400}',
    b'{"routing_key": "%(key)s", "event_action": "trigger", "x": ' + b"9" * 5000 + b"}",
    b'{"routing_key": "%(key)s", "event_action": "trigger", "x": ' + b"[" * 5000 + b"]" * 5000,
    b'{"routing_key": "%(key)s", "event_action": "trigger", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"routing_key": "%(key)s", "event_action": "trigger", "payload": {"summary": 5,'
    b' "source": "s", "severity": "info"}}',
    b'{"routing_key": "%(key)s", "event_action": "trigger", "dedup_key": 5, "payload": {'
    b'"summary": "s", "source": "s", "severity": "info"}}',
    b'{"routing_key": ["%(key)s"], "event_action": "trigger"}',
    b'{"routing_key": {"k": 1}, "event_action": "trigger"}',
    b'{"routing_key": "%(key)s", "event_action": "trigger", "payload": {"summary": "s",'
    b' "source": "s", "severity": "info", "timestamp": "0001-01-01T00:00:00+01:00"}}',
    b'{"routing_key": "%(key)s", "event_action": ["trigger"], "dedup_key": {"a": 1}}',
]


@pytest.mark.django_db
@pytest.mark.parametrize("template", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_every_malformed_body_is_a_400_json_error(template):
    events = make_integration()
    am = make_integration(Integration.Kind.ALERTMANAGER)
    body = template.replace(b"%(key)s", events.key.encode())
    response = raw("/api/v1/events/", body)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]

    webhook = raw(f"/api/v1/integrations/{am.key}/alertmanager/", body)
    assert webhook.status_code == 400, webhook.content
    assert webhook.json()["detail"]
    assert Incident.objects.count() == 0


@pytest.mark.django_db
def test_text_postgresql_cannot_store_is_replaced_not_refused():
    events = make_integration()
    body = (
        b'{"routing_key": "%s", "event_action": "trigger", "payload": {"summary": "a\\u0000b'
        b'\\ud800c", "source": "s", "severity": "info", "custom_details": {"k\\u0000": "v"}},'
        b' "junk\\u0000": "\\udfff"}' % events.key.encode()
    )
    response = raw("/api/v1/events/", body)
    assert response.status_code == 202, response.content
    alert = Alert.objects.get()
    assert alert.summary == "a\ufffdb\ufffdc" and alert.custom_details == {"k\ufffd": "v"}


@pytest.mark.django_db
def test_a_body_without_content_type_is_read_as_json():
    events = make_integration()
    response = APIClient().generic(
        "POST", "/api/v1/events/", json.dumps(event(events.key)), content_type=""
    )
    assert response.status_code == 202


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
EVENT_FIELDS = ["routing_key", "event_action", "dedup_key", "payload", "links", "images"]
PAYLOAD_FIELDS = ["summary", "source", "severity", "timestamp", "component", "class"]
ALERT_FIELDS = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"]


@pytest.mark.django_db
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    top=st.dictionaries(st.sampled_from(EVENT_FIELDS), json_values, max_size=4),
    payload=st.dictionaries(st.sampled_from(PAYLOAD_FIELDS), json_values, max_size=6),
    alert=st.dictionaries(st.sampled_from(ALERT_FIELDS), json_values, max_size=6),
    anything=json_values,
)
def test_no_body_gives_a_500(top, payload, alert, anything):
    """Valid bodies with fields replaced by arbitrary JSON, and arbitrary JSON bodies."""
    events = Integration.objects.filter(kind="events").first() or make_integration()
    grafana = Integration.objects.filter(kind="grafana").first() or make_integration("grafana")
    trigger = event(events.key, dedup_key="fuzz")
    trigger["payload"].update(payload)
    bodies = [trigger | top, anything]
    webhook = grafana_payload([am_alert("f1") | alert])
    for body in bodies:
        assert send(body).status_code < 500
        assert post_webhook("grafana", grafana.key, body).status_code < 500
    assert post_webhook("grafana", grafana.key, webhook).status_code < 500


# --- Concurrency ------------------------------------------------------------------------------


def run_concurrently(work) -> list:
    """``work(n)`` in THREADS threads released together, each on its own connection."""
    barrier = threading.Barrier(THREADS)
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcome = work(number)
            with lock:
                results.append(outcome)
        except BaseException as exc:  # reported below, with the thread's own traceback
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


# Committed for real, so each thread's request runs in its own PostgreSQL transaction.
@pytest.mark.django_db(transaction=True)
def test_50_concurrent_triggers_with_one_dedup_key_open_exactly_one_incident():
    events = make_integration()

    def trigger(number: int):
        response = send(event(events.key, dedup_key="storm", summary=f"Trigger {number}"))
        return response.status_code, response.json()

    results = run_concurrently(trigger)

    assert {status for status, _ in results} == {202}
    assert sorted(body["result"] for _, body in results) == ["appended"] * 49 + ["opened"]
    assert len({body["incident"] for _, body in results}) == 1
    incident = Incident.objects.get()
    assert Alert.objects.get().count == THREADS
    assert incident.timeline.filter(kind=TimelineEntry.Kind.DECLARED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_50_concurrent_deliveries_of_one_group_open_one_incident_and_record_each_alert_once():
    am = make_integration(Integration.Kind.ALERTMANAGER)
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    # Each delivery carries the alerts fired so far: a growing group, delivered out of order.
    alerts = [am_alert(f"fp{n:02d}", starts=starts) for n in range(THREADS)]

    def deliver(number: int):
        response = post_webhook("alertmanager", am.key, am_payload(alerts[: number + 1]))
        return response.status_code, response.json()

    results = run_concurrently(deliver)

    assert {status for status, _ in results} == {202}
    assert [body["result"] for _, body in results].count("opened") == 1
    assert Incident.objects.count() == 1
    alert = Alert.objects.get()
    assert alert.count == THREADS
    assert AlertFingerprint.objects.filter(alert=alert).count() == THREADS
    # A repeat of the fullest delivery now changes nothing.
    again = post_webhook("alertmanager", am.key, am_payload(alerts))
    assert again.json()["result"] == "unchanged"


@pytest.mark.django_db(transaction=True)
def test_a_trigger_waiting_on_a_busy_alert_holds_up_no_other_key_of_the_integration():
    """The request's count is written last, so the integration's per-minute row is never locked
    while a trigger waits for an alert the locked path holds (an acknowledge, a timeline entry):
    every other key of the integration goes on."""
    events = make_integration()
    send(event(events.key, dedup_key="busy"))
    send(event(events.key, dedup_key="busy"))  # the integration is now remembered
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_pid,) = cursor.fetchone()
    holder = psycopg.connect(**_libpq(connection.settings_dict))
    waiting: list = []
    try:
        holder.execute(
            "SELECT id FROM integrations_alert WHERE dedup_key = 'busy' FOR UPDATE"
        ).fetchone()  # as the locked path holds it while it works

        def busy() -> None:
            try:
                waiting.append(send(event(events.key, dedup_key="busy"), declare=False))
            except BaseException as exc:
                waiting.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=busy)
        thread.start()
        wait_for(lambda: _lock_waiters(own_pid) or waiting, 20, "the busy trigger to wait")
        assert not waiting, waiting

        with connection.cursor() as cursor:  # a stall is an error here, not a hung test
            cursor.execute("SET lock_timeout = '3s'")
        other = send(event(events.key, dedup_key="other"), declare=False)
        assert other.status_code == 202 and other.json()["result"] == "opened"
        assert not waiting  # still waiting for the held alert
    finally:
        holder.commit()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    thread.join(20)
    assert waiting[0].status_code == 202 and waiting[0].json()["result"] == "appended"
    assert RateWindow.objects.get().count == 4


def _libpq(settings_dict: dict) -> dict:
    return {
        "dbname": settings_dict["NAME"],
        "user": settings_dict["USER"],
        "host": settings_dict["HOST"],
        "port": settings_dict["PORT"],
        "password": settings_dict["PASSWORD"] or None,
        "autocommit": False,
    }


def _lock_waiters(own_pid: int) -> int:
    with connection.cursor() as cursor:  # autocommit: a fresh view of the activity each time
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> %s",
            [own_pid],
        )
        (count,) = cursor.fetchone()
    return count


def _in_thread(work, results: dict, name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = work()
        except BaseException as exc:  # reported by the test
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _trigger_data(events: Integration, dedup_key: str, summary: str = "again") -> dict:
    payload = {"summary": summary, "source": "s", "severity": "critical"}
    return {"routing_key": events.key, "event_action": "trigger", "dedup_key": dedup_key,
            "payload": payload}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_trigger_and_an_acknowledge_waiting_on_an_alert_being_declared_do_not_deadlock():
    """The function takes the key's lock before the alert's row, as the locked path does: a
    trigger queued behind the worker and an acknowledge queued behind the trigger both go on."""
    events = make_integration()
    send(event(events.key, dedup_key="K"), declare=False)
    alert = Alert.objects.get(dedup_key="K")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_pid,) = cursor.fetchone()
    declaring, release = threading.Event(), threading.Event()
    results: dict = {}

    def worker():
        with transaction.atomic():
            locked = Alert.objects.select_for_update(of=("self",)).get(pk=alert.pk)
            locked.integration = events
            ingest._declare_alert(locked)
            declaring.set()
            release.wait(20)
        return "declared"

    threads = [_in_thread(worker, results, "worker")]
    assert declaring.wait(20)
    data = _trigger_data(events, "K")
    threads.append(_in_thread(lambda: ingest.trigger(events, data, timezone.now()), results, "t"))
    wait_for(lambda: _lock_waiters(own_pid) >= 1, 20, "the trigger to wait for the alert")
    ack = lambda: ingest.acknowledge(events, "K", timezone.now())  # noqa: E731
    threads.append(_in_thread(ack, results, "ack"))
    wait_for(lambda: _lock_waiters(own_pid) >= 2, 20, "the acknowledge to wait for the key")
    release.set()
    for thread in threads:
        thread.join(30)

    assert results["worker"] == "declared", results
    assert results["t"].action == "appended", results
    assert results["ack"].action == "acknowledged", results
    assert Incident.objects.get().status == "investigating"
    assert Incident.objects.get().acknowledged_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_declaring_task_waits_for_an_alert_a_trigger_holds_for_a_moment():
    events = make_integration()
    send(event(events.key, dedup_key="K"), declare=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (own_pid,) = cursor.fetchone()
    counted, release = threading.Event(), threading.Event()
    results: dict = {}

    def trigger_in_a_longer_transaction():
        with transaction.atomic():
            result = ingest.trigger(events, _trigger_data(events, "K"), timezone.now())
            counted.set()
            release.wait(20)
        return result

    threads = [_in_thread(trigger_in_a_longer_transaction, results, "trigger")]
    assert counted.wait(20)
    threads.append(_in_thread(tasks.declare_alerts, results, "task"))
    wait_for(lambda: _lock_waiters(own_pid) >= 1, 20, "the task to wait for the alert")
    release.set()
    for thread in threads:
        thread.join(30)

    assert results["trigger"].action == "appended", results
    assert results["task"] == {"declared": 1, "waiting": 0}, results
    assert Alert.objects.get().incident is not None
