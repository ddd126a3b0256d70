"""Alerts in, incidents out: the rules behind ``/api/v1/events/`` and the Alertmanager and
Grafana receivers. Plain functions over data the API has already validated (integrations/api.py).

Deduplication (docs/integrations.md):

* One open ``Alert`` per (integration, dedup key). Work on one key is serialised by a
  PostgreSQL advisory transaction lock (on SQLite, the IMMEDIATE transactions already serialise
  writers); a partial unique index is the backstop, and a loser of that race retries once and
  finds the winner's row. On PostgreSQL an Events API trigger is one call of the function
  ``integrations_trigger`` (``_trigger_call``), which takes the same lock; an opening trigger is
  answered before its incident is declared (``declare_pending``).
* Events API v2: a trigger for an open key is appended to it (count, last seen); acknowledge and
  resolve act on it; once resolved, the next trigger opens a new incident. Repeated triggers are
  the API's way of saying "still happening", so each one counts, but the timeline says so at
  most once a minute per alert ("N more alerts since ..."); the rest is on the Alert row.
* Alertmanager / Grafana: the dedup key is the group key; each alert of the group is one
  ``AlertFingerprint``, identified by fingerprint and, for one firing, by ``startsAt``. A
  delivery changes only what differs from what is stored, so a retried or repeated delivery
  changes nothing. The incident resolves when every alert of the group has resolved.
* An incident resolved or closed in the portal ends its open alert: the next trigger opens a
  new incident (as PagerDuty does). For a group, only a new firing does: the same firing
  re-sent every ``repeat_interval`` does not undo the person's decision.
"""

import functools
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Min
from django.db.models.expressions import RawSQL

from incidents.models import (
    OPEN_STATUSES,
    DetectionSource,
    Incident,
    SeverityLevel,
    TimelineEntry,
)
from incidents.services import (
    IncidentError,
    acknowledge_incident,
    declare_incident,
    next_public_id,
    record_event,
    resolve_incident,
)

from .models import Alert, AlertFingerprint, DeclarationSignal, Integration, RateWindow

log = logging.getLogger(__name__)

# Repeated triggers of one alert write one timeline entry per this much time at most.
REPORT_EVERY = timedelta(minutes=1)
# An alert's own timestamp is trusted as the detection time only this far back (a wrong clock
# or a replayed alert would otherwise distort time-to-detect and time-to-resolve).
MAX_DETECTION_AGE = timedelta(days=7)
TITLE_MAX = 200  # Incident.title
MAX_LISTED = 20  # alerts named in one summary or timeline entry


class Action(StrEnum):
    OPENED = "opened"
    APPENDED = "appended"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    MATCHED_NOTHING = "matched_nothing"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Result:
    action: Action
    dedup_key: str
    incident: str | None  # the incident's public id
    message: str


