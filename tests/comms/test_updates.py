"""Posting an update and resolving: what each audience receives through a real SMTP server,
and what the portal keeps (the update, the timeline, the communication log)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from comms import outbox, services
from comms.models import (
    Audience,
    Communication,
    IncidentComms,
    IncidentUpdate,
    Notification,
    Stakeholder,
    StakeholderList,
)
from comms.services import UpdateInput
from incidents import services as incident_services
from incidents.models import IncidentRole, Service, Status, TimelineEntry
from incidents.services import IncidentError
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def people():
    return {
        name: UserFactory(username=name, email=f"{name}@example.com", first_name=name.title())
        for name in ("cora", "rob", "vic")
    }


@pytest.fixture
def executives():
    """Subscribed to P0 and P1 for every service; one member has unsubscribed."""
    listing = StakeholderList.objects.create(name="Executives")
    listing.severities.set([severity("P0"), severity("P1")])
    for address in ("ceo@example.com", "cfo@example.com"):
        Stakeholder.objects.create(stakeholder_list=listing, email=address)
    Stakeholder.objects.create(
        stakeholder_list=listing, email="gone@example.com", unsubscribed_at=T0
    )
    return listing


def incident_with_commander(people, code="P0", **kwargs):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code=code, by=people["cora"], **kwargs)
        incident_services.assign_role(
            incident, IncidentRole.Role.COMMANDER, people["cora"], by=people["cora"]
        )
        incident_services.assign_role(
            incident, IncidentRole.Role.RESPONDER, people["rob"], by=people["cora"]
        )
    return incident


def post(incident, at, by, **fields):
    with time_machine.travel(at, tick=False):
        return services.post_update(incident, UpdateInput(**fields), by=by)


def by_recipient(smtp_server) -> dict:
    return {message["To"]: message for message in smtp_server.messages}


def test_an_update_reaches_responders_stakeholders_and_the_status_page(
    people, executives, smtp_server, django_capture_on_commit_callbacks
):
    incident = incident_with_commander(people)
    with django_capture_on_commit_callbacks(execute=True):
        update, sent = post(
            incident,
            T0 + timedelta(minutes=20),
            people["cora"],
            status=Status.IDENTIFIED,
            progress="Connection pool exhausted on db-7.",
            next_steps="Raise the pool size and restart.",
            eta="20 minutes",
            impact="All checkouts fail.",
            public_text="We have identified the cause of failed checkouts and are fixing it.",
        )
    deliver_pending()

    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED
    assert (sent.responders, sent.stakeholders, sent.status_page) == (2, 2, True)
    assert update.audiences == [Audience.INTERNAL, Audience.STAKEHOLDERS, Audience.PUBLIC]

    mail = by_recipient(smtp_server)
    assert set(mail) == {
        "cora@example.com",
        "rob@example.com",
        "ceo@example.com",
        "cfo@example.com",
    }
    internal = mail["rob@example.com"]
    assert internal["Subject"] == f"INCIDENT UPDATE - P0 {incident.public_id}: IDENTIFIED"
    text = internal.get_body(("plain",)).get_content()
    html = internal.get_body(("html",)).get_content()
    assert "Progress: Connection pool exhausted on db-7." in text
    assert "Next Steps: Raise the pool size and restart." in text
    assert "ETA: 20 minutes" in text
    assert "Next update: 12:50 UTC or when resolved" in text  # 30 min after this update
    assert "Connection pool exhausted on db-7." in html

    # Stakeholders get the public words only, with their own one-click unsubscribe.
    ceo = mail["ceo@example.com"]
    body = ceo.get_body(("plain",)).get_content()
    assert "We have identified the cause of failed checkouts" in body
    assert "db-7" not in body and "db-7" not in ceo.get_body(("html",)).get_content()
    assert ceo["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = ceo["List-Unsubscribe"].strip(" <>")
    assert unsubscribe.startswith("http") and unsubscribe in body
    assert unsubscribe != mail["cfo@example.com"]["List-Unsubscribe"].strip(" <>")

    # Everything about one incident threads together, per audience.
    assert internal["In-Reply-To"] == internal["References"]
    assert incident.public_id in internal["References"]
    assert ceo["References"] != internal["References"]

    log = {(c.audience, c.channel): c for c in Communication.objects.filter(incident=incident)}
    assert set(log) == {
        (Audience.INTERNAL, "email"),
        (Audience.STAKEHOLDERS, "email"),
        (Audience.PUBLIC, "status_page"),
    }
    assert log[(Audience.STAKEHOLDERS, "email")].recipient_count == 2
    assert log[(Audience.INTERNAL, "email")].author == people["cora"]
    assert set(log[(Audience.INTERNAL, "email")].notifications.values_list("state", flat=True)) == {
        Notification.State.SENT
    }

    timeline = list(incident.timeline.order_by("pk").values_list("kind", "body"))
    assert any(kind == "note" and "Connection pool exhausted" in body for kind, body in timeline)
    assert any(
        body == "Update sent to 2 responders, 2 stakeholders, the status page."
        for _, body in timeline
    )


def test_a_p1_early_update_stays_internal_and_stakeholders_join_before_their_deadline(
    people, executives, smtp_server, django_capture_on_commit_callbacks
):
    incident = incident_with_commander(people, code="P1")
    with django_capture_on_commit_callbacks(execute=True):
        _, early = post(incident, T0 + timedelta(hours=1), people["cora"], progress="Looking.")
    # P1: stakeholders are emailed after 4 hours; the update before that is due from 3 h on.
    with django_capture_on_commit_callbacks(execute=True):
        _, later = post(
            incident,
            T0 + timedelta(hours=3, minutes=5),
            people["cora"],
            progress="Still looking.",
            public_text="Checkout is slow for some customers.",
        )
    deliver_pending()
    assert (early.stakeholders, later.stakeholders) == (0, 2)
    assert "ceo@example.com" in by_recipient(smtp_server)


def test_resolving_from_anywhere_sends_the_resolution_notice_to_everyone_who_heard(
    people, executives, smtp_server, django_capture_on_commit_callbacks
):
    incident = incident_with_commander(people)
    with django_capture_on_commit_callbacks(execute=True):
        post(
            incident,
            T0 + timedelta(minutes=10),
            people["cora"],
            progress="Found it.",
            public_text="Checkout is failing; we are on it.",
        )
    deliver_pending()
    smtp_server.envelopes.clear()

    with (
        django_capture_on_commit_callbacks(execute=True),
        time_machine.travel(T0 + timedelta(minutes=45), tick=False),
    ):
        incident_services.resolve_incident(incident, by=people["cora"])
    deliver_pending()

    mail = by_recipient(smtp_server)
    assert set(mail) == {
        "cora@example.com",
        "rob@example.com",
        "ceo@example.com",
        "cfo@example.com",
    }
    assert mail["rob@example.com"]["Subject"].startswith(
        f"INCIDENT RESOLVED - P0 {incident.public_id}"
    )
    assert "Duration: 45m" in mail["rob@example.com"].get_body(("plain",)).get_content()
    ceo = mail["ceo@example.com"]
    assert ceo["Subject"] == "[RESOLVED] Service Disruption - 2026-03-11"
    assert "from 12:00 to 12:45 UTC" in ceo.get_body(("plain",)).get_content()

    resolution = incident.updates.get(kind=IncidentUpdate.Kind.RESOLUTION)
    assert resolution.public_text.startswith("RESOLVED: The issue has been resolved.")
    state = IncidentComms.objects.get(incident=incident)
    assert state.next_update_due_at is None and state.next_stakeholder_due_at is None


def test_an_update_that_resolves_is_the_resolution_notice_with_its_words(
    people, smtp_server, django_capture_on_commit_callbacks
):
    incident = incident_with_commander(people, code="P2")
    with django_capture_on_commit_callbacks(execute=True):
        update, _ = post(
            incident,
            T0 + timedelta(hours=2),
            people["cora"],
            status=Status.RESOLVED,
            progress="Rolled back release 4.2.",
        )
    deliver_pending()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert update.kind == IncidentUpdate.Kind.RESOLUTION
    assert incident.updates.count() == 1
    subjects = {m["Subject"] for m in smtp_server.messages}
    assert subjects == {f"INCIDENT RESOLVED - P2 {incident.public_id}: Checkout is down"}
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert "Resolution: Rolled back release 4.2." in body


def test_posting_twice_in_one_transaction_retry_sends_each_message_once(
    people, smtp_server, django_capture_on_commit_callbacks
):
    incident = incident_with_commander(people, code="P1")
    with django_capture_on_commit_callbacks(execute=True):
        update, _ = post(incident, T0 + timedelta(minutes=5), people["cora"], progress="One.")
    # A second send of the same update (a retried task, a double submit of the same row)
    # writes no second row: the outbox is unique per reason, recipient and channel.
    with time_machine.travel(T0 + timedelta(minutes=6), tick=False):
        services.send_update(
            incident, update, audiences=[Audience.INTERNAL], by=None, now=T0 + timedelta(minutes=6)
        )
    assert Notification.objects.filter(reason=f"update:{update.pk}").count() == 2
    deliver_pending()
    assert sorted(m["To"] for m in smtp_server.messages) == ["cora@example.com", "rob@example.com"]


def test_bad_updates_are_refused_with_a_reason(people):
    incident = incident_with_commander(people, code="P2")  # no status-page deadline: internal
    with pytest.raises(IncidentError, match="Write what changed"):
        post(incident, T0, people["cora"])
    with pytest.raises(IncidentError, match="not on the status page"):
        post(
            incident,
            T0,
            people["cora"],
            public_text="Hello",
            audiences=(Audience.PUBLIC,),
        )
    secret = incident_with_commander(people, code="P0", is_security=True)
    with pytest.raises(IncidentError, match="not on the status page"):
        post(secret, T0, people["cora"], public_text="x", audiences=(Audience.PUBLIC,))
    assert IncidentUpdate.objects.count() == 0


def test_stakeholders_follow_severity_and_service_subscriptions(people):
    payments = Service.objects.create(name="Payments")
    search = Service.objects.create(name="Search")
    listing = StakeholderList.objects.create(name="Payments team")
    listing.severities.set([severity("P1")])
    listing.services.set([payments])
    Stakeholder.objects.create(stakeholder_list=listing, email="pay@example.com")
    everything = StakeholderList.objects.create(name="Support")
    everything.severities.set([severity("P1")])
    Stakeholder.objects.create(stakeholder_list=everything, email="PAY@example.com")
    Stakeholder.objects.create(stakeholder_list=everything, email="support@example.com")

    on_payments = declare("Card errors", code="P1", affected_services=[payments])
    on_search = declare("Search slow", code="P1", affected_services=[search])
    p2 = declare("Minor", code="P2", affected_services=[payments])

    assert sorted(s.email.lower() for s in services.stakeholders_for(on_payments)) == [
        "pay@example.com",
        "support@example.com",
    ]
    assert [s.email for s in services.stakeholders_for(on_search)] == [
        "PAY@example.com",
        "support@example.com",
    ]
    assert services.stakeholders_for(p2) == []


def test_one_smtp_connection_per_batch(
    people, smtp_server, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_BATCH_SIZE = 50
    listing = StakeholderList.objects.create(name="Everyone")
    listing.severities.set([severity("P0")])
    Stakeholder.objects.bulk_create(
        Stakeholder(stakeholder_list=listing, email=f"s{n:03d}@example.com") for n in range(120)
    )
    incident = incident_with_commander(people)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post(
            incident,
            T0 + timedelta(minutes=5),
            people["cora"],
            public_text="Checkout is down.",
            audiences=(Audience.STAKEHOLDERS,),
        )
    assert len(callbacks) == 1  # one dispatch for all of them, after the commit
    ids = list(
        Notification.objects.filter(incident=incident).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), 50):
        outbox.deliver_many(ids[start : start + 50])
    assert len(smtp_server.envelopes) == 120
    assert len(smtp_server.peers) == 3
    assert Notification.objects.filter(state=Notification.State.SENT).count() == 120


def test_a_refused_address_in_a_batch_fails_alone(
    people, smtp_server, django_capture_on_commit_callbacks
):
    listing = StakeholderList.objects.create(name="Everyone")
    listing.severities.set([severity("P0")])
    for address in ("a@example.com", "bad@example.com", "c@example.com"):
        Stakeholder.objects.create(stakeholder_list=listing, email=address)
    smtp_server.refused.add("bad@example.com")
    incident = incident_with_commander(people)
    with django_capture_on_commit_callbacks(execute=False):
        post(
            incident,
            T0,
            people["cora"],
            public_text="Down.",
            audiences=(Audience.STAKEHOLDERS,),
        )
    ids = list(Notification.objects.filter(incident=incident).values_list("pk", flat=True))
    states = outbox.deliver_many(ids)
    by_address = {n.recipient: states[n.pk] for n in Notification.objects.filter(pk__in=ids)}
    assert by_address == {
        "a@example.com": "sent",
        "bad@example.com": "failed",
        "c@example.com": "sent",
    }
    assert sorted(m["To"] for m in smtp_server.messages) == ["a@example.com", "c@example.com"]


def test_a_message_logged_by_hand_is_kept_with_the_rest(people):
    incident = incident_with_commander(people, code="P1")
    entry = services.log_manual(
        incident,
        audience=Audience.STAKEHOLDERS,
        channel=Communication.Channel.PHONE,
        subject="Called the CFO",
        body="Explained the impact on invoicing.",
        recipients=["cfo"],
        by=people["cora"],
    )
    assert entry.manual and entry.recipient_count == 1
    assert (
        incident.timeline.filter(kind=TimelineEntry.Kind.COMMUNICATION)
        .last()
        .body.startswith(
            "Cora Tester logged a message to Stakeholders by Phone (by hand): Called the CFO"
        )
    )


def test_a_row_taken_over_while_its_batch_was_busy_is_not_sent_twice(
    people, smtp_server, settings, django_capture_on_commit_callbacks
):
    listing = StakeholderList.objects.create(name="Everyone")
    listing.severities.set([severity("P0")])
    for address in ("a@example.com", "b@example.com"):
        Stakeholder.objects.create(stakeholder_list=listing, email=address)
    incident = incident_with_commander(people)
    with django_capture_on_commit_callbacks(execute=False):
        post(incident, T0, people["cora"], public_text="Down.", audiences=(Audience.STAKEHOLDERS,))
    first, second = outbox.claim_many(
        list(Notification.objects.filter(incident=incident).values_list("pk", flat=True)), T0
    )
    # The batch is slow: the second row's lease runs out and the sweep's sender takes it over.
    later = T0 + settings.NOTIFICATION_LEASE + timedelta(seconds=1)
    assert outbox.claim(second.pk, later) is not None
    with time_machine.travel(later, tick=False):
        assert outbox._renew(first) is True
        assert outbox._renew(second) is False  # the batch leaves it to its new holder
