"""Send what the outbox holds, in the test's own process: what the worker's task would do."""

from comms import outbox
from comms.models import Notification


def deliver_pending() -> list[str]:
    """Deliver every pending notification once, oldest first; returns the states they end in."""
    pending = Notification.objects.filter(state=Notification.State.PENDING).order_by("pk")
    return [outbox.deliver(pk) for pk in pending.values_list("pk", flat=True)]
