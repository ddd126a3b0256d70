"""Logging as the processes really configure it: stdout, one line per event."""

import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import logging
import django
django.setup()
from config.logging import incident_context
log = logging.getLogger("incidents.services")
with incident_context("INC-20261123-007"):
    log.info("severity changed to P0")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("notification failed")
log.info("tick found nothing due")
"""


def test_each_event_is_one_stdout_line_carrying_the_incident_id():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(
        "INFO incidents.services incident=INC-20261123-007 severity changed to P0"
    )
    assert "ERROR incidents.services incident=INC-20261123-007 notification failed" in lines[1]
    assert "ValueError: boom" in lines[1]
    assert lines[2].endswith("INFO incidents.services incident=- tick found nothing due")
