"""An Events API trigger is answered before its incident exists; a real Celery worker, woken by
the request, declares it with the id the answer gave (integrations/ingest.py)."""

import pytest

from escalation.models import Escalation
from incidents.models import Incident, TimelineEntry
from integrations import ingest, tasks
from integrations.models import Alert, DeclarationSignal
from tests.conftest import restore_migration_data, wait_for

from . import event, make_integration, send

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]


def awaiting() -> int:
    return Alert.objects.filter(incident__isnull=True).count()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_declares_each_answered_incident_once_with_its_id(celery_worker_process):
    events = make_integration()
    try:
        answers = [send(event(events.key, dedup_key=f"disk/{n}"), declare=False) for n in range(3)]
        again = send(event(events.key, dedup_key="disk/0"), declare=False).json()
        assert [a.json()["result"] for a in answers] == ["opened"] * 3
        assert again["result"] == "appended"

        wait_for(lambda: awaiting() == 0, 30, "the worker to declare the incidents")
        # A wake-up after the worker took the last one wakes it again.
        later = send(event(events.key, dedup_key="disk/3"), declare=False).json()
        wait_for(lambda: awaiting() == 0, 30, "the worker to declare the fourth incident")

        for answer in [*(a.json() for a in answers), later]:
            incident = Incident.objects.get(public_id=answer["incident"])
            alert = incident.alerts.get()
            assert alert.dedup_key == answer["dedup_key"]
            # Its clocks start when the sender was answered, not when the worker got to it.
            assert incident.declared_at == alert.first_seen_at
            declared = incident.timeline.filter(kind=TimelineEntry.Kind.DECLARED)
            assert declared.count() == 1
            assert Escalation.objects.filter(incident=incident).exists()  # paging started
        assert Incident.objects.count() == 4
        assert Alert.objects.get(dedup_key="disk/0").count == 2
        assert "integrations.tasks.declare_alerts" in celery_worker_process.output()
    finally:
        restore_migration_data()


@pytest.mark.django_db
def test_a_lost_wake_up_is_caught_by_the_sweep():
    events = make_integration()
    # A task was asked for and lost with its broker: the signal still says one is on its way.
    DeclarationSignal.objects.create(pk=1, requested=True)
    opened = send(event(events.key, dedup_key="lost"), declare=False).json()
    assert awaiting() == 1 and DeclarationSignal.objects.get().requested

    assert tasks.declare_alerts() == {"declared": 1, "waiting": 0}  # what beat runs
    assert Incident.objects.get().public_id == opened["incident"]
    assert not DeclarationSignal.objects.get().requested  # the next opening asks again


@pytest.mark.django_db
def test_a_storm_of_openings_asks_for_one_declaring_task(django_capture_on_commit_callbacks):
    events = make_integration()
    send(event(events.key, dedup_key="warm"))  # the integration is now remembered
    with django_capture_on_commit_callbacks() as asked:
        for number in range(5):
            send(event(events.key, dedup_key=f"storm/{number}"), declare=False)
    assert len(asked) == 1 and awaiting() == 5

    tasks.declare_alerts()  # the task clears the signal before it looks for alerts
    assert awaiting() == 0
    with django_capture_on_commit_callbacks() as asked:
        send(event(events.key, dedup_key="after"), declare=False)
    assert len(asked) == 1


@pytest.mark.django_db
def test_an_alert_that_cannot_be_declared_holds_up_no_other(monkeypatch):
    events = make_integration()
    first = send(event(events.key, dedup_key="broken"), declare=False).json()
    second = send(event(events.key, dedup_key="fine"), declare=False).json()
    declare = ingest._declare_alert

    def breaks_on_the_first(alert):
        if alert.dedup_key == "broken":
            raise RuntimeError("a bug")
        return declare(alert)

    monkeypatch.setattr(ingest, "_declare_alert", breaks_on_the_first)
    assert tasks.declare_alerts() == {"declared": 1, "waiting": 1}
    assert Incident.objects.filter(public_id=second["incident"]).exists()
    assert Alert.objects.get(dedup_key="broken").incident is None

    monkeypatch.undo()  # fixed: the next sweep declares it
    assert tasks.declare_alerts() == {"declared": 1, "waiting": 0}
    assert Incident.objects.filter(public_id=first["incident"]).exists()