class IngestUnavailable(Exception):
    """The portal cannot open an incident now (no active severity level, no business calendar
    for a severity that needs one): a configuration problem, so senders should retry."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- Integrations by key -------------------------------------------------------------------

# Every request names its integration by key. Each web process keeps the integrations it has
# read (with the user, service and type an opening needs), so a request does not read them
# again; over_rate_limit(verify=True) checks, in the statement that counts the request, that
# the row is still the version that was read, so a disabled, edited or deleted integration is
# seen by the next request in every process. The related rows are re-read after this long, so
# an edit of the user, the service or the type (not of the integration) reaches openings
# within it (docs/integrations.md).
INTEGRATION_TTL = 10.0  # seconds
_MAX_CACHED = 1000  # keys; a real portal has a few dozen integrations
_cached: dict[str, tuple[float, Integration]] = {}


class StaleIntegration(Exception):
    """The cached integration changed or went away since it was read: read it again."""


@functools.cache
def _version_sql() -> str:
    # A row version without a column for it: xmin (the writing transaction) and ctid (where the
    # version lies) change with every UPDATE; a new version by the same transaction in the same
    # place is as good as impossible. Any difference only costs one more lookup.
    table = connection.ops.quote_name(Integration._meta.db_table)
    return f"{table}.xmin::text || ':' || {table}.ctid::text"


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _plausible_key(key: str) -> bool:
    # A key longer than any key, or with a NUL PostgreSQL cannot compare (a DataError, so a
    # 500), names no integration.
    return len(key) <= Integration._meta.get_field("key").max_length and "\x00" not in key


def cached_integration(key: str, kind: str) -> Integration | None:
    """The active integration of this kind with the key if this process read it within
    INTEGRATION_TTL; not yet checked against the database (over_rate_limit(verify=True) does).
    None: read it with load_integration (refusals are always decided on a fresh read)."""
    entry = _cached.get(key)
    if entry is None:
        return None
    expires, integration = entry
    if expires < time.monotonic():
        _cached.pop(key, None)
        return None
    if integration.kind != kind:
        return None
    return integration


def load_integration(key: str) -> Integration | None:
    """The integration with this key, read now (with what an opening needs); remembered when
    it is active. The caller refuses a missing, disabled or wrong-kind one."""
    if not _plausible_key(key):
        return None
    rows = Integration.objects.select_related("acts_as", "default_service", "default_type")
    if _on_postgresql():
        rows = rows.annotate(row_version=RawSQL(_version_sql(), ()))
    integration = rows.filter(key=key).first()
    if integration is not None and integration.is_active and _on_postgresql():
        if len(_cached) >= _MAX_CACHED:
            _cached.clear()
        _cached[key] = (time.monotonic() + INTEGRATION_TTL, integration)
    else:
        _cached.pop(key, None)
    return integration


def names_another_integration(key: str, integration: Integration) -> bool:
    """Whether the key is another integration's (a webhook URL naming one integration while
    its Authorization header names another)."""
    if key == integration.key or not _plausible_key(key):
        return False
    return Integration.objects.filter(key=key).exclude(pk=integration.pk).exists()


# --- Serialising work on one key -----------------------------------------------------------


def _lock(integration: Integration, dedup_key: str) -> None:
    if _on_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"integrations.alert:{integration.pk}:{dedup_key}"],
            )


def _serialised(integration: Integration, dedup_key: str, work: Callable[[], Result]) -> Result:
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                _lock(integration, dedup_key)
                return work()
        except IntegrityError:
            # Only when the lock was bypassed (another writer without it): the winner's open
            # row is committed now, and the second attempt appends to it.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _open_alert(
    integration: Integration, dedup_key: str, now: datetime, *, declare: bool = True
) -> Alert | None:
    """The key's open alert, locked (under the key's lock). One awaiting its incident is
    declared first unless ``declare`` is false (a trigger only counts on it)."""
    alert = (
        Alert.objects.select_for_update(of=("self",))
        .filter(integration=integration, dedup_key=dedup_key)
        .exclude(status=Alert.Status.RESOLVED)
        .first()
    )
    if alert is None:
        return None
    alert.integration = integration
    if not alert.is_declared:
        if declare:  # answered, its incident not declared yet: what follows acts on it
            _declare_alert(alert)
    elif not alert.incident.is_open:
        # Resolved or closed in the portal: this alert's story is over. No timeline entry (a
        # closed incident's record no longer changes); the row keeps when it ended.
        alert.status = Alert.Status.RESOLVED
        alert.resolved_at = now
        alert.save(update_fields=["status", "resolved_at"])
        return None
    return alert


# --- Opening an incident -------------------------------------------------------------------


def _jsonable(data: dict) -> dict:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _severity(integration: Integration, names: Iterable[str]) -> tuple[SeverityLevel, str]:
    """The most severe active level the sender's severities map to; else the least severe
    active level, with a sentence for the timeline saying so."""
    codes = sorted({integration.severity_code(name) for name in names} or {"P2"})
    level = SeverityLevel.objects.filter(code__in=codes, is_active=True).order_by("rank").first()
    if level is not None:
        return level, ""
    fallback = SeverityLevel.objects.filter(is_active=True).order_by("-rank", "-code").first()
    if fallback is None:
        raise IngestUnavailable(
            "The portal has no active severity level; load one with "
            "`manage.py load_policy default` or in the admin."
        )
    return fallback, (
        f"The severity map gives {', '.join(codes)}, which is not an active severity level: "
        f"declared as {fallback.code} {fallback.name}, the least severe. "
        f"Fix the map of {integration.name} in the admin."
    )


def _detected_at(at: datetime | None, now: datetime) -> datetime | None:
    if at is None or at > now or at < now - MAX_DETECTION_AGE:
        return None
    return at


def _declare(
    integration: Integration,
    *,
    title: str,
    summary: str,
    severities: Iterable[str],
    detected_at: datetime | None,
    now: datetime,
    reserved_id: str | None = None,
) -> Incident:
    severity, fallback = _severity(integration, severities)
    try:
        incident = declare_incident(
            title=_clip(title, TITLE_MAX) or f"Alert from {integration.name}",
            severity=severity,
            by=integration.acts_as,
            summary=summary,
            incident_type=integration.default_type,
            detection_source=DetectionSource.MONITORING_ALERT,
            detected_at=_detected_at(detected_at, now),
            affected_services=[integration.default_service] if integration.default_service else [],
            now=now,
            reserved_id=reserved_id,
        )
    except IncidentError as exc:
        raise IngestUnavailable(exc.message) from exc
    if fallback:
        _timeline(integration, incident, fallback, now, {"severity_fallback": severity.code})
    return incident


def _timeline(integration: Integration, incident: Incident, body: str, now, data: dict) -> None:
    record_event(
        incident, TimelineEntry.Kind.ALERT, body, now=now, data=data, by=integration.acts_as
    )


def _resolve_if_last(integration: Integration, alert: Alert, note: str, now: datetime) -> bool:
    """Resolve the alert's incident unless another alert still holds it open."""
    incident = alert.incident
    others = Alert.objects.filter(incident=incident).exclude(pk=alert.pk)
    if others.exclude(status=Alert.Status.RESOLVED).exists():
        return False
    try:
        resolve_incident(incident, by=integration.acts_as, note=note, now=now)
    except IncidentError as exc:  # a person moved it meanwhile: say so, do not fail the sender
        _timeline(integration, incident, f"{note}; not resolved: {exc.message}", now, {})
        return False
    return True


