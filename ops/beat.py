"""django-celery-beat's database scheduler, plus a heartbeat so /api/health can see beat."""

import logging
import time

from django.db import DatabaseError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

log = logging.getLogger(__name__)


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    # Beat loops at most every max_interval (5 s); one write every few seconds is plenty.
    heartbeat_every = 5.0
    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        if time.monotonic() - self._last_heartbeat >= self.heartbeat_every:
            self._beat()
        return interval

    def _beat(self) -> None:
        from .models import Heartbeat
        from .services import record_heartbeat

        close_old_connections()
        try:
            record_heartbeat(Heartbeat.Source.BEAT)
        except DatabaseError:
            # Beat keeps scheduling while the database is away; health shows the stale tick.
            log.exception("beat: could not record heartbeat")
            return
        self._last_heartbeat = time.monotonic()
