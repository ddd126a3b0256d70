"""Exactly-once delivery from the outbox (DESIGN.md section 2, principles 1, 2 and 6).

* ``queue`` writes notification rows inside the caller's transaction (unique per reason,
  recipient and channel, so deciding twice still writes one row) and dispatches a send task for
  each in ``transaction.on_commit``: nothing is sent for a decision that rolled back.
* ``deliver`` claims a row with a lease before sending and records the result after. A row
  already sent is never sent again; a row held by a live lease is left to its holder.
* ``sweep`` re-dispatches rows left pending (the broker was down, the task was lost) and rows
  whose lease expired (the worker died while sending). The only repeat a receiver can see is a
  crash between the server accepting a message and our record of it, and that repeat carries
  the same ``Message-ID`` / delivery id.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .channels import CHANNELS, Permanent, email_connection, send_email
from .models import Notification

log = logging.getLogger(__name__)

STALL_AFTER = timedelta(minutes=1)


@dataclass
class Message:
    """What a caller wants sent; ``queue`` turns it into an outbox row."""

    reason: str
    channel: str
    recipient: str
    subject: str
    body_text: str
    body_html: str = ""
    payload: dict | None = None
    headers: dict | None = None
    user: object | None = None
    incident: object | None = None
    uid: uuid.UUID | None = None
    communication: object | None = None


def new_uid() -> uuid.UUID:
    return uuid.uuid4()


def mail_domain() -> str:
    """The domain of the sender address: the right-hand side of every id the portal mints."""
    return settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"


def message_id(uid: uuid.UUID) -> str:
    return f"<{uid}@{mail_domain()}>"


def queue(messages: list[Message], *, now: datetime | None = None) -> list[Notification]:
    """Write the rows (in the caller's transaction) and send them once it commits.

    Returns the rows this call created; a message whose (reason, recipient, channel) exists
    already is not written again.
    """
    now = now or timezone.now()
    rows = []
    for message in messages:
        if message.channel not in CHANNELS:
            raise ValueError(f"Unknown channel {message.channel!r}.")
        uid = message.uid or new_uid()
        rows.append(
            Notification(
                uid=uid,
                reason=message.reason,
                channel=message.channel,
                recipient=message.recipient,
                user=message.user,
                incident=message.incident,
                subject=message.subject[:300],
                body_text=message.body_text,
                body_html=message.body_html,
                payload=message.payload or {},
                headers=message.headers or {},
                message_id=message_id(uid),
                communication=message.communication,
                created_at=now,
                next_attempt_at=now,
                dispatched_at=now,  # dispatched when this transaction commits
            )
        )
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    # Bodies are not read back: a fan-out of thousands would fetch every message again.
    created = list(
        Notification.objects.filter(uid__in=[row.uid for row in rows]).defer(
            "body_text", "body_html", "payload", "headers"
        )
    )
    ids = [row.pk for row in created]
    transaction.on_commit(lambda: dispatch(ids))
    return created


def claim_once(model, pk: int, field: str, now: datetime) -> bool:
    """Stamp ``field`` on one row if no one has: the claim that lets a periodic job (handoff
    reminders, review reminders) queue its email exactly once. Call it in the transaction that
    queues the email, so a crash loses neither."""
    return bool(model.objects.filter(pk=pk, **{f"{field}__isnull": True}).update(**{field: now}))


def dispatch(ids: list[int], *, countdown: float | None = None) -> int:
    """Wake a sender for the rows, in batches: one task and one SMTP connection per batch of
    ``OUTBOX_BATCH_SIZE`` rows, not one per message (a 2,000-stakeholder update is 40 tasks).
    A broker that is down loses nothing: the sweep retries."""
    from .tasks import send_notifications

    size = max(1, settings.OUTBOX_BATCH_SIZE)
    sent = 0
    for start in range(0, len(ids), size):
        batch = list(ids[start : start + size])
        try:
            send_notifications.apply_async((batch,), countdown=countdown, retry=False)
        except Exception as exc:  # kombu raises transport-specific errors
            log.warning(
                "broker unreachable (%s): %d notifications left to the sweep",
                type(exc).__name__,
                len(ids) - sent,
            )
            break
        sent += len(batch)
    return sent


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min ... capped at 15 min."""
    return min(timedelta(seconds=30) * 2 ** max(attempts - 1, 0), timedelta(minutes=15))


def claimable(now: datetime) -> Q:
    return Q(state=Notification.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Notification.State.SENDING, lease_until__lt=now
    )


def claim_many(ids: list[int], now: datetime) -> list[Notification]:
    """Take the rows for one attempt each; rows sent, failed or held by another sender are left
    out. The lease's end time, the same for the whole claim, is what ``_record`` checks."""
    lease_until = now + settings.NOTIFICATION_LEASE
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(claimable(now), pk__in=ids)
            .order_by("pk")
        )
        if not rows:
            return []
        Notification.objects.filter(pk__in=[row.pk for row in rows]).update(
            state=Notification.State.SENDING, lease_until=lease_until, attempts=F("attempts") + 1
        )
    for row in rows:
        row.state = Notification.State.SENDING
        row.lease_until = lease_until
        row.attempts += 1
    return rows


