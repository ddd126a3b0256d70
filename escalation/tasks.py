import logging

from celery import shared_task

from . import handoffs

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def run_handoffs() -> None:
    """Record due handoffs, remind incoming engineers, flag unacknowledged handoffs."""
    result = handoffs.run_handoffs()
    if any(result.values()):
        log.info("handoffs: %s", result)
