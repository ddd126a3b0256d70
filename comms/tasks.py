"""Thin Celery shells over ``comms.outbox``: a message is only a wake-up."""

from celery import shared_task

from . import outbox


@shared_task(name="comms.tasks.send_notification")
def send_notification(pk: int) -> str:
    return outbox.deliver(pk)


@shared_task(name="comms.tasks.send_notifications")
def send_notifications(ids: list[int]) -> dict:
    return {str(pk): state for pk, state in outbox.deliver_many(ids).items()}


@shared_task(name="comms.tasks.sweep_outbox")
def sweep_outbox() -> int:
    return outbox.sweep()


@shared_task(name="comms.tasks.run_cadence")
def run_cadence() -> dict:
    from . import cadence

    return cadence.run_due().as_dict()
