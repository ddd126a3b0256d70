from django.db import models


class Heartbeat(models.Model):
    """The last time a background process proved it is alive.

    One row per process kind: beat writes ``beat`` on its scheduler ticks, a periodic task
    run by a worker writes ``worker``. ``/api/health`` reports their age.
    """

    class Source(models.TextChoices):
        WORKER = "worker", "Celery worker"
        BEAT = "beat", "Celery beat"

    source = models.CharField(max_length=20, choices=Source.choices, unique=True)
    seen_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.get_source_display()} seen at {self.seen_at:%Y-%m-%d %H:%M:%S} UTC"
