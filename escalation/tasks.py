"""Thin Celery shells: the database decides what is due, a task is only a wake-up."""

import logging
import time
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from . import engine, handoffs, reminders

log = logging.getLogger(__name__)

# An ETA wake-up may arrive a little early (clock skew between hosts, the broker's own
# timer); waiting that out is cheaper than missing the due time until the next beat tick.
MAX_EARLY_WAIT_SECONDS = 2.0


@shared_task(ignore_result=True)
def tick(due_at: str | None = None) -> dict:
    """Fire every escalation step that is due (beat every few seconds, and ETA wake-ups)."""
    if due_at:
        early = (datetime.fromisoformat(due_at) - timezone.now()).total_seconds()
        if 0 < early <= MAX_EARLY_WAIT_SECONDS:
            time.sleep(early)
    result = engine.run_due()
    if result.fired or result.failed:
        log.info("escalation tick: %s", result.as_dict())
    return result.as_dict()


@shared_task(ignore_result=True)
def run_handoffs() -> None:
    """Record due handoffs, remind incoming engineers, flag unacknowledged handoffs."""
    result = handoffs.run_handoffs()
    if any(result.values()):
        log.info("handoffs: %s", result)


@shared_task(ignore_result=True)
def run_reminders() -> None:
    """Remind action item owners and overdue reviews' commanders (then the manager)."""
    result = reminders.run_reminders()
    if any(result.values()):
        log.info("reminders: %s", result)
