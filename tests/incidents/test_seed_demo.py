"""`manage.py seed_demo`: a living portal from an empty database, and nothing twice."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from incidents.demo import DEFAULT_DEMO_PASSWORD
from incidents.models import (
    ChecklistItem,
    Incident,
    IncidentRole,
    IncidentType,
    Service,
    SeverityLevel,
    Status,
    TimelineEntry,
)
from ops.groups import ALL_GROUPS, SECURITY_TEAM, VIEWER

pytestmark = pytest.mark.django_db

# A Tuesday afternoon, inside the default calendar's working hours.
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)

SECURITY_TITLE = "Admin console logins from an unknown IP range"


@pytest.fixture(autouse=True)
def demo_settings(settings):
    settings.DEBUG = True  # seed_demo refuses to run in production
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    models = (
        get_user_model(),
        Incident,
        TimelineEntry,
        IncidentRole,
        ChecklistItem,
        Service,
        SeverityLevel,
        IncidentType,
        Incident.history.model,
    )
    return {model.__name__: model.objects.count() for model in models}


def member(group: str):
    return get_user_model().objects.filter(groups__name=group).order_by("username").first()


def test_running_it_twice_creates_nothing_new(clock):
    seed()
    first = counts()
    clock.shift(3600)

    output = seed()

    assert counts() == first
    assert first["Incident"] == 9
    assert "Created incidents" not in output
    assert "Already there: INC-" in output


def test_it_loads_the_default_policy_into_an_empty_portal():
    seed()

    assert list(SeverityLevel.objects.values_list("code", flat=True)) == ["P0", "P1", "P2", "P3"]
    assert IncidentType.objects.filter(slug="security-breach").exists()


def test_every_group_has_staff_users_who_log_in_with_the_shared_password(client):
    seed()

    for name in ALL_GROUPS:
        users = get_user_model().objects.filter(groups__name=name)
        assert users.count() >= 2, name
        assert all(user.is_staff and user.email and user.get_full_name() for user in users)
    assert client.login(username=member(VIEWER).username, password=DEFAULT_DEMO_PASSWORD)


def test_the_password_comes_from_the_option_then_the_environment(client, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-env-456")
    output = seed()
    assert "password: from-the-env-456" in output
    assert client.login(username="demo.rosa", password="from-the-env-456")

    output = seed("--password", "from-the-option-789")

    assert "password: from-the-option-789" in output
    assert client.login(username="demo.rosa", password="from-the-option-789")


def test_it_prints_a_table_of_the_logins():
    output = seed()

    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("login"))
    assert header.split() == ["login", "name", "groups", "email"]
    assert any(line.startswith("demo.sofia") and "Security Team" in line for line in lines)


def test_the_security_incident_is_hidden_from_a_viewer():
    seed()
    incident = Incident.objects.get(title=SECURITY_TITLE)

    assert incident.is_security
    assert incident not in Incident.objects.visible_to(member(VIEWER))
    assert incident in Incident.objects.visible_to(member(SECURITY_TEAM))
    assert Incident.objects.visible_to(member(VIEWER)).count() == 8


def test_incidents_are_in_at_least_four_statuses():
    seed()

    statuses = set(Incident.objects.values_list("status", flat=True))

    assert len(statuses) >= 4
    assert {Status.RESOLVED, Status.CLOSED, Status.INVESTIGATING} <= statuses


def test_the_p0_is_open_and_breached():
    seed()

    p0 = Incident.objects.get(severity__code="P0")

    assert p0.is_open
    assert p0 in Incident.objects.breached(T0)
    assert p0.acknowledged_at > p0.ack_due_at  # acknowledged late
    assert p0.declared_at < T0


def test_every_incident_has_a_timeline_in_the_recent_past():
    seed()

    for incident in Incident.objects.all():
        kinds = list(incident.timeline.values_list("kind", flat=True))
        assert TimelineEntry.Kind.DECLARED in kinds, incident.title
        assert all(at <= T0 for at in incident.timeline.values_list("at", flat=True))
    note_kinds = set(
        TimelineEntry.objects.filter(kind=TimelineEntry.Kind.NOTE).values_list(
            "note_kind", flat=True
        )
    )
    assert len(note_kinds) >= 4
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.CHECKLIST_DONE).exists()
    assert TimelineEntry.objects.filter(kind=TimelineEntry.Kind.ROLE_ASSIGNED).exists()


def test_it_refuses_to_run_in_production(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DEBUG=true"):
        seed()

    assert not get_user_model().objects.filter(username__startswith="demo.").exists()
    assert not Group.objects.get(name=VIEWER).user_set.exists()


def test_a_long_p1_from_four_days_ago_has_an_overdue_half_written_review(clock):
    from incidents.models import Review

    seed()

    review = Review.objects.get(
        incident__title="Session cache evictions log users out every few minutes"
    )
    assert review.required and review.reasons == [
        "P1 lasting 5 hours 0 minutes (over 4 hours 0 minutes)"
    ]
    assert review.is_overdue(datetime.now(UTC))
    assert review.primary_cause and not review.lessons_learned
    assert review.action_items.count() == 2
