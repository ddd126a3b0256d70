"""The cadence as plain Python: due times from the severity, the commander's reminder, the
scheduled stakeholder email and the status page's first post, each exactly once; and war rooms."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from comms import cadence, services, war_room
from comms.models import (
    Audience,
    CommsSettings,
    IncidentComms,
    IncidentUpdate,
    Notification,
    Stakeholder,
    StakeholderList,
)
from comms.services import UpdateInput
from escalation import engine
from incidents import services as incident_services
from incidents.models import IncidentRole, TimelineEntry
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def cora():
    return UserFactory(username="cora", email="cora@example.com", first_name="Cora")


@pytest.fixture
def executives():
    listing = StakeholderList.objects.create(name="Executives")
    listing.severities.set([severity("P0"), severity("P1")])
    Stakeholder.objects.create(stakeholder_list=listing, email="ceo@example.com")
    return listing


def declared(cora, code="P0", **kwargs):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code=code, by=cora, **kwargs)
        incident_services.assign_role(incident, IncidentRole.Role.COMMANDER, cora, by=cora)
    return incident


def run(at):
    with time_machine.travel(at, tick=False):
        return cadence.run_due().as_dict()


def state(incident) -> IncidentComms:
    return IncidentComms.objects.get(incident=incident)


def test_due_times_follow_the_severity_of_the_runbook(cora):
    p0, p1, p2 = declared(cora, "P0"), declared(cora, "P1"), declared(cora, "P2")
    assert (
        state(p0).next_update_due_at,
        state(p0).next_status_page_due_at,
        state(p0).next_stakeholder_due_at,
    ) == (T0 + timedelta(minutes=30), T0 + timedelta(minutes=15), T0 + timedelta(minutes=30))
    assert (
        state(p1).next_update_due_at,
        state(p1).next_status_page_due_at,
        state(p1).next_stakeholder_due_at,
    ) == (T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(hours=4))
    assert state(p2).next_update_due_at is None and state(p2).next_status_page_due_at is None
    assert state(p2).is_public is False and state(p0).is_public is True

    # A severity change re-plans from the declaration.
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        incident_services.change_severity(p2, severity("P0"), by=cora, reason="worse")
    assert state(p2).next_update_due_at == T0 + timedelta(minutes=30)


def test_the_commander_is_reminded_once_before_each_update_is_due(
    cora, smtp_server, django_capture_on_commit_callbacks
):
    incident = declared(cora, "P1")
    with django_capture_on_commit_callbacks(execute=True):
        assert run(T0 + timedelta(minutes=54))["reminders"] == 0
        assert run(T0 + timedelta(minutes=55))["reminders"] == 1  # five minutes before
        assert run(T0 + timedelta(minutes=56))["reminders"] == 0
    deliver_pending()
    assert [m["Subject"] for m in smtp_server.messages] == [
        f"Due: update for {incident.public_id} (P1) at 13:00 UTC"
    ]
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert f"/admin/incidents/incident/{incident.pk}/post-update/" in body

    # The update is posted late; the next one is due an hour after it, with its own reminder.
    with time_machine.travel(T0 + timedelta(minutes=70), tick=False):
        services.post_update(incident, UpdateInput(progress="Found it."), by=cora)
    assert state(incident).next_update_due_at == T0 + timedelta(minutes=130)
    assert run(T0 + timedelta(minutes=125))["reminders"] == 1


def test_an_update_left_unwritten_shows_as_overdue(cora):
    incident = declared(cora, "P0")
    now = T0 + timedelta(minutes=31)
    late = cadence.overdue(state(incident), now)
    assert [item.what for item in late] == ["Update", "Stakeholder email", "Status page"]
    from incidents.models import Incident

    assert list(Incident.objects.filter(cadence.overdue_filter(now))) == [incident]
    assert not Incident.objects.filter(cadence.overdue_filter(T0 + timedelta(minutes=10))).exists()


def test_stakeholders_hear_on_time_even_if_nobody_writes(
    cora, executives, smtp_server, django_capture_on_commit_callbacks
):
    incident = declared(cora, "P0")
    with django_capture_on_commit_callbacks(execute=True):
        assert run(T0 + timedelta(minutes=29))["stakeholder_emails"] == 0
        assert run(T0 + timedelta(minutes=30))["stakeholder_emails"] == 1
        assert run(T0 + timedelta(minutes=31))["stakeholder_emails"] == 0
    deliver_pending()
    to_ceo = [m for m in smtp_server.messages if m["To"] == "ceo@example.com"]
    assert len(to_ceo) == 1
    # Nothing public was written yet: the runbook's "investigating" words went out.
    assert "INVESTIGATING: We are aware of an issue" in to_ceo[0].get_body(("plain",)).get_content()
    # P0 then every 30 minutes, with the latest public text.
    assert state(incident).next_stakeholder_due_at == T0 + timedelta(minutes=60)
    with time_machine.travel(T0 + timedelta(minutes=40), tick=False):
        services.post_update(
            incident,
            UpdateInput(progress="db", public_text="Payments are failing; a fix is rolling out."),
            by=cora,
        )
    smtp_server.envelopes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        # The update itself went to stakeholders at 12:40, so the next is due at 13:10.
        assert run(T0 + timedelta(minutes=60))["stakeholder_emails"] == 0
        assert run(T0 + timedelta(minutes=70))["stakeholder_emails"] == 1
    deliver_pending()
    scheduled = [m for m in smtp_server.messages if m["To"] == "ceo@example.com"]
    assert len(scheduled) == 2  # the update at 12:40 and the scheduled one at 13:10
    assert "a fix is rolling out" in scheduled[-1].get_body(("plain",)).get_content()


def test_a_public_incident_gets_the_investigating_post_at_its_status_page_deadline(cora):
    incident = declared(cora, "P0")
    assert run(T0 + timedelta(minutes=14))["status_posts"] == 0
    assert run(T0 + timedelta(minutes=15))["status_posts"] == 1
    assert run(T0 + timedelta(minutes=16))["status_posts"] == 0
    post = incident.updates.get()
    assert post.kind == IncidentUpdate.Kind.SCHEDULED
    assert post.public_text.startswith("INVESTIGATING: We are aware of an issue")
    assert state(incident).last_status_post_at == T0 + timedelta(minutes=15)
    assert incident.communications.filter(audience=Audience.PUBLIC).count() == 1


def test_a_security_incident_never_goes_public(cora):
    incident = declared(cora, "P0", is_security=True)
    assert state(incident).is_public is False
    assert run(T0 + timedelta(hours=1))["status_posts"] == 0
    with pytest.raises(incident_services.IncidentError):
        services.set_public_face(incident, is_public=True, title="x", impact="", by=cora)


# --- War rooms -------------------------------------------------------------------------------


def test_every_p0_gets_a_war_room_from_the_link_template(cora):
    CommsSettings.objects.create(war_room_link="https://meet.example.com/{id}-{slug}")
    incident = declared(cora, "P0")
    room = state(incident)
    assert room.war_room_url == f"https://meet.example.com/{incident.public_id}-checkout-is-down"
    assert room.war_room_reason == "every P0 gets a war room"
    assert incident.timeline.filter(
        kind=TimelineEntry.Kind.COMMUNICATION, body__startswith="War room opened"
    ).exists()


def test_the_default_link_is_the_runbooks_channel_name(cora):
    incident = declared(cora, "P0")
    assert state(incident).war_room_url == "#incident-2026-03-11-checkout-is-down"


def test_a_lone_p1_has_none_but_a_second_concurrent_one_does(cora):
    first = declared(cora, "P1")
    second = declared(cora, "P1")
    p2 = declared(cora, "P2")
    assert state(first).war_room_opened_at is None
    assert state(second).war_room_reason == f"concurrent with {first.public_id}"
    assert state(p2).war_room_opened_at is None
    assert war_room.rule_for(declared(cora, "P3", is_security=True)) == "security incident"


def test_a_p1_escalated_to_the_manager_opens_one_announced_in_the_alert(
    organisation, smtp_server, django_capture_on_commit_callbacks
):
    cora = organisation["olive"]
    incident = declared(cora, "P1")
    assert state(incident).war_room_opened_at is None
    # P1: the manager is paged after 4 hours unresolved.
    with django_capture_on_commit_callbacks(execute=True):
        for at in (T0, T0 + timedelta(hours=2), T0 + timedelta(hours=4)):
            with time_machine.travel(at, tick=False):
                engine.run_due()
    deliver_pending()
    room = state(incident)
    assert room.war_room_reason == "escalated to the Engineering Manager"
    to_manager = [m for m in smtp_server.messages if m["To"] == "em@example.com"]
    assert len(to_manager) == 1
    assert f"War Room: {room.war_room_url}" in to_manager[0].get_body(("plain",)).get_content()
    # Earlier alerts, sent before the room existed, did not announce one.
    first_alerts = [m for m in smtp_server.messages if m["To"] != "em@example.com"]
    assert first_alerts and all(
        "War Room:" not in m.get_body(("plain",)).get_content() for m in first_alerts[:1]
    )


def test_the_initial_alert_of_a_p0_names_its_war_room(
    organisation, smtp_server, django_capture_on_commit_callbacks
):
    incident = declared(organisation["olive"], "P0")
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(T0, tick=False):
        engine.run_due()
    deliver_pending()
    assert smtp_server.messages
    for message in smtp_server.messages:
        text = message.get_body(("plain",)).get_content()
        assert "War Room: #incident-2026-03-11-checkout-is-down" in text
        assert "DO NOT REPLY - Use war room for coordination." in text
        assert message["Subject"].startswith(f"INCIDENT ALERT - P0 {incident.public_id}")
    logged = incident.communications.get(template="initial_alert", channel="email")
    assert logged.recipient_count == len(smtp_server.messages)
    assert set(logged.notifications.values_list("state", flat=True)) == {Notification.State.SENT}


def test_with_nobody_subscribed_the_schedule_moves_on_without_noise(cora):
    incident = declared(cora, "P0")
    assert run(T0 + timedelta(minutes=30))["stakeholder_emails"] == 1
    assert not incident.communications.filter(audience=Audience.STAKEHOLDERS).exists()
    assert not incident.timeline.filter(body__startswith="Scheduled stakeholder email").exists()
    assert state(incident).next_stakeholder_due_at == T0 + timedelta(minutes=60)
