"""The engine as plain Python: run_due against PostgreSQL, time moved with time-machine."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from comms.models import Notification
from escalation import engine
from escalation.models import Escalation, EscalationPolicy, FiredStep
from incidents import services
from incidents.models import TimelineEntry
from tests.incidents.factories import UserFactory, declare, severity

pytestmark = pytest.mark.django_db

# Wednesday 11 March 2026: the tenth weekly shift, otto's.
T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def fired(incident) -> list[tuple[str, int]]:
    return [
        (key.split(".", 1)[1], rep)
        for key, rep in FiredStep.objects.filter(incident=incident)
        .order_by("fired_at", "pk")
        .values_list("step_key", "repetition")
    ]


def recipients(incident) -> set[str]:
    return set(
        Notification.objects.filter(incident=incident, channel="email").values_list(
            "recipient", flat=True
        )
    )


def escalations(incident) -> list[str]:
    return list(
        incident.timeline.filter(kind=TimelineEntry.Kind.ESCALATED)
        .order_by("pk")
        .values_list("body", flat=True)
    )


def run_at(at: datetime):
    with time_machine.travel(at, tick=False):
        return engine.run_due()


def test_a_p0_pages_on_call_and_both_leads_at_once_and_only_once(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")

    first = run_at(T0)
    again = run_at(T0 + timedelta(seconds=5))

    assert fired(incident) == [("p0-immediate", 0)]
    assert recipients(incident) == {
        "otto@example.com",
        "dev@example.com",
        "back@example.com",
    }
    assert (first.fired, first.notifications) == (1, 3)
    assert (again.fired, again.notifications) == (0, 0)
    [entry] = escalations(incident)
    otto = organisation["otto"].get_full_name()
    assert f"Notified {otto} (On-Call Engineer)" in entry
    assert "(DevOps Lead)" in entry and "(Backend Lead)" in entry and entry.endswith("by email.")
    # Next wake-up: the backup at the 15-minute acknowledgement SLA.
    assert Escalation.objects.get(incident=incident).next_due_at == T0 + timedelta(minutes=15)


def test_acknowledging_stops_the_backup_page_but_not_the_unresolved_steps(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    run_at(T0)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        services.acknowledge_incident(incident, by=organisation["otto"])

    for minutes in (15, 16, 60, 120, 240):
        run_at(T0 + timedelta(minutes=minutes))

    assert fired(incident) == [("p0-immediate", 0), ("p0-manager", 0), ("p0-cto", 0)]
    assert "bea@example.com" not in recipients(incident)


def test_not_acknowledged_in_fifteen_minutes_pages_the_backup(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    run_at(T0)
    assert run_at(T0 + timedelta(minutes=14, seconds=59)).fired == 0
    run_at(T0 + timedelta(minutes=15))
    assert fired(incident)[-1] == ("p0-backup", 0)
    assert "bea@example.com" in recipients(incident)


def test_resolving_stops_everything(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    run_at(T0)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        services.resolve_incident(incident, by=organisation["otto"])
    assert Escalation.objects.get(incident=incident).next_due_at is None
    assert run_at(T0 + timedelta(hours=5)).fired == 0
    assert fired(incident) == [("p0-immediate", 0)]


def test_a_gap_in_the_rotation_falls_through_to_the_next_step_at_once(organisation):
    organisation["primary"].members.all().delete()  # nobody on call any more
    with time_machine.travel(T0, tick=False):
        incident = declare("Login fails", code="P1")

    run_at(T0)

    # P1: the on-call engineer at once, team leads after two hours: with nobody on call the
    # leads are paged now, and the timeline says why. (Nobody holds Frontend Lead: that gap is
    # reported, but the step reached two leads, so it does not fall through further.)
    assert fired(incident) == [("p1-oncall", 0), ("p1-leads", 0)]
    gap, fell = escalations(incident)
    assert "GAP" in gap and "nobody" in gap
    assert "fell through" in fell and "Frontend Lead: nobody" in fell
    assert {"dev@example.com", "back@example.com"} <= recipients(incident)
    # The leads' own due time later does not page them again.
    run_at(T0 + timedelta(hours=2))
    assert fired(incident).count(("p1-leads", 0)) == 1


def test_raising_severity_replans_from_declaration_without_repeating_fired_steps(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Slow API", code="P1")
    run_at(T0)
    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        services.change_severity(incident, severity("P0"), by=organisation["dev"])
    run_at(T0 + timedelta(hours=3))

    # P0 steps whose time has passed fire now: immediate, backup (not acknowledged), manager;
    # the CTO step is at 4 hours.
    assert fired(incident) == [
        ("p1-oncall", 0),
        ("p0-immediate", 0),
        ("p0-backup", 0),
        ("p0-manager", 0),
    ]
    assert any("re-planned" in body for body in escalations(incident))
    assert Escalation.objects.get(incident=incident).next_due_at == T0 + timedelta(hours=4)


def test_a_security_flag_set_later_pages_the_security_team(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Odd logins", code="P2")
    run_at(T0)
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        services.set_flags(incident, is_security=True, by=organisation["dev"])
    run_at(T0 + timedelta(minutes=30))
    assert ("flag-security", 0) in fired(incident)
    assert "sec@example.com" in recipients(incident)


def test_editing_the_policy_does_not_change_an_escalation_in_flight(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    policy = EscalationPolicy.objects.get(severity__code="P0")
    policy.steps.filter(key="p0-cto").update(targets=["email:someone@elsewhere.example"])

    run_at(T0 + timedelta(hours=4))

    assert "cto@example.com" in recipients(incident)
    assert "someone@elsewhere.example" not in recipients(incident)
    # A new incident follows the edited policy.
    with time_machine.travel(T0, tick=False):
        later = declare("Second outage", code="P0")
    run_at(T0 + timedelta(hours=4))
    assert "someone@elsewhere.example" in recipients(later)


def test_a_late_tick_fires_each_step_once_and_the_latest_repetition_only(organisation):
    severity("P1")
    policy = EscalationPolicy.objects.get(severity__code="P1")
    policy.steps.filter(key="p1-oncall").update(repeat_every=timedelta(minutes=5), repeat_times=3)
    with time_machine.travel(T0, tick=False):
        incident = declare("Queue backlog", code="P1")

    run_at(T0 + timedelta(minutes=12))  # the tick was down for twelve minutes

    assert fired(incident) == [("p1-oncall", 2)]
    run_at(T0 + timedelta(minutes=15))
    assert fired(incident) == [("p1-oncall", 2), ("p1-oncall", 3)]


def test_a_p3_has_no_escalation_and_nothing_is_due(organisation):
    with time_machine.travel(T0, tick=False):
        incident = declare("Typo on the pricing page", code="P3")
    assert Escalation.objects.get(incident=incident).next_due_at is None
    assert run_at(T0 + timedelta(days=2)).fired == 0


def test_stalls_are_reported_once_due_work_is_a_minute_late(organisation):
    with time_machine.travel(T0, tick=False):
        declare("Checkout is down", code="P0")
        assert engine.stalled()["count"] == 0
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        assert engine.stalled()["count"] == 1
    run_at(T0 + timedelta(seconds=61))
    with time_machine.travel(T0 + timedelta(seconds=62), tick=False):
        assert engine.stalled()["count"] == 0


def test_a_person_without_an_email_address_is_reported_not_dropped(organisation):
    organisation["dev"].email = ""
    organisation["dev"].save()
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0", by=UserFactory())
    run_at(T0)
    [entry] = escalations(incident)
    assert "no email address" in entry


def test_webhooks_get_one_post_per_firing_naming_who_was_paged(organisation):
    from comms.models import Webhook

    chat = Webhook.objects.create(name="Ops chat", url="http://127.0.0.1:9/hook", format="slack")
    Webhook.objects.create(name="Paused", url="http://127.0.0.1:9/off", is_active=False)
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    run_at(T0)

    [post] = Notification.objects.filter(incident=incident, channel="webhook")
    assert post.recipient == f"webhook:{chat.pk}"
    assert post.payload["event"] == "escalation.step_fired"
    assert post.payload["incident"]["id"] == incident.public_id
    assert post.payload["recipients"] == sorted(
        ["otto@example.com", "dev@example.com", "back@example.com"]
    )
    assert "INCIDENT ALERT - P0" in post.payload["text"]
    assert escalations(incident)[0].endswith("by email, webhook.")


def test_a_policy_that_goes_round_again_pages_again_until_acknowledged(organisation):
    severity("P1")
    policy = EscalationPolicy.objects.get(severity__code="P1")
    policy.repeat_from, policy.repeat_cycles, policy.repeat_gap = 1, 2, timedelta(minutes=30)
    policy.save()
    policy.steps.exclude(key="p1-oncall").delete()  # one step: page on call, twice more
    with time_machine.travel(T0, tick=False):
        incident = declare("Queue backlog", code="P1")

    run_at(T0)
    run_at(T0 + timedelta(minutes=30))
    with time_machine.travel(T0 + timedelta(minutes=45), tick=False):
        services.acknowledge_incident(incident, by=organisation["otto"])
    run_at(T0 + timedelta(minutes=60))

    assert fired(incident) == [("p1-oncall", 0), ("p1-oncall~1", 0)]
    assert Escalation.objects.get(incident=incident).next_due_at is None


def test_the_incident_page_shows_the_escalation_and_each_delivery(organisation, admin_client):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P0")
    run_at(T0)
    Notification.objects.filter(recipient="dev@example.com").update(
        state="failed", last_error="550 mailbox unavailable"
    )

    page = admin_client.get(f"/admin/incidents/incident/{incident.pk}/change/").content.decode()

    assert "Follows <strong>P0 Critical</strong>" in page
    assert "P0 not acknowledged within its 15-minute SLA: backup on call" in page  # next
    assert "550 mailbox unavailable" in page and "Failed" in page
    assert "otto@example.com" in page