def claim(pk: int, now: datetime) -> Notification | None:
    """Take one row for one attempt, or None when it is sent, failed, or another sender holds
    it."""
    rows = claim_many([pk], now)
    return rows[0] if rows else None


def deliver(pk: int, *, now: datetime | None = None) -> str:
    """One attempt to send one notification; returns the state it ends in (or "skipped")."""
    return deliver_many([pk], now=now).get(pk, "skipped")


def deliver_many(ids: list[int], *, now: datetime | None = None) -> dict[int, str]:
    """One attempt for each row of a batch; emails share one SMTP connection. Returns the state
    each claimed row ends in (rows someone else holds or already sent are absent)."""
    rows = claim_many(ids, now or timezone.now())
    states: dict[int, str] = {}
    connection = None
    try:
        for row in rows:
            if not _renew(row):
                continue  # its lease ran out while earlier rows were sent, and it was taken over
            try:
                if row.channel == "email":
                    if connection is None:
                        # Opened here, so each send leaves it open for the next one.
                        connection = email_connection()
                        connection.open()
                    send_email(row, connection=connection)
                else:
                    CHANNELS[row.channel](row)
            except Permanent as exc:
                states[row.pk] = _record(row, Notification.State.FAILED, error=str(exc))
            except Exception as exc:
                states[row.pk] = _failed(row, exc)
                if row.channel == "email" and connection is not None:
                    # The connection may be what broke; the next message opens a fresh one.
                    connection.close()
                    connection = None
            else:
                # Recorded at once, not at the end of the batch: a worker killed mid-batch
                # then repeats only the message it was sending, not all it had sent.
                states[row.pk] = _record(row, Notification.State.SENT)
    finally:
        if connection is not None:
            connection.close()
    return states


def _renew(row: Notification) -> bool:
    """Restart the row's lease as its own send begins, so a batch of slow sends never outlives
    the claim on a row not sent yet (the sweep would hand it to a second sender). False when
    the claim was lost: another sender holds the row now."""
    lease_until = timezone.now() + settings.NOTIFICATION_LEASE
    renewed = Notification.objects.filter(
        pk=row.pk, state=Notification.State.SENDING, attempts=row.attempts
    ).update(lease_until=lease_until)
    if renewed:
        row.lease_until = lease_until
    return bool(renewed)


def _failed(row: Notification, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if row.attempts >= row.max_attempts:
        return _record(row, Notification.State.FAILED, error=error)
    wait = backoff(row.attempts)
    state = _record(row, Notification.State.PENDING, error=error, retry_in=wait)
    # Its retry task is queued now, due after the wait: the sweep leaves it that long.
    Notification.objects.filter(pk=row.pk).update(dispatched_at=timezone.now() + wait)
    dispatch([row.pk], countdown=wait.total_seconds())
    return state


def _record(
    row: Notification, state: str, *, error: str = "", retry_in: timedelta | None = None
) -> str:
    now = timezone.now()
    values = {"state": state, "lease_until": None}
    if state == Notification.State.SENT:
        values["sent_at"] = now
    if error:
        values["last_error"] = error
        log.warning("notification %s to %s: %s", row.pk, row.recipient, error)
    if retry_in is not None:
        values["next_attempt_at"] = now + retry_in
    # Only the attempt that holds the claim records; a sender whose lease ran out and was
    # overtaken must not overwrite what the newer attempt recorded.
    Notification.objects.filter(
        pk=row.pk, state=Notification.State.SENDING, attempts=row.attempts
    ).update(**values)
    return state


def sweep(now: datetime | None = None, *, grace: timedelta | None = None) -> int:
    """Re-dispatch rows nobody is sending: pending past their time, or with an expired lease.

    A row whose send task was queued less than ``grace`` ago is left alone: during a backlog its
    task is still waiting in the queue, and queueing it again would only lengthen the queue.
    """
    now = now or timezone.now()
    grace = settings.OUTBOX_SWEEP_GRACE if grace is None else grace
    stale = now - grace
    ids = list(
        Notification.objects.filter(claimable(stale))
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:1000]
    )
    if not ids:
        return 0
    log.info("sweep: re-dispatching %d unsent notifications", len(ids))
    Notification.objects.filter(pk__in=ids).update(dispatched_at=now)
    return dispatch(ids)


def retry_now(pk: int) -> bool:
    """An operator's "send again" for a failed row: one more attempt budget, due now."""
    updated = Notification.objects.filter(pk=pk, state=Notification.State.FAILED).update(
        state=Notification.State.PENDING,
        next_attempt_at=timezone.now(),
        max_attempts=F("attempts") + 1,
    )
    if updated:
        Notification.objects.filter(pk=pk).update(dispatched_at=timezone.now())
        transaction.on_commit(lambda: dispatch([pk]))
    return bool(updated)


def stalled(now: datetime | None = None) -> dict:
    """Unsent notifications overdue by more than a minute (what /api/health reports)."""
    now = now or timezone.now()
    late = Notification.objects.filter(claimable(now - STALL_AFTER))
    oldest = late.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    return {
        "count": late.count(),
        "oldest_due_at": oldest,
        "failed": Notification.objects.filter(
            state=Notification.State.FAILED, created_at__gte=now - timedelta(days=1)
        ).count(),
    }
