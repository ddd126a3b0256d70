"""One log line per event, carrying the incident id when the code is working on one.

Code that acts on an incident wraps its work in ``incident_context(public_id)``; every line logged
inside it, by any logger, carries ``incident=INC-...``. A caller may also pass
``extra={"incident": ...}`` for a single line.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current_incident: ContextVar[str] = ContextVar("current_incident", default="-")


@contextmanager
def incident_context(public_id: str) -> Iterator[None]:
    token = _current_incident.set(public_id)
    try:
        yield
    finally:
        _current_incident.reset(token)


class IncidentContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "incident", None):
            record.incident = _current_incident.get()
        return True


class OneLineFormatter(logging.Formatter):
    """Keeps a traceback on the line of its event, so log shippers never split one event."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " \\n ")
