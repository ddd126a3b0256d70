import json
import socket
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from config.celery import app
from ops.models import Heartbeat
from ops.services import record_heartbeat

pytestmark = pytest.mark.django_db


def _health(client):
    response = client.get("/api/health")
    return response, json.loads(response.content)


@pytest.mark.needs_redis
def test_it_reports_ok_when_every_part_is_alive(client):
    record_heartbeat(Heartbeat.Source.WORKER)
    record_heartbeat(Heartbeat.Source.BEAT)

    response, body = _health(client)

    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker", "beat", "escalation"}
    assert {check["status"] for check in body["checks"].values()} == {"ok"}
    assert body["checks"]["broker"]["transport"] == "redis"
    assert body["checks"]["worker"]["age_seconds"] < 5


@pytest.mark.needs_redis
def test_it_is_degraded_with_the_age_when_the_worker_heartbeat_is_stale(client):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        record_heartbeat(Heartbeat.Source.WORKER)
        record_heartbeat(Heartbeat.Source.BEAT)
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        record_heartbeat(Heartbeat.Source.BEAT)
        response, body = _health(client)

    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["worker"] == {
        "status": "degraded",
        "age_seconds": 120.0,
        "last_seen_at": start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    assert body["checks"]["beat"]["status"] == "ok"


@pytest.mark.needs_redis
def test_it_is_degraded_when_beat_was_never_seen(client):
    record_heartbeat(Heartbeat.Source.WORKER)

    response, body = _health(client)

    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["beat"] == {
        "status": "degraded",
        "age_seconds": None,
        "error": "never seen",
    }


def test_it_is_degraded_not_down_when_the_broker_is_unreachable(client, monkeypatch):
    record_heartbeat(Heartbeat.Source.WORKER)
    record_heartbeat(Heartbeat.Source.BEAT)
    closed = f"redis://127.0.0.1:{_closed_port()}/0"
    monkeypatch.setitem(app.conf, "broker_url", closed)
    monkeypatch.setitem(app.conf, "broker_write_url", closed)  # Celery 5.6 resolves it early
    monkeypatch.setattr("django.conf.settings.EMBEDDED_BROKER", False)

    response, body = _health(client)

    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "degraded"
    assert body["checks"]["broker"]["error"] == "unreachable"
    assert body["checks"]["database"]["status"] == "ok"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_down_without_secrets_when_the_database_is_unreachable(client):
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = str(_closed_port())
    connection.settings_dict["PASSWORD"] = "s3cret-password"
    try:
        response, body = _health(client)
    finally:
        connection.close()
        connection.settings_dict.update(original)

    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["database"] == {"status": "down", "error": "unreachable"}
    text = response.content.decode()
    assert "s3cret-password" not in text
    assert "Traceback" not in text
    assert "postgres" not in text


def test_it_needs_no_login_and_refuses_writes(client):
    assert client.get("/api/health").status_code in (200, 503)
    assert client.post("/api/health").status_code == 405


@pytest.mark.django_db
def test_an_escalation_step_overdue_by_more_than_a_minute_degrades_health(client, admin_client):
    from tests.incidents.factories import declare

    declared = timezone.now() - timedelta(minutes=5)
    with time_machine.travel(declared, tick=False):
        declare("Checkout is down", code="P0")  # its first step is due at once, and no tick ran
    record_heartbeat(Heartbeat.Source.WORKER)
    record_heartbeat(Heartbeat.Source.BEAT)

    response, body = _health(client)

    assert response.status_code == 200
    assert body["status"] == "degraded"
    check = body["checks"]["escalation"]
    assert (check["status"], check["steps_overdue"], check["notifications_overdue"]) == (
        "degraded",
        1,
        0,
    )
    home = admin_client.get("/admin/").content.decode()
    assert "The portal is behind" in home and "1 escalation</strong> overdue" in home
