"""Celery against the real Redis and a real worker process, configured for reliability."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app
from ops.models import Heartbeat
from ops.tasks import record_worker_heartbeat
from tests.conftest import CeleryProcess, wait_for

pytestmark = [pytest.mark.needs_redis, pytest.mark.slow]


def test_a_task_sent_through_redis_is_run_by_a_real_worker(
    transactional_db, celery_worker_process, client
):
    sent_at = timezone.now()

    record_worker_heartbeat.delay()

    beat = wait_for(
        lambda: Heartbeat.objects.filter(source="worker", seen_at__gte=sent_at).first(),
        what="the worker to record its heartbeat",
    )
    assert beat.seen_at - sent_at < timedelta(seconds=20)
    assert "ops.tasks.record_worker_heartbeat" in celery_worker_process.output()
    body = client.get("/api/health").json()
    assert body["checks"]["worker"]["status"] == "ok"


def test_beat_records_its_ticks_so_health_can_see_it(transactional_db, tmp_path, client):
    started_at = timezone.now()
    beat = CeleryProcess("beat", "--pidfile=", log_path=tmp_path / "beat.log")
    try:
        wait_for(
            lambda: (
                Heartbeat.objects.filter(source="beat", seen_at__gte=started_at).exists()
                or beat.proc.poll() is not None
            ),
            what="beat's first tick",
        )
        assert beat.proc.poll() is None, beat.output()
    finally:
        beat.stop()

    body = client.get("/api/health").json()
    assert body["checks"]["beat"]["status"] == "ok"
    # django-celery-beat's scheduler put the heartbeat job in the database, editable in the admin.
    from django_celery_beat.models import PeriodicTask

    job = PeriodicTask.objects.get(name="worker-heartbeat")
    assert job.task == "ops.tasks.record_worker_heartbeat"
    assert job.interval.every == 10


def test_celery_is_configured_for_at_least_once_delivery_of_idempotent_tasks():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.timezone == "UTC"
    assert conf.enable_utc is True
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.beat_scheduler == "ops.beat:HeartbeatDatabaseScheduler"
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > settings.CELERY_MAX_ETA.total_seconds()
    assert conf.task_routes["comms.tasks.send_*"] == {"queue": "notifications"}
