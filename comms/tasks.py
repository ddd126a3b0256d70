"""Thin Celery shells over ``comms.outbox``: a message is only a wake-up."""

from celery import shared_task

from . import outbox


@shared_task(name="comms.tasks.send_notification")
def send_notification(pk: int) -> str:
    return outbox.deliver(pk)


@shared_task(name="comms.tasks.sweep_outbox")
def sweep_outbox() -> int:
    return outbox.sweep()
