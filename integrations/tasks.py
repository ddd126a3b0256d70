"""Thin Celery shells over integrations/ingest.py."""

import logging

from celery import shared_task

from . import ingest

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def declare_alerts() -> dict:
    """Declare the incidents of alerts answered before them (woken by the request that opened
    one, and beat's sweep every few seconds)."""
    ingest.declarations_woken()
    result = ingest.declare_pending()
    if result["declared"] or result["waiting"]:
        log.info("alert declarations: %s", result)
    return result
