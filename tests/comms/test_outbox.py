"""The outbox against real receivers: an aiosmtpd server for email, a local HTTP server for
webhooks, PostgreSQL for the rows, time moved with time-machine.

Dispatching (the Celery wake-up) happens in ``on_commit``, which the ``db`` fixture never runs:
each test calls ``outbox.deliver`` itself, as the worker's task would. A failed attempt and the
sweep publish their wake-ups at once, to the test Redis: those tests are marked ``needs_redis``
(with the clock frozen, kombu's connection retry against a missing broker would never time out).
"""

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.signals import after_task_publish
from django.conf import settings

from comms import outbox
from comms.models import Notification, Webhook

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
ALICE = "alice@example.com"


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(T0, tick=False)
    return time_machine


def at(delta: timedelta):
    return T0 + delta


def fresh(row: Notification) -> Notification:
    return Notification.objects.get(pk=row.pk)


def queue_email(
    reason: str = "test:checkout-down", recipient: str = ALICE, **extra
) -> Notification:
    [row] = outbox.queue(
        [
            outbox.Message(
                reason=reason,
                channel="email",
                recipient=recipient,
                subject="INCIDENT ALERT - P0 INC-20260311-001: Checkout is down",
                body_text="Checkout is down.\nAcknowledge: https://portal.example/ack/\n",
                body_html="<p>Checkout is down.</p><p><a href='https://portal.example/ack/'>"
                "Acknowledge</a></p>",
                **extra,
            )
        ]
    )
    return row