# --- Events API v2 -------------------------------------------------------------------------


def _repeats(alert: Alert) -> str:
    if not alert.unreported:
        return ""
    plural = "s" if alert.unreported != 1 else ""
    return f"{alert.unreported} more trigger{plural} since {alert.reported_at:%H:%M:%S} UTC"


def _trigger_fields(data: dict, now: datetime) -> tuple[str, dict]:
    """The dedup key (generated when absent, null or empty) and what an alert row keeps of the
    trigger."""
    dedup_key = data.get("dedup_key") or uuid.uuid4().hex
    payload = data["payload"]
    fields = {
        "summary": payload["summary"],
        "source": payload["source"],
        "severity": payload["severity"],
        "component": payload.get("component") or "",
        "group": payload.get("group") or "",
        "alert_class": payload.get("class") or "",
        "custom_details": payload.get("custom_details", {}),
        # The routing key is a secret: not kept where the admin shows the payload. Made
        # JSON-ready (its timestamp is a datetime) where it is stored.
        "last_payload": {k: v for k, v in data.items() if k != "routing_key"},
        "last_seen_at": now,
    }
    return dedup_key, fields


def _facts(alert: Alert) -> dict:
    optional = {"component": alert.component, "group": alert.group, "class": alert.alert_class}
    return {
        "dedup_key": alert.dedup_key,
        "severity": alert.severity,
        "source": alert.source,
        **{name: value for name, value in optional.items() if value},
    }


def _opened(dedup_key: str, public_id: str) -> Result:
    return Result(Action.OPENED, dedup_key, public_id, f"Event accepted: opens {public_id}.")


def trigger(integration: Integration, data: dict, now: datetime) -> Result:
    """``data`` is a validated Events API v2 body, its sender admitted and counted."""
    dedup_key, fields = _trigger_fields(data, now)
    if _on_postgresql():
        action, count, public_id, wake = _trigger_call(integration, data, dedup_key, fields, now)
        if action != "locked":
            return _called(action, dedup_key, count, public_id, wake)
    return _trigger_locked(integration, data, dedup_key, fields, now)


def counted_trigger(integration: Integration, data: dict, now: datetime) -> Result | int:
    """A trigger from an integration this process remembers (cached_integration), counted
    against its rate limit in the same call that stores it: the Result, or the seconds to wait
    when it is over its limit (then nothing else was done). Raises StaleIntegration (nothing
    counted, nothing stored) when the integration changed since it was read."""
    dedup_key, fields = _trigger_fields(data, now)
    action, count, public_id, wake = _trigger_call(
        integration,
        data,
        dedup_key,
        fields,
        now,
        version=integration.row_version,
        limit=integration.rate_limit_per_minute,
    )
    if action == "stale":
        raise StaleIntegration()
    if action == "limited":
        return _seconds_to_next_window(now)
    if action != "locked":
        return _called(action, dedup_key, count, public_id, wake)
    return _trigger_locked(integration, data, dedup_key, fields, now)


def _called(action: str, dedup_key: str, count: int, public_id: str, wake: bool) -> Result:
    if action == "appended":
        return _appended(dedup_key, public_id, count)
    if wake:
        transaction.on_commit(wake_declarations)
    return _opened(dedup_key, public_id)


@functools.cache
def _trigger_sql() -> str:
    casts = [
        "bigint", "text", "integer", "text", "text", "text", "text", "text", "text", "text",
        "jsonb", "jsonb", "timestamptz", "timestamptz",
    ]  # fmt: skip
    arguments = ", ".join(f"%s::{cast}" for cast in casts)
    # Constants of the code (plain words), written into the statement once rather than sent
    # with each call.
    open_statuses = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
    every = f"interval '{int(REPORT_EVERY.total_seconds())} seconds'"
    return (
        "SELECT out_action, out_count, out_incident, out_wake FROM "
        f"integrations_trigger({arguments}, {every}, ARRAY[{open_statuses}]::text[])"
    )


