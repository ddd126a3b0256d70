from celery import shared_task

from .models import Heartbeat
from .services import record_heartbeat


@shared_task(ignore_result=True)
def record_worker_heartbeat() -> None:
    record_heartbeat(Heartbeat.Source.WORKER)