def closed_port() -> int:
    """A port nothing listens on: connecting to it is refused, like a mail server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Published(list):
    def __init__(self):
        super().__init__()
        self.etas: list[str | None] = []


@pytest.fixture
def published():
    """Celery task messages that really reached the broker (the test Redis database), as
    (task name, arguments); ``published.etas`` holds when each is to run (None: at once)."""
    seen = Published()

    def record(sender=None, headers=None, body=None, **kwargs):
        seen.append((sender, tuple(body[0])))
        seen.etas.append(headers.get("eta"))

    after_task_publish.connect(record, weak=False)
    try:
        yield seen
    finally:
        after_task_publish.disconnect(record)


# --- Email -------------------------------------------------------------------------------


def test_an_email_arrives_once_with_its_stored_message_id_and_both_parts(clock, smtp_server):
    row = queue_email()

    assert outbox.deliver(row.pk) == "sent"
    assert outbox.deliver(row.pk) == "skipped"

    [message] = smtp_server.messages
    assert message["Subject"] == "INCIDENT ALERT - P0 INC-20260311-001: Checkout is down"
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message["To"] == ALICE
    assert smtp_server.envelopes[0].rcpt_tos == [ALICE]
    assert message["Message-ID"] == row.message_id
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text.get_content_type() == "text/plain"
    assert text.get_content() == "Checkout is down.\nAcknowledge: https://portal.example/ack/\n"
    assert html.get_content_type() == "text/html"
    assert "<a href='https://portal.example/ack/'>Acknowledge</a>" in html.get_content()

    row = fresh(row)
    assert row.state == Notification.State.SENT
    assert row.sent_at == T0
    assert row.attempts == 1
    assert row.lease_until is None
    assert row.last_error == ""


def test_a_refused_address_fails_at_once_and_is_not_retried(clock, smtp_server):
    smtp_server.refused.add("gone@example.com")
    row = queue_email(recipient="gone@example.com")

    assert outbox.deliver(row.pk) == "failed"

    row = fresh(row)
    assert row.state == Notification.State.FAILED
    assert row.attempts == 1
    assert "gone@example.com" in row.last_error
    assert "550" in row.last_error
    assert row.sent_at is None
    # Not retried: not now, not after any backoff, and the sweep does not pick it up.
    clock.move_to(at(timedelta(hours=1)), tick=False)
    assert outbox.deliver(row.pk) == "skipped"
    assert outbox.stalled()["count"] == 0
    assert smtp_server.messages == []
    assert fresh(row).attempts == 1


@pytest.mark.needs_redis
def test_a_mail_server_that_is_down_is_retried_after_a_growing_backoff(
    clock, smtp_server, settings
):
    settings.EMAIL_PORT = closed_port()
    row = queue_email()

    assert outbox.deliver(row.pk) == "pending"
    row = fresh(row)
    assert row.attempts == 1
    assert row.state == Notification.State.PENDING
    assert row.lease_until is None
    assert "ConnectionRefused" in row.last_error
    assert row.next_attempt_at == at(timedelta(seconds=30))

    # Not due yet: a wake-up that comes early does nothing.
    clock.move_to(at(timedelta(seconds=29)), tick=False)
    assert outbox.deliver(row.pk) == "skipped"
    assert fresh(row).attempts == 1

    clock.move_to(at(timedelta(seconds=30)), tick=False)
    assert outbox.deliver(row.pk) == "pending"
    row = fresh(row)
    assert row.attempts == 2
    assert row.next_attempt_at == at(timedelta(seconds=30 + 60))

    # The server is back: the next attempt delivers it, once.
    settings.EMAIL_PORT = smtp_server.port
    clock.move_to(at(timedelta(seconds=90)), tick=False)
    assert outbox.deliver(row.pk) == "sent"
    row = fresh(row)
    assert (row.state, row.attempts, row.sent_at) == (
        Notification.State.SENT,
        3,
        at(timedelta(seconds=90)),
    )
    [message] = smtp_server.messages
    assert message["Message-ID"] == row.message_id


@pytest.mark.needs_redis
def test_after_max_attempts_a_temporary_failure_is_given_up(clock, smtp_server, settings):
    settings.EMAIL_PORT = closed_port()
    row = queue_email()
    assert row.max_attempts == 5

    results, waits = [], []
    for _ in range(row.max_attempts):
        due = fresh(row).next_attempt_at
        clock.move_to(due, tick=False)
        results.append(outbox.deliver(row.pk))
        waits.append(fresh(row).next_attempt_at - due)

    assert results == ["pending"] * 4 + ["failed"]
    # 30 s, 1 min, 2 min, 4 min; the last attempt schedules nothing.
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    row = fresh(row)
    assert (row.state, row.attempts) == (Notification.State.FAILED, 5)
    assert "ConnectionRefused" in row.last_error
    clock.move_to(at(timedelta(days=1)), tick=False)
    assert outbox.deliver(row.pk) == "skipped"
    assert smtp_server.messages == []


# --- Leases, sweeping, queueing twice --------------------------------------------------


def test_a_row_held_by_a_live_lease_is_left_to_its_holder(clock, smtp_server):
    row = queue_email()
    holder = outbox.claim(row.pk, T0)  # a worker took it ...

    assert fresh(row).state == Notification.State.SENDING
    assert fresh(row).lease_until == T0 + settings.NOTIFICATION_LEASE
    # ... so another wake-up, even late in the lease, leaves it alone.
    clock.move_to(T0 + settings.NOTIFICATION_LEASE - timedelta(seconds=1), tick=False)
    assert outbox.deliver(row.pk) == "skipped"
    assert outbox.sweep() == 0
    assert smtp_server.messages == []
    assert holder is not None and fresh(row).attempts == 1


@pytest.mark.needs_redis
def test_a_sender_that_died_mid_send_is_taken_over_with_the_same_message_id(
    clock, smtp_server, published
):
    row = queue_email()
    # A worker claims the row, the mail server accepts the message, and the worker dies before
    # recording it: the row stays "sending" with a lease.
    holder = outbox.claim(row.pk, T0)
    outbox.CHANNELS["email"](holder)
    assert fresh(row).state == Notification.State.SENDING

    # The lease runs out; the sweep waits its grace on top, then wakes a sender for it.
    expired = T0 + settings.NOTIFICATION_LEASE + timedelta(seconds=1)
    clock.move_to(expired, tick=False)
    assert outbox.sweep() == 0
    clock.move_to(expired + settings.OUTBOX_SWEEP_GRACE, tick=False)
    assert outbox.sweep() == 1
    assert published == [("comms.tasks.send_notifications", ([row.pk],))]

    assert outbox.deliver(row.pk) == "sent"

    first, second = smtp_server.messages
    assert first["Message-ID"] == second["Message-ID"] == row.message_id
    row = fresh(row)
    assert (row.state, row.attempts) == (Notification.State.SENT, 2)
    assert outbox.deliver(row.pk) == "skipped"
    assert len(smtp_server.messages) == 2


def test_queueing_the_same_message_twice_writes_one_row(clock):
    first = queue_email(reason="escalation:1:p0-immediate:0")
    again = outbox.queue(
        [
            outbox.Message(
                reason="escalation:1:p0-immediate:0",
                channel="email",
                recipient=ALICE,
                subject="A second decision",
                body_text="Something else",
            )
        ]
    )

    assert again == []
    [row] = Notification.objects.all()
    assert row.pk == first.pk
    assert row.subject.endswith("Checkout is down")
    # Another recipient or another channel is another message.
    queue_email(reason="escalation:1:p0-immediate:0", recipient="bob@example.com")
    assert Notification.objects.count() == 2


def test_a_queued_row_is_due_now_and_wakes_a_sender_once_committed(
    clock, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        row = queue_email()
    assert len(callbacks) == 1  # the wake-up, after commit
    row = fresh(row)
    assert row.state == Notification.State.PENDING
    assert row.next_attempt_at == row.created_at == T0
    assert row.message_id == f"<{row.uid}@localhost>"


@pytest.mark.needs_redis
def test_the_sweep_picks_rows_left_pending_past_the_grace_and_leaves_fresh_ones(
    clock, smtp_server, published
):
    old = queue_email(reason="old")
    clock.move_to(at(timedelta(seconds=15)), tick=False)
    recent = queue_email(reason="recent")
    sent = queue_email(reason="sent")
    outbox.deliver(sent.pk)
    smtp_server.refused.add("gone@example.com")
    failed = queue_email(reason="failed", recipient="gone@example.com")
    outbox.deliver(failed.pk)

    # 25 s after T0: the old row waited past the 20 s grace, the recent one only 10 s.
    clock.move_to(at(timedelta(seconds=25)), tick=False)
    assert outbox.sweep() == 1
    assert published == [("comms.tasks.send_notifications", ([old.pk],))]

    # 36 s: the recent row is past its grace; the old one was queued again 11 s ago, and a
    # backlog must not be re-queued on every sweep.
    clock.move_to(at(timedelta(seconds=36)), tick=False)
    published.clear()
    assert outbox.sweep() == 1
    assert [args[0] for _, args in published] == [[recent.pk]]
    assert fresh(recent).state == Notification.State.PENDING  # the sweep only wakes senders

    clock.move_to(at(timedelta(seconds=46)), tick=False)
    published.clear()
    assert outbox.sweep() == 1
    assert [args[0] for _, args in published] == [[old.pk]]


@pytest.mark.needs_redis
def test_a_failed_attempt_schedules_its_own_wake_up_at_the_backoff(
    clock, smtp_server, settings, published
):
    settings.EMAIL_PORT = closed_port()
    row = queue_email()

    assert outbox.deliver(row.pk) == "pending"

    # The worker is woken when the retry is due, not before.
    assert published == [("comms.tasks.send_notifications", ([row.pk],))]
    assert published.etas == [at(timedelta(seconds=30)).isoformat()]


def test_stalled_counts_rows_overdue_by_more_than_a_minute(clock, smtp_server):
    overdue = queue_email(reason="overdue")
    clock.move_to(at(timedelta(seconds=30)), tick=False)
    queue_email(reason="late-but-not-stalled")
    smtp_server.refused.add("gone@example.com")
    outbox.deliver(queue_email(reason="failed", recipient="gone@example.com").pk)

    clock.move_to(at(timedelta(seconds=61)), tick=False)
    report = outbox.stalled()
    assert report == {"count": 1, "oldest_due_at": overdue.next_attempt_at, "failed": 1}

    clock.move_to(at(timedelta(seconds=91)), tick=False)
    assert outbox.stalled()["count"] == 2

    outbox.deliver(overdue.pk)
    assert outbox.stalled()["count"] == 1
    # Failed rows stay in the report for a day.
    clock.move_to(at(timedelta(days=1, minutes=1)), tick=False)
    assert outbox.stalled()["failed"] == 0


def test_retry_now_makes_a_failed_row_deliverable_again(
    clock, smtp_server, django_capture_on_commit_callbacks
):
    smtp_server.refused.add("typo@example.com")
    row = queue_email(recipient="typo@example.com")
    assert outbox.deliver(row.pk) == "failed"
    smtp_server.refused.clear()  # the mailbox was fixed

    clock.move_to(at(timedelta(minutes=10)), tick=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert outbox.retry_now(row.pk) is True
    assert len(callbacks) == 1

    row = fresh(row)
    assert row.state == Notification.State.PENDING
    assert row.next_attempt_at == at(timedelta(minutes=10))
    assert outbox.deliver(row.pk) == "sent"
    [message] = smtp_server.messages
    assert message["Message-ID"] == row.message_id
    assert fresh(row).state == Notification.State.SENT
    # Only a failed row can be retried: a sent one is not sent again.
    assert outbox.retry_now(row.pk) is False
    assert outbox.deliver(row.pk) == "skipped"


def test_retry_now_gives_one_more_attempt_not_an_endless_loop(clock, smtp_server, settings):
    settings.EMAIL_PORT = closed_port()
    row = queue_email()
    Notification.objects.filter(pk=row.pk).update(max_attempts=1)
    assert outbox.deliver(row.pk) == "failed"

    assert outbox.retry_now(row.pk) is True
    assert outbox.deliver(row.pk) == "failed"  # still down: failed again at once
    assert fresh(row).attempts == 2


# --- Webhooks ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class HookReceiver:
    """A real HTTP server on 127.0.0.1 that records each POST and answers ``status``."""

    def __init__(self):
        self.requests: list[Received] = []
        self.status = 200
        self.delay = 0.0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                if receiver.delay:
                    receiver.release.wait(receiver.delay)  # slower than the client will wait
                answer = b"ok" if receiver.status < 400 else b"nope"
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # the client hung up on a slow answer
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/incident"


@pytest.fixture
def hook_receiver():
    receiver = HookReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


PAYLOAD = {
    "event": "escalation.step_fired",
    "incident": {"id": "INC-20260311-001", "severity": "P0", "title": "Checkout is down"},
    "text": "INCIDENT ALERT - P0\nIncident ID: INC-20260311-001",
}


def webhook(receiver: HookReceiver, format: str = Webhook.Format.JSON) -> Webhook:
    return Webhook.objects.create(
        name=f"hook-{format}", url=receiver.url, format=format, timeout_seconds=1
    )


def queue_webhook(hook: Webhook, reason: str = "test:checkout-down") -> Notification:
    [row] = outbox.queue(
        [
            outbox.Message(
                reason=reason,
                channel="webhook",
                recipient=f"webhook:{hook.pk}",
                subject="INCIDENT ALERT - P0 INC-20260311-001: Checkout is down",
                body_text=PAYLOAD["text"],
                payload=PAYLOAD,
            )
        ]
    )
    return row


def signed_with(secret: str, request: Received) -> bool:
    """Verify X-Portal-Signature the way a receiver would: HMAC-SHA256 of "<timestamp>.<body>"."""
    timestamp = request.headers["X-Portal-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    return hmac.compare_digest(
        request.headers["X-Portal-Signature"], "sha256=" + expected.hexdigest()
    )


def test_a_plain_json_webhook_gets_the_payload_signed(clock, hook_receiver):
    hook = webhook(hook_receiver)
    assert len(hook.secret) >= 32  # generated when left blank
    row = queue_webhook(hook)

    assert outbox.deliver(row.pk) == "sent"
    assert outbox.deliver(row.pk) == "skipped"

    [request] = hook_receiver.requests
    assert request.path == "/hooks/incident"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == PAYLOAD
    assert request.headers["X-Portal-Delivery"] == str(row.uid)
    assert request.headers["X-Portal-Event"] == "escalation.step_fired"
    assert request.headers["X-Portal-Timestamp"] == str(int(T0.timestamp()))
    assert signed_with(hook.secret, request)
    row = fresh(row)
    assert (row.state, row.sent_at) == (Notification.State.SENT, T0)


def test_the_signature_fails_for_another_secret_a_changed_body_or_a_replayed_timestamp(
    clock, hook_receiver
):
    hook = webhook(hook_receiver)
    outbox.deliver(queue_webhook(hook).pk)
    [request] = hook_receiver.requests

    assert signed_with(hook.secret, request)
    assert not signed_with("not-the-secret", request)
    assert not signed_with(hook.secret, replace(request, body=request.body.replace(b"P0", b"P3")))
    later = {**request.headers, "X-Portal-Timestamp": str(int(T0.timestamp()) + 3600)}
    assert not signed_with(hook.secret, replace(request, headers=later))


def test_a_slack_webhook_gets_the_text(clock, hook_receiver):
    hook = webhook(hook_receiver, Webhook.Format.SLACK)
    row = queue_webhook(hook)

    assert outbox.deliver(row.pk) == "sent"

    [request] = hook_receiver.requests
    assert request.json() == {"text": PAYLOAD["text"]}
    assert request.headers["X-Portal-Delivery"] == str(row.uid)
    assert signed_with(hook.secret, request)


def test_a_teams_webhook_gets_an_adaptive_card_message(clock, hook_receiver):
    hook = webhook(hook_receiver, Webhook.Format.TEAMS)
    row = queue_webhook(hook)

    assert outbox.deliver(row.pk) == "sent"

    [request] = hook_receiver.requests
    body = request.json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert [block["text"] for block in card["body"]] == [PAYLOAD["text"]]
    assert signed_with(hook.secret, request)


@pytest.mark.needs_redis
def test_a_webhook_answering_500_is_retried_with_the_same_delivery_id(clock, hook_receiver):
    hook = webhook(hook_receiver)
    row = queue_webhook(hook)
    hook_receiver.status = 500

    assert outbox.deliver(row.pk) == "pending"
    row = fresh(row)
    assert row.attempts == 1
    assert "HTTP 500" in row.last_error
    assert row.next_attempt_at == at(timedelta(seconds=30))

    hook_receiver.status = 200
    clock.move_to(at(timedelta(seconds=30)), tick=False)
    assert outbox.deliver(row.pk) == "sent"

    first, second = hook_receiver.requests
    assert first.headers["X-Portal-Delivery"] == second.headers["X-Portal-Delivery"] == str(row.uid)
    assert first.body == second.body
    # Each attempt is signed for its own time.
    assert second.headers["X-Portal-Timestamp"] == str(int(at(timedelta(seconds=30)).timestamp()))
    assert signed_with(hook.secret, first)
    assert signed_with(hook.secret, second)
    assert fresh(row).state == Notification.State.SENT


def test_a_webhook_answering_404_fails_for_good(clock, hook_receiver):
    hook = webhook(hook_receiver)
    row = queue_webhook(hook)
    hook_receiver.status = 404

    assert outbox.deliver(row.pk) == "failed"

    row = fresh(row)
    assert row.state == Notification.State.FAILED
    assert "HTTP 404" in row.last_error
    clock.move_to(at(timedelta(hours=1)), tick=False)
    assert outbox.deliver(row.pk) == "skipped"
    assert len(hook_receiver.requests) == 1


@pytest.mark.needs_redis
def test_a_webhook_answering_429_is_retried(clock, hook_receiver):
    hook = webhook(hook_receiver)
    row = queue_webhook(hook)
    hook_receiver.status = 429

    assert outbox.deliver(row.pk) == "pending"

    row = fresh(row)
    assert "HTTP 429" in row.last_error
    assert row.next_attempt_at == at(timedelta(seconds=30))


@pytest.mark.needs_redis
def test_a_webhook_slower_than_its_timeout_is_retried(clock, hook_receiver):
    hook = webhook(hook_receiver)
    row = queue_webhook(hook)
    hook_receiver.delay = hook.timeout_seconds + 2

    assert outbox.deliver(row.pk) == "pending"

    row = fresh(row)
    assert row.state == Notification.State.PENDING
    assert "Timeout" in row.last_error and "timed out" in row.last_error
    assert row.next_attempt_at == at(timedelta(seconds=30))
    assert len(hook_receiver.requests) == 1


def test_a_disabled_webhook_is_not_called(clock, hook_receiver):
    hook = webhook(hook_receiver)
    row = queue_webhook(hook)
    Webhook.objects.filter(pk=hook.pk).update(is_active=False)

    assert outbox.deliver(row.pk) == "failed"

    assert "disabled" in fresh(row).last_error
    assert hook_receiver.requests == []
