"""Health of the portal's own moving parts: database, broker, worker and beat."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from .models import Heartbeat

log = logging.getLogger(__name__)

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass(frozen=True)
class Check:
    status: str
    figure: dict

    def as_dict(self) -> dict:
        return {"status": self.status, **self.figure}


def record_heartbeat(source: str, *, now: datetime | None = None, detail: str = "") -> None:
    now = now or timezone.now()
    Heartbeat.objects.update_or_create(
        source=source, defaults={"seen_at": now, "detail": detail[:200]}
    )


def check_database() -> Check:
    started = time.perf_counter()
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # The class name tells an operator enough; the message may carry a DSN.
        log.error("health: database unreachable (%s)", type(exc).__name__)
        return Check(DOWN, {"error": "unreachable"})
    return Check(OK, {"latency_ms": round((time.perf_counter() - started) * 1000, 1)})


def check_broker() -> Check:
    from config.celery import app

    started = time.perf_counter()
    transport = "filesystem" if settings.EMBEDDED_BROKER else "redis"
    if settings.EMBEDDED_BROKER:
        queue_dir = settings.BROKER_DIR / "queue"
        if not queue_dir.is_dir():
            return Check(DEGRADED, {"transport": transport, "error": "broker folder missing"})
        return Check(OK, {"transport": transport, "latency_ms": 0.0})
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            conn.default_channel.client.ping()
    except Exception as exc:  # kombu raises transport-specific errors; any of them means down
        log.warning("health: broker unreachable (%s)", type(exc).__name__)
        return Check(DEGRADED, {"transport": transport, "error": "unreachable"})
    return Check(
        OK,
        {"transport": transport, "latency_ms": round((time.perf_counter() - started) * 1000, 1)},
    )


def check_heartbeat(source: str, beats: dict[str, datetime], now: datetime) -> Check:
    seen_at = beats.get(source)
    if seen_at is None:
        return Check(DEGRADED, {"age_seconds": None, "error": "never seen"})
    age = (now - seen_at).total_seconds()
    status = OK if age <= settings.HEARTBEAT_MAX_AGE.total_seconds() else DEGRADED
    return Check(status, {"age_seconds": round(max(age, 0.0), 1), "last_seen_at": seen_at})


def check_stalls(now: datetime) -> Check:
    """Due work the portal itself has not done: escalation steps and notifications overdue by
    more than a minute, alerts answered more than a minute ago whose incident is not declared
    (DESIGN.md principle 8: the watcher watches itself)."""
    from comms.outbox import stalled as unsent
    from escalation.engine import stalled as late_steps
    from integrations.ingest import awaiting_declaration

    steps, notifications = late_steps(now), unsent(now)
    alerts = awaiting_declaration(now)
    figure = {
        "alerts_awaiting_incident": alerts["count"],
        "oldest_alert_at": alerts["oldest_at"],
        "steps_overdue": steps["count"],
        "oldest_step_due_at": steps["oldest_due_at"],
        "notifications_overdue": notifications["count"],
        "oldest_notification_due_at": notifications["oldest_due_at"],
        "notifications_failed_24h": notifications["failed"],
    }
    stalled = steps["count"] or notifications["count"] or alerts["count"]
    return Check(DEGRADED if stalled else OK, figure)


def portal_health(now: datetime | None = None) -> tuple[str, dict[str, Check]]:
    """Overall status and each check: ``down`` only when the database is unreachable."""
    now = now or timezone.now()
    checks = {"database": check_database(), "broker": check_broker()}
    if checks["database"].status == OK:
        beats = dict(Heartbeat.objects.values_list("source", "seen_at"))
    else:
        beats = {}
    for source in (Heartbeat.Source.WORKER, Heartbeat.Source.BEAT):
        if checks["database"].status == OK:
            checks[source] = check_heartbeat(source, beats, now)
        else:
            checks[source] = Check(DEGRADED, {"age_seconds": None, "error": "database down"})
    if checks["database"].status == OK:
        checks["escalation"] = check_stalls(now)
    else:
        checks["escalation"] = Check(DEGRADED, {"error": "database down"})
    if checks["database"].status != OK:
        overall = DOWN
    elif all(check.status == OK for check in checks.values()):
        overall = OK
    else:
        overall = DEGRADED
    return overall, checks
