"""Channels: a small registry of kind -> sender. SMS or voice is one more module and one entry.

A sender gets a claimed notification and either returns (delivered) or raises. ``Permanent``
means retrying cannot help (address refused, webhook answered 404); anything else is retried
with backoff by the outbox.
"""

import hashlib
import hmac
import json
import smtplib
import time
from collections.abc import Callable

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from .models import Notification, Webhook


class Permanent(Exception):
    """Delivery failed in a way a retry cannot fix."""


def email_connection():
    """One SMTP connection, opened on the first message and shared by a batch."""
    return get_connection(timeout=settings.EMAIL_TIMEOUT)


def send_email(notification: Notification, *, connection=None) -> None:
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=notification.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        # The stored Message-ID: a resend after a crash is recognisable as the same message.
        headers={"Message-ID": notification.message_id, **notification.headers},
        connection=connection or email_connection(),
    )
    if notification.body_html:
        message.attach_alternative(notification.body_html, "text/html")
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(500 <= code < 600 for code in codes):
            raise Permanent(f"recipient refused: {exc.recipients}") from exc
        raise


def webhook_body(webhook: Webhook, payload: dict) -> dict:
    """The body in the shape the receiving tool expects; plain JSON is the payload itself."""
    text = payload.get("text", "")
    if webhook.format == Webhook.Format.SLACK:
        return {"text": text}
    if webhook.format == Webhook.Format.TEAMS:
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [{"type": "TextBlock", "text": text, "wrap": True}],
                    },
                }
            ],
        }
    return payload


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``: the timestamp stops replays of old bodies."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send_webhook(notification: Notification) -> None:
    webhook_id = int(notification.recipient.split(":", 1)[1])
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None or not webhook.is_active:
        raise Permanent("the webhook was deleted or disabled")
    body = json.dumps(webhook_body(webhook, notification.payload), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "incident-portal",
        # The same delivery id on every attempt: receivers drop a repeat they already saw.
        "X-Portal-Delivery": str(notification.uid),
        "X-Portal-Event": notification.payload.get("event", ""),
        "X-Portal-Timestamp": timestamp,
        "X-Portal-Signature": signature(webhook.secret, timestamp, body),
    }
    try:
        response = requests.post(
            webhook.url, data=body, headers=headers, timeout=webhook.timeout_seconds
        )
    except requests.RequestException as exc:
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code < 500 and response.status_code not in (408, 429):
            raise Permanent(detail)
        raise ConnectionError(detail)


CHANNELS: dict[str, Callable[[Notification], None]] = {
    "email": send_email,
    "webhook": send_webhook,
}