def _trigger_call(
    integration: Integration,
    data: dict,
    dedup_key: str,
    fields: dict,
    now: datetime,
    *,
    version: str | None = None,
    limit: int = 0,
) -> tuple[str, int | None, str | None, bool | None]:
    """The whole of a simple trigger in one round trip and one commit: the PostgreSQL function
    ``integrations_trigger`` (migration 0005) counts it against the rate limit when
    ``version`` is given, then appends it to the key's open alert, or stores a new alert with
    its incident's id reserved, for declare_pending to declare (and says whether a declaring
    task must be asked for: DeclarationSignal). "locked" when the open alert
    needs more than a count (a timeline entry is due, or its incident was resolved in the
    portal): the caller takes the locked path.

    It takes the key's advisory lock first, then the alert's row, in the order the locked
    path takes them (the other order deadlocks with it), so two openings of one key make one
    alert and the day's number is taken only by the one that stores it. An alert awaiting its
    incident keeps its opening trigger's description: the incident is declared from it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _trigger_sql(),
            [
                integration.pk,
                version,
                limit,
                dedup_key,
                *(fields[name] for name in _ALERT_TEXT),
                json.dumps(fields["custom_details"]),
                json.dumps(fields["last_payload"], cls=DjangoJSONEncoder),
                _detected_at(data["payload"].get("timestamp"), now),
                now,
            ],
        )
        return cursor.fetchone()


def _trigger_locked(
    integration: Integration, data: dict, dedup_key: str, fields: dict, now: datetime
) -> Result:
    """A trigger that needs more than a count, under the key's lock; and every trigger where
    the database is not PostgreSQL (there the incident is declared in the request). On
    PostgreSQL a trigger never declares here: a new alert awaits its incident as on the fast
    path, so a policy that cannot declare one now does not refuse the sender."""
    payload = data["payload"]
    fields = {**fields, "last_payload": _jsonable(fields["last_payload"])}

    def work() -> Result:
        alert = _open_alert(integration, dedup_key, now, declare=not _on_postgresql())
        if alert is None:
            alert = Alert(
                integration=integration,
                dedup_key=dedup_key,
                first_seen_at=now,
                reported_at=now,
                detected_at=_detected_at(payload.get("timestamp"), now),
                **fields,
            )
            if _on_postgresql():
                alert.incident_public_id = next_public_id(now)[0]
                alert.save()
                _ask_for_declaration()
            else:
                alert.save()
                _declare_alert(alert)
            return _opened(dedup_key, alert.incident_public_id)
        changed = dict(fields)
        if not alert.is_declared:  # it keeps what its opening trigger said (function 0005)
            changed = {k: v for k, v in fields.items() if k not in _ALERT_TEXT}
        for name, value in changed.items():
            setattr(alert, name, value)
        alert.count += 1
        alert.unreported += 1
        if alert.is_declared and now - alert.reported_at >= REPORT_EVERY:
            _timeline(
                integration,
                alert.incident,
                f"{integration.name}: {_repeats(alert)} ({alert.count} in all); latest: "
                f"{payload['severity']}: {_clip(payload['summary'], 300)}",
                now,
                {**_facts(alert), "alert": alert.pk, "count": alert.count, "new": alert.unreported},
            )
            alert.reported_at, alert.unreported = now, 0
        alert.save(update_fields=[*changed, "count", "unreported", "reported_at"])
        return _appended(dedup_key, alert.incident_public_id, alert.count)

    return _serialised(integration, dedup_key, work)


@functools.cache
def _signal_sql() -> str:
    table = connection.ops.quote_name(DeclarationSignal._meta.db_table)
    return (
        f"INSERT INTO {table} AS d (id, requested) VALUES (1, true) "
        "ON CONFLICT (id) DO UPDATE SET requested = true WHERE NOT d.requested RETURNING 1"
    )


def _ask_for_declaration() -> None:
    """As function 0005 does for the alerts it opens: ask for a declaring task, after the
    commit, unless one is on its way (DeclarationSignal)."""
    with connection.cursor() as cursor:
        cursor.execute(_signal_sql())
        if cursor.fetchone() is not None:
            transaction.on_commit(wake_declarations)


def _appended(dedup_key: str, public_id: str, count: int) -> Result:
    return Result(
        Action.APPENDED,
        dedup_key,
        public_id,
        f"Event processed: added to {public_id} (alert {count}).",
    )


_ALERT_TEXT = ("summary", "source", "severity", "component", "group", "alert_class")


# --- Declaring the incidents of alerts answered before them ---------------------------------


def _declare_alert(alert: Alert) -> Incident:
    """Declare the incident of an Events API alert that has none yet, with the id reserved for
    it (or a new one) and the time it arrived: its SLA clocks and escalation start from when
    the sender was answered, not from when a worker got to it. Inside the caller's transaction,
    with the alert row locked."""
    integration = alert.integration
    described = {
        "summary": alert.summary,
        "source": alert.source,
        "severity": alert.severity,
        "component": alert.component,
        "group": alert.group,
        "class": alert.alert_class,
    }
    now = alert.first_seen_at
    incident = _declare(
        integration,
        title=alert.summary,
        summary=_event_summary(integration, described, alert.dedup_key),
        severities=[alert.severity],
        detected_at=alert.detected_at,
        now=now,
        reserved_id=alert.incident_public_id or None,
    )
    alert.incident, alert.incident_public_id = incident, incident.public_id
    alert.save(update_fields=["incident", "incident_public_id"])
    _timeline(
        integration,
        incident,
        f"{integration.name}: {alert.severity} alert from {alert.source}: "
        f"{_clip(alert.summary, 300)}",
        now,
        {**_facts(alert), "alert": alert.pk, "count": 1},
    )
    return incident


def declare_pending(*, limit: int = 1000) -> dict:
    """Declare the incidents of alerts still awaiting theirs, oldest first, each in its own
    transaction (the Celery task the request wakes, and beat's sweep). Alerts another process
    holds are left to it while others wait, then waited for. One that cannot be declared now
    (no active severity level; a calendar missing) stays and is tried again by the next sweep;
    /api/health counts it after a minute.
    """
    declared, failed = 0, []
    while declared + len(failed) < limit:
        with transaction.atomic():
            waiting = (
                Alert.objects.select_related("integration__acts_as")
                .filter(incident__isnull=True)
                .exclude(pk__in=failed)
                .order_by("first_seen_at", "pk")
            )
            alert = waiting.select_for_update(skip_locked=True, of=("self",)).first()
            if alert is None:
                # Every alert still waiting is held: by another process declaring it, or by
                # a trigger counting on it for a moment, which would not ask again. Wait for
                # the oldest (this process holds nothing); one declared meanwhile drops out.
                alert = waiting.select_for_update(of=("self",)).first()
            if alert is None:
                break
            try:
                with transaction.atomic():
                    _declare_alert(alert)
            except IngestUnavailable as exc:
                log.error("alert %s (%s) awaits its incident: %s", alert.pk, alert, exc.message)
                failed.append(alert.pk)
                continue
            except Exception:
                # Whatever it is, it must not hold up the alerts behind this one.
                log.exception("alert %s (%s) could not be declared", alert.pk, alert)
                failed.append(alert.pk)
                continue
        declared += 1
    return {"declared": declared, "waiting": len(failed)}


def awaiting_declaration(now: datetime, older_than: timedelta = timedelta(minutes=1)) -> dict:
    """Alerts answered more than ``older_than`` ago whose incident is not declared yet."""
    return Alert.objects.filter(
        incident__isnull=True, first_seen_at__lt=now - older_than
    ).aggregate(count=Count("pk"), oldest_at=Min("first_seen_at"))


def wake_declarations() -> None:
    """Ask a worker to declare what awaits its incident (once per DeclarationSignal)."""
    from .tasks import declare_alerts

    try:
        declare_alerts.apply_async(retry=False)
    except Exception as exc:  # kombu raises transport-specific errors; beat's sweep catches up
        log.warning("broker unreachable (%s): the sweep declares the incident", type(exc).__name__)


def declarations_woken() -> None:
    """Called by the declaring task before it looks for alerts: an opening after this asks
    for another task. Waits for the openings in flight (they hold the row), so it then sees
    their alerts."""
    DeclarationSignal.objects.update(requested=False)


def _event_summary(integration: Integration, payload: dict, dedup_key: str) -> str:
    lines = [
        payload["summary"],
        "",
        f"Opened by {integration.name} (Events API v2), dedup key {dedup_key}.",
        f"Source: {payload['source']}; severity: {payload['severity']}.",
    ]
    for name in ("component", "group", "class"):
        if payload.get(name):
            lines.append(f"{name.capitalize()}: {payload[name]}")
    return "\n".join(lines)


def _nothing(dedup_key: str, verb: str) -> Result:
    return Result(
        Action.MATCHED_NOTHING,
        dedup_key,
        None,
        f"Matched nothing: no open alert has this dedup key, so there is nothing to {verb}.",
    )


def acknowledge(integration: Integration, dedup_key: str, now: datetime) -> Result:
    def work() -> Result:
        alert = _open_alert(integration, dedup_key, now)
        if alert is None:
            return _nothing(dedup_key, "acknowledge")
        incident = alert.incident
        if alert.status == Alert.Status.ACKNOWLEDGED:
            return Result(Action.UNCHANGED, dedup_key, incident.public_id, "Already acknowledged.")
        alert.status, alert.acknowledged_at = Alert.Status.ACKNOWLEDGED, now
        notes = [_repeats(alert)] if alert.unreported else []
        alert.reported_at, alert.unreported = now, 0
        alert.save(update_fields=["status", "acknowledged_at", "reported_at", "unreported"])
        try:
            acknowledge_incident(incident, by=integration.acts_as, now=now)
        except IncidentError:
            # A person acknowledged first: acknowledging is idempotent for a sender.
            notes.append(f"{incident.public_id} was already acknowledged")
        if notes:
            _timeline(
                integration,
                incident,
                f"{integration.name} acknowledged {dedup_key}: {'; '.join(notes)}",
                now,
                {"dedup_key": dedup_key, "alert": alert.pk, "count": alert.count},
            )
        return Result(
            Action.ACKNOWLEDGED, dedup_key, incident.public_id, "Event processed: acknowledged."
        )

    return _serialised(integration, dedup_key, work)


def resolve(integration: Integration, dedup_key: str, now: datetime) -> Result:
    def work() -> Result:
        alert = _open_alert(integration, dedup_key, now)
        if alert is None:
            return _nothing(dedup_key, "resolve")
        repeats = _repeats(alert)
        alert.status, alert.resolved_at = Alert.Status.RESOLVED, now
        alert.reported_at, alert.unreported = now, 0
        alert.save(update_fields=["status", "resolved_at", "reported_at", "unreported"])
        note = f"{integration.name} resolved {dedup_key}" + (f" ({repeats})" if repeats else "")
        if not _resolve_if_last(integration, alert, note, now):
            _timeline(
                integration,
                alert.incident,
                note + "; other alerts keep the incident open",
                now,
                {"dedup_key": dedup_key, "alert": alert.pk},
            )
        return Result(
            Action.RESOLVED, dedup_key, alert.incident.public_id, "Event processed: resolved."
        )

    return _serialised(integration, dedup_key, work)


# --- Alertmanager and Grafana --------------------------------------------------------------

FIRING, RESOLVED = AlertFingerprint.Status.FIRING, AlertFingerprint.Status.RESOLVED


def group_dedup_key(group_key: str) -> str:
    """The group key, hashed when longer than a dedup key may be (it lists every grouping
    label, so it can be)."""
    if len(group_key) <= 255:
        return group_key
    return "sha256:" + hashlib.sha256(group_key.encode()).hexdigest()


def _latest_by_fingerprint(alerts: Iterable[dict]) -> dict[str, dict]:
    """One entry per fingerprint: the latest firing; for the same one, resolved wins."""
    latest: dict[str, dict] = {}
    for alert in alerts:
        seen = latest.get(alert["fingerprint"])
        rank = (alert["startsAt"], alert["status"] == RESOLVED)
        if seen is None or rank > (seen["startsAt"], seen["status"] == RESOLVED):
            latest[alert["fingerprint"]] = alert
    return latest


def _ends_at(alert: dict) -> datetime | None:
    ends = alert.get("endsAt")
    # Alertmanager and Grafana send 0001-01-01T00:00:00Z for "not ended".
    return ends if ends is not None and ends.year > 1 else None


def _describe(alert: dict) -> str:
    labels = alert.get("labels") or {}
    name = labels.get("alertname", alert["fingerprint"])
    where = ", ".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    return f"{name} ({where})" if where else name


def _listed(alerts: list[dict]) -> str:
    names = [_describe(a) for a in alerts[:MAX_LISTED]]
    if len(alerts) > MAX_LISTED:
        names.append(f"and {len(alerts) - MAX_LISTED} more")
    return "; ".join(names)


def _group_title(payload: dict, firing: list[dict], sender: str, integration) -> str:
    common_annotations = payload.get("commonAnnotations") or {}
    if common_annotations.get("summary"):
        return common_annotations["summary"]
    if len(firing) == 1 and (firing[0].get("annotations") or {}).get("summary"):
        return firing[0]["annotations"]["summary"]
    labels = {**(payload.get("groupLabels") or {}), **(payload.get("commonLabels") or {})}
    name = labels.get("alertname")
    if name:
        count = f": {len(firing)} alerts firing" if len(firing) > 1 else ""
        return name + count
    if payload.get("title"):  # Grafana's "[FIRING:2] ..." line
        return payload["title"]
    return f"{sender} alert from {integration.name}: {_listed(firing)}"


def _group_summary(integration, payload: dict, firing: list[dict], sender: str) -> str:
    lines = [f"Opened by {integration.name} ({sender}) for the alert group {payload['groupKey']}."]
    if payload.get("message"):  # Grafana's rendered notification text
        lines += ["", payload["message"]]
    lines.append("")
    for alert in firing[:MAX_LISTED]:
        annotations = alert.get("annotations") or {}
        text = annotations.get("description") or annotations.get("summary") or ""
        lines.append(f"- {_describe(alert)}" + (f": {text}" if text else ""))
        for url in ("generatorURL", "dashboardURL", "panelURL"):
            if alert.get(url):
                lines.append(f"  {url}: {alert[url]}")
    if len(firing) > MAX_LISTED:
        lines.append(f"- and {len(firing) - MAX_LISTED} more")
    if payload.get("externalURL"):
        lines += ["", f"{sender}: {payload['externalURL']}"]
    return "\n".join(lines)


def _fingerprint_row(alert: Alert, incoming: dict) -> AlertFingerprint:
    return AlertFingerprint(
        alert=alert,
        fingerprint=incoming["fingerprint"],
        status=incoming["status"],
        labels=incoming.get("labels") or {},
        annotations=incoming.get("annotations") or {},
        starts_at=incoming["startsAt"],
        ends_at=_ends_at(incoming),
    )


def _already_seen(integration, dedup_key: str, firing: list[dict]) -> set[str]:
    """Fingerprints whose firing (same or later ``startsAt``) an earlier, ended alert of this
    group already recorded: a late retry or a repeat, not a new problem."""
    latest = dict(
        AlertFingerprint.objects.filter(
            alert__integration=integration,
            alert__dedup_key=dedup_key,
            fingerprint__in=[a["fingerprint"] for a in firing],
        )
        .values("fingerprint")
        .annotate(latest=Max("starts_at"))
        .values_list("fingerprint", "latest")
    )
    return {
        a["fingerprint"]
        for a in firing
        if a["fingerprint"] in latest and a["startsAt"] <= latest[a["fingerprint"]]
    }


def alertmanager(
    integration: Integration, payload: dict, now: datetime, *, sender: str = "Alertmanager"
) -> Result:
    """A validated Alertmanager (version 4) or Grafana (version 1) webhook body."""
    dedup_key = group_dedup_key(payload["groupKey"])
    incoming = _latest_by_fingerprint(payload["alerts"])
    # The group's alerts are kept as fingerprint rows; the rest of the delivery as sent.
    compact = _jsonable({k: v for k, v in payload.items() if k != "alerts"})
    compact["alerts"] = len(incoming)

    def work() -> Result:
        alert = _open_alert(integration, dedup_key, now)
        if alert is None:
            return _open_group(integration, dedup_key, payload, incoming, compact, now, sender)
        return _update_group(integration, alert, incoming, compact, now, sender)

    return _serialised(integration, dedup_key, work)


def _open_group(integration, dedup_key, payload, incoming, compact, now, sender) -> Result:
    firing = [a for a in incoming.values() if a["status"] == FIRING]
    seen = _already_seen(integration, dedup_key, firing)
    fresh = [a for a in firing if a["fingerprint"] not in seen]
    if not fresh:
        if firing:
            return Result(
                Action.UNCHANGED,
                dedup_key,
                None,
                "Unchanged: these firings were already received for an earlier incident.",
            )
        return Result(
            Action.MATCHED_NOTHING,
            dedup_key,
            None,
            "Matched nothing: no alert of this group is firing and no incident is open for it.",
        )
    common = payload.get("commonLabels") or {}
    severities = (
        [common["severity"]]
        if common.get("severity")
        else [(a.get("labels") or {}).get("severity", "") for a in fresh]
    )
    incident = _declare(
        integration,
        title=_group_title(payload, fresh, sender, integration),
        summary=_group_summary(integration, payload, fresh, sender),
        severities=severities,
        detected_at=min(a["startsAt"] for a in fresh),
        now=now,
    )
    alert = Alert.objects.create(
        integration=integration,
        dedup_key=dedup_key,
        incident=incident,
        incident_public_id=incident.public_id,
        summary=incident.title,
        source=payload.get("externalURL") or sender,
        severity=common.get("severity", "")[: Alert._meta.get_field("severity").max_length],
        group=", ".join(f"{k}={v}" for k, v in sorted((payload.get("groupLabels") or {}).items())),
        count=len(fresh),
        first_seen_at=now,
        last_seen_at=now,
        reported_at=now,
        last_payload=compact,
    )
    AlertFingerprint.objects.bulk_create([_fingerprint_row(alert, a) for a in fresh])
    _timeline(
        integration,
        incident,
        f"{sender}: {len(fresh)} alert{'s' if len(fresh) != 1 else ''} firing: {_listed(fresh)}",
        now,
        {
            "dedup_key": dedup_key,
            "alert": alert.pk,
            "firing": [a["fingerprint"] for a in fresh[:MAX_LISTED]],
            "still_firing": len(fresh),
        },
    )
    return Result(Action.OPENED, dedup_key, incident.public_id, "Alerts processed.")


def _unlisted(compact: dict) -> int:
    """Alerts of a firing group that the delivery left out (Alertmanager's ``max_alerts``
    counts them in ``truncatedAlerts``): they may still be firing, so the group is not over."""
    if compact.get("status") != FIRING:
        return 0
    return int(compact.get("truncatedAlerts") or 0)


def _update_group(integration, alert: Alert, incoming, compact, now, sender) -> Result:
    rows = {row.fingerprint: row for row in alert.fingerprints.all()}
    unknown = [a for f, a in incoming.items() if f not in rows and a["status"] == FIRING]
    stale = _already_seen(integration, alert.dedup_key, unknown)
    fired: list[dict] = []
    resolved: list[dict] = []
    new_rows: list[AlertFingerprint] = []
    changed: list[AlertFingerprint] = []
    for fingerprint, item in incoming.items():
        row = rows.get(fingerprint)
        if row is None:
            # An alert never seen firing that arrives resolved, or a late retry of a firing
            # an earlier incident of the group recorded, is ignored (so is its repeat).
            if item["status"] == FIRING and fingerprint not in stale:
                new_rows.append(_fingerprint_row(alert, item))
                fired.append(item)
            continue
        if item["startsAt"] > row.starts_at:
            # A new firing of the same alert. Fired and resolved between two deliveries of
            # an alert already resolved here: nothing to tell, and its repeat stays silent.
            if item["status"] == FIRING or row.status == FIRING:
                row.status, row.starts_at, row.ends_at = (
                    item["status"],
                    item["startsAt"],
                    _ends_at(item),
                )
                row.labels = item.get("labels") or {}
                row.annotations = item.get("annotations") or {}
                changed.append(row)
                (fired if item["status"] == FIRING else resolved).append(item)
        elif (
            item["startsAt"] == row.starts_at
            and row.status == FIRING
            and item["status"] == RESOLVED
        ):
            row.status, row.ends_at = RESOLVED, _ends_at(item) or now
            changed.append(row)
            resolved.append(item)
        # Anything else is a repeat or a late retry of what is stored: nothing changes.
    incident = alert.incident
    unlisted = _unlisted(compact)
    # Nothing new, and no alert resolved: a repeat, unless every alert stored had resolved and
    # only alerts an earlier delivery left out held the group open; this one lists them all.
    still_held = unlisted or any(row.status == FIRING for row in rows.values())
    if not fired and not resolved and still_held:
        return Result(Action.UNCHANGED, alert.dedup_key, incident.public_id, "Unchanged: a repeat.")
    AlertFingerprint.objects.bulk_create(new_rows)
    AlertFingerprint.objects.bulk_update(
        changed, ["status", "starts_at", "ends_at", "labels", "annotations"]
    )
    still = alert.fingerprints.filter(status=FIRING).count()
    alert.count += len(fired)
    alert.last_seen_at = now
    alert.last_payload = compact
    alert.reported_at = now
    parts = []
    if fired:
        parts.append(f"{len(fired)} firing: {_listed(fired)}")
    if resolved:
        parts.append(f"{len(resolved)} resolved: {_listed(resolved)}")
    if not parts:
        parts.append("the alerts left out of earlier deliveries are no longer firing")
    total = len(rows) + len(new_rows)
    body = f"{sender}: {'; '.join(parts)}. {still} of {total} still firing."
    if unlisted:
        body += (
            f" {unlisted} more not listed (the delivery was cut at max_alerts): the incident "
            "stays open until a delivery lists every alert."
        )
    data = {
        "dedup_key": alert.dedup_key,
        "alert": alert.pk,
        "firing": [a["fingerprint"] for a in fired[:MAX_LISTED]],
        "resolved": [a["fingerprint"] for a in resolved[:MAX_LISTED]],
        "still_firing": still,
        "unlisted": unlisted,
    }
    if still or unlisted:
        alert.save()
        _timeline(integration, incident, body, now, data)
        return Result(Action.APPENDED, alert.dedup_key, incident.public_id, "Alerts processed.")
    alert.status, alert.resolved_at = Alert.Status.RESOLVED, now
    alert.save()
    _timeline(integration, incident, body, now, data)
    _resolve_if_last(integration, alert, f"every alert of the {sender} group has resolved", now)
    return Result(
        Action.RESOLVED,
        alert.dedup_key,
        incident.public_id,
        "Alerts processed: every alert of the group has resolved.",
    )


# --- Rate limit ----------------------------------------------------------------------------

RATE_WINDOW = timedelta(minutes=1)


@functools.cache
def _rate_sql(which: str) -> str:
    """ "check": is the integration still the version read; "count": count a request;
    "verify": count it only if the integration is still the version read."""
    integrations = connection.ops.quote_name(Integration._meta.db_table)
    if which == "check":
        return f"SELECT id FROM {integrations} WHERE id = %s AND {_version_sql()} = %s"
    table = connection.ops.quote_name(RateWindow._meta.db_table)
    source = (
        "VALUES (%s, %s, 1)"
        if which == "count"
        else f"SELECT id, %s, 1 FROM {integrations} WHERE id = %s AND {_version_sql()} = %s"
    )
    return (
        f"INSERT INTO {table} (integration_id, window_start, count) {source} "
        f"ON CONFLICT (integration_id, window_start) DO UPDATE SET count = {table}.count + 1 "
        "RETURNING count"
    )


def over_rate_limit(integration: Integration, now: datetime, *, verify: bool = False) -> int | None:
    """Count one request in the integration's current minute; the seconds until the next
    minute when it is over its limit, else None.

    A fixed window counted in the database, so every web process shares it: one upsert, its
    row lock held only for the statement (it runs outside the ingestion transaction).

    ``verify`` (an integration from cached_integration): the same statement counts only if the
    integration row is still the version that was read; else nothing is counted and
    StaleIntegration is raised.
    """
    limit = integration.rate_limit_per_minute
    version = getattr(integration, "row_version", None) if verify else None
    if not limit:
        if version is not None:
            with connection.cursor() as cursor:
                cursor.execute(_rate_sql("check"), [integration.pk, version])
                if cursor.fetchone() is None:
                    raise StaleIntegration()
        return None
    window = now.replace(second=0, microsecond=0)
    window_value = connection.ops.adapt_datetimefield_value(window)
    with connection.cursor() as cursor:
        if version is None:
            cursor.execute(_rate_sql("count"), [integration.pk, window_value])
        else:
            cursor.execute(_rate_sql("verify"), [window_value, integration.pk, version])
        row = cursor.fetchone()
    if row is None:
        raise StaleIntegration()
    (count,) = row
    if count == 1:  # first request of a minute: forget the earlier ones
        RateWindow.objects.filter(integration=integration, window_start__lt=window).delete()
    if count <= limit:
        return None
    return _seconds_to_next_window(now)


def _seconds_to_next_window(now: datetime) -> int:
    window = now.replace(second=0, microsecond=0)
    return max(1, math.ceil((window + RATE_WINDOW - now).total_seconds()))
