"""The cadence through real processes: Celery beat wakes the cadence job, a real worker sends
the stakeholder email nobody wrote and the commander's reminder through a real SMTP server,
each exactly once however many times beat wakes it."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from comms.models import IncidentComms, Notification, Stakeholder, StakeholderList
from incidents import services as incident_services
from incidents.models import IncidentRole
from tests.conftest import CeleryProcess, restore_migration_data, wait_for
from tests.incidents.factories import UserFactory, severity

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]


@pytest.fixture
def processes(smtp_server, redis_flushed, tmp_path, transactional_db):
    env = {
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
        "COMMS_CADENCE_SECONDS": "1",
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    started: list[CeleryProcess] = []

    def start(*args: str) -> CeleryProcess:
        process = CeleryProcess(*args, env=env, log_path=tmp_path / f"{args[0]}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


def test_beat_and_a_worker_keep_the_promise_when_nobody_writes(processes, smtp_server):
    restore_migration_data()
    cora = UserFactory(username="cora", email="cora@example.com")
    listing = StakeholderList.objects.create(name="Executives")
    listing.severities.set([severity("P0")])
    Stakeholder.objects.create(stakeholder_list=listing, email="ceo@example.com")
    # Declared 31 minutes ago and not a word since: the stakeholder email (due at 30 minutes)
    # and the commander's update (due at 30 minutes) are both late.
    declared_at = timezone.now() - timedelta(minutes=31)
    incident = incident_services.declare_incident(
        title="Checkout is down", severity=severity("P0"), by=cora, now=declared_at
    )
    incident_services.assign_role(
        incident, IncidentRole.Role.COMMANDER, cora, by=cora, now=declared_at
    )

    worker = processes(
        "worker", "--queues", "default,notifications", "--concurrency", "2", "--without-gossip"
    )
    beat = processes("beat", "--pidfile=")
    wait_for(
        lambda: (
            {"ceo@example.com", "cora@example.com"} <= {m["To"] for m in smtp_server.messages}
            or worker.proc.poll() is not None
            or beat.proc.poll() is not None
        ),
        timeout=60,
        what="the scheduled stakeholder email and the commander's reminder",
    )
    assert worker.proc.poll() is None, worker.output()
    # Let beat wake the job a few more times: nothing more is owed, so nothing more is sent.
    runs = worker.output().count("comms.tasks.run_cadence")
    wait_for(
        lambda: worker.output().count("comms.tasks.run_cadence") >= runs + 6,
        timeout=30,
        what="three more cadence runs",
    )

    to = sorted(m["To"] for m in smtp_server.messages if "INCIDENT ALERT" not in m["Subject"])
    assert to == ["ceo@example.com", "cora@example.com"]
    ceo = next(m for m in smtp_server.messages if m["To"] == "ceo@example.com")
    assert "INVESTIGATING: We are aware of an issue" in ceo.get_body(("plain",)).get_content()
    assert ceo["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    reminder = next(
        m
        for m in smtp_server.messages
        if m["To"] == "cora@example.com" and "update for" in m["Subject"]
    )
    assert reminder["Subject"].startswith(f"OVERDUE: update for {incident.public_id}")
    state = IncidentComms.objects.get(incident=incident)
    assert state.next_stakeholder_due_at > timezone.now()  # the next one, 30 minutes on
    assert not Notification.objects.exclude(state=Notification.State.SENT).exists()
