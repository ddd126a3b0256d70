"""On-call handoffs as a timeline: the job runs, the clock moves, and we check who was told.

"Primary" is the runbook's rotation (weekly, Monday 00:00 UTC from 5 January 2026) with alice,
bob and carol: alice has the week of 9 March, bob takes over on Monday 16 March 00:00 UTC,
carol on the 23rd. olive owns the rotation; boss is a superuser. The job (``run_handoffs``)
runs an hour before the boundary, when the incoming engineer is reminded.
"""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from escalation import handoffs, services, tasks
from escalation.handoffs import run_handoffs
from escalation.models import Handoff, HandoffChecklistTemplateItem
from incidents import services as incident_services
from ops.groups import RESPONDER, SECURITY_TEAM, VIEWER
from tests.delivery import deliver_pending
from tests.incidents.factories import declare

from .factories import UserFactory, rotation_with

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


BOUNDARY = utc(2026, 3, 16)  # Monday: alice hands to bob
REMINDER_AT = BOUNDARY - timedelta(hours=1)
NEXT_BOUNDARY = BOUNDARY + timedelta(weeks=1)  # bob hands to carol

# incident-escalation-flow.md, "On-Call Handoff", as migration 0004 installs it.
RUNBOOK_CHECKLIST = [
    "Review open incidents",
    "Review scheduled maintenance",
    "Review known issues",
    "Access to PagerDuty (paging) verified",
    "Access to Railway/Portainer (hosting) verified",
    "Access to GitHub verified",
    "Access to Slack/communication channels verified",
    "Emergency contact list updated",
    "Runbook access verified",
    "Test page sent and acknowledged",
]
NOT_ACKNOWLEDGED = "NOT ACKNOWLEDGED (overdue)"


def person(username: str, **fields):
    return UserFactory(username=username, first_name=username.title(), last_name="Oncall", **fields)


@pytest.fixture
def alice():
    return person("alice", groups=[RESPONDER])


@pytest.fixture
def bob():
    return person("bob", groups=[RESPONDER])


@pytest.fixture
def carol():
    return person("carol", groups=[RESPONDER])


@pytest.fixture
def dave():
    return person("dave", groups=[RESPONDER])


@pytest.fixture
def olive():
    return person("olive")


@pytest.fixture
def boss():
    return person("boss", is_superuser=True)


@pytest.fixture
def primary(alice, bob, carol, olive):
    return rotation_with(
        alice,
        bob,
        carol,
        name="Primary",
        owner=olive,
        maintenance_notes="Thursday 02:00 UTC: database failover drill",
        known_issues="Search reindex takes 40 minutes; ignore the lag alert meanwhile",
    )


@pytest.fixture
def clock():
    """Sunday 15 March 2026, 09:00 UTC, frozen; tests move it with ``clock.move_to``."""
    with time_machine.travel(utc(2026, 3, 15, 9), tick=False) as traveller:
        yield traveller


@pytest.fixture
def tick(clock, django_capture_on_commit_callbacks):
    """Move the clock to ``at`` and run the periodic job there, emails included."""

    def run(at: datetime) -> dict[str, int]:
        clock.move_to(at)
        # The job writes its emails to the outbox; the worker's send task is played here.
        with django_capture_on_commit_callbacks(execute=False):
            result = run_handoffs(now=at)
        deliver_pending()
        return result

    return run


def ack_path(message) -> str:
    """The path of the signed acknowledge link in a reminder email."""
    (url,) = re.findall(r"https?://\S+/handoff/acknowledge/\S+/", message.get_content())
    assert url.startswith(settings.SITE_URL)
    return urlparse(url).path


def the_handoff(rotation, boundary=BOUNDARY) -> Handoff:
    return Handoff.objects.get(rotation=rotation, boundary_at=boundary)


def admin_messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- Recording the boundary ---------------------------------------------------------------


def test_an_hour_before_the_boundary_the_job_records_who_hands_to_whom_and_what_is_open(
    tick, primary, alice, bob, carol, dave
):
    secondary = rotation_with(carol, dave, name="Secondary")
    checkout = declare("Checkout is down", "P1", now=utc(2026, 3, 15, 9))
    search = declare("Search results are stale", "P3", now=utc(2026, 3, 15, 10))
    incident_services.resolve_incident(search, by=alice, now=utc(2026, 3, 15, 11))

    assert tick(REMINDER_AT - timedelta(minutes=1)) == {"created": 0, "reminded": 0, "flagged": 0}
    assert Handoff.objects.count() == 0

    assert tick(REMINDER_AT) == {"created": 2, "reminded": 2, "flagged": 0}

    handoff = the_handoff(primary)
    assert (handoff.outgoing, handoff.incoming) == (alice, bob)
    assert handoff.created_at == REMINDER_AT
    assert handoff.reminder_sent_at == REMINDER_AT
    assert handoff.acknowledged_at is None and handoff.acknowledged_by is None
    assert handoff.overdue_notified_at is None
    # The resolved incident is not something bob takes over.
    assert handoff.open_incidents == [
        {
            "id": checkout.public_id,
            "title": "Checkout is down",
            "severity": "P1",
            "status": "investigating",
            "is_security": False,
        }
    ]
    assert handoff.maintenance_notes == "Thursday 02:00 UTC: database failover drill"
    assert handoff.known_issues == (
        "Search reindex takes 40 minutes; ignore the lag alert meanwhile"
    )
    items = list(handoff.checklist.all())
    assert [item.text for item in items] == RUNBOOK_CHECKLIST
    assert [item.position for item in items] == list(range(10))
    assert all(item.done_at is None and item.done_by is None for item in items)

    other = the_handoff(secondary)
    assert (other.outgoing, other.incoming) == (dave, carol)
    assert other.open_incidents == handoff.open_incidents
    assert other.maintenance_notes == "" and other.known_issues == ""
    assert Handoff.objects.count() == 2


def test_the_snapshot_keeps_what_was_true_at_the_handoff(tick, primary, alice):
    checkout = declare("Checkout is down", "P1", now=utc(2026, 3, 15, 9))
    tick(REMINDER_AT)

    incident_services.resolve_incident(checkout, by=alice, now=BOUNDARY + timedelta(hours=1))
    primary.maintenance_notes = "Nothing planned"
    primary.save(update_fields=["maintenance_notes"])

    handoff = the_handoff(primary)
    assert [i["id"] for i in handoff.open_incidents] == [checkout.public_id]
    assert handoff.maintenance_notes == "Thursday 02:00 UTC: database failover drill"
    tick(NEXT_BOUNDARY - timedelta(hours=1))
    later = the_handoff(primary, NEXT_BOUNDARY)
    assert later.open_incidents == []
    assert later.maintenance_notes == "Nothing planned"


def test_an_override_starting_at_the_boundary_makes_its_person_the_incoming_engineer(
    tick, primary, alice, dave, smtp_server
):
    services.create_override(
        primary, dave, BOUNDARY, BOUNDARY + timedelta(days=2), reason="bob travels Monday"
    )

    tick(REMINDER_AT)

    handoff = the_handoff(primary)
    assert (handoff.outgoing, handoff.incoming) == (alice, dave)
    assert [m["To"] for m in smtp_server.messages] == ["dave@example.com"]


def test_an_override_across_the_boundary_hands_nothing_over_and_emails_nobody(
    tick, primary, dave, smtp_server
):
    services.create_override(
        primary, dave, BOUNDARY - timedelta(hours=12), BOUNDARY + timedelta(days=1)
    )

    tick(REMINDER_AT)

    assert not Handoff.objects.filter(rotation=primary, boundary_at=BOUNDARY).exists()
    assert smtp_server.messages == []


def test_an_edited_checklist_template_changes_future_handoffs_only(tick, primary):
    tick(REMINDER_AT)

    HandoffChecklistTemplateItem.objects.filter(text="Access to GitHub verified").update(
        text="Access to GitLab verified"
    )
    HandoffChecklistTemplateItem.objects.filter(text="Test page sent and acknowledged").update(
        is_active=False
    )
    HandoffChecklistTemplateItem.objects.create(position=20, text="Status page login verified")
    tick(NEXT_BOUNDARY - timedelta(hours=1))

    assert [i.text for i in the_handoff(primary).checklist.all()] == RUNBOOK_CHECKLIST
    assert [i.text for i in the_handoff(primary, NEXT_BOUNDARY).checklist.all()] == [
        "Review open incidents",
        "Review scheduled maintenance",
        "Review known issues",
        "Access to PagerDuty (paging) verified",
        "Access to Railway/Portainer (hosting) verified",
        "Access to GitLab verified",
        "Access to Slack/communication channels verified",
        "Emergency contact list updated",
        "Runbook access verified",
        "Status page login verified",
    ]


def test_running_the_job_again_records_nothing_more_and_sends_nothing_more(
    tick, primary, smtp_server
):
    assert tick(REMINDER_AT) == {"created": 1, "reminded": 1, "flagged": 0}
    # Two calls in a row at the same instant, then the next minutes' ticks.
    assert tick(REMINDER_AT) == {"created": 0, "reminded": 0, "flagged": 0}
    assert tick(REMINDER_AT + timedelta(minutes=1)) == {"created": 0, "reminded": 0, "flagged": 0}
    assert tick(BOUNDARY + timedelta(minutes=30)) == {"created": 0, "reminded": 0, "flagged": 0}

    assert Handoff.objects.count() == 1
    assert the_handoff(primary).checklist.count() == 10
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]


def test_a_job_that_was_down_catches_up_on_a_boundary_of_the_last_day(tick, primary, smtp_server):
    assert tick(BOUNDARY + timedelta(hours=2)) == {"created": 1, "reminded": 1, "flagged": 0}

    handoff = the_handoff(primary)
    assert handoff.created_at == BOUNDARY + timedelta(hours=2)
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]


# --- The reminder and its signed link ---------------------------------------------------


def test_the_reminder_reaches_the_incoming_engineer_with_everything_to_take_over(
    tick, primary, smtp_server
):
    checkout = declare("Checkout is down", "P1", now=utc(2026, 3, 15, 9))

    tick(REMINDER_AT)

    (message,) = smtp_server.messages
    assert message["To"] == "bob@example.com"
    assert message["From"] == settings.DEFAULT_FROM_EMAIL
    assert message["Subject"] == "[On call] You take over Primary at Mon 16 Mar 00:00 UTC"
    body = message.get_content()
    assert "Hello Bob Oncall," in body
    assert "You take over Primary from Alice Oncall at Monday 16 March 00:00 UTC." in body
    assert f"  - {checkout.public_id} [P1] Checkout is down (investigating)" in body
    assert "Thursday 02:00 UTC: database failover drill" in body
    assert "Search reindex takes 40 minutes" in body
    for text in RUNBOOK_CHECKLIST:
        assert f"  [ ] {text}\n" in body
    path = ack_path(message)
    token = path.removeprefix("/handoff/acknowledge/").removesuffix("/")
    assert handoffs.handoff_from_token(token) == the_handoff(primary)
    assert smtp_server.envelopes[0].rcpt_tos == ["bob@example.com"]


def test_opening_the_link_shows_a_confirmation_page_and_changes_nothing(tick, primary, smtp_server):
    tick(REMINDER_AT)
    before = Handoff.objects.values().get()

    page = Client().get(ack_path(smtp_server.messages[0]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Bob Oncall" in html and "Alice Oncall" in html
    assert "Monday 16 March 2026 00:00 UTC" in html
    assert '<form method="post">' in html
    assert "I have taken over: acknowledge the handoff" in html
    assert Handoff.objects.values().get() == before


def test_pressing_the_button_acknowledges_as_the_incoming_engineer_once(
    tick, clock, primary, bob, smtp_server
):
    tick(REMINDER_AT)
    path = ack_path(smtp_server.messages[0])
    # A browser that was never logged in: the page's own CSRF cookie and token carry the POST.
    browser = Client(enforce_csrf_checks=True)
    browser.get(path)
    clock.move_to(BOUNDARY + timedelta(minutes=10))

    done = browser.post(path, {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value})

    assert done.status_code == 200
    assert "Acknowledged at 2026-03-16 00:10 UTC" in done.content.decode()
    handoff = the_handoff(primary)
    assert handoff.acknowledged_at == BOUNDARY + timedelta(minutes=10)
    assert handoff.acknowledged_by == bob

    clock.move_to(BOUNDARY + timedelta(minutes=20))
    again = browser.post(path, {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value})

    assert again.status_code == 200
    assert "Already acknowledged at 2026-03-16 00:10 UTC." in again.content.decode()
    handoff.refresh_from_db()
    assert handoff.acknowledged_at == BOUNDARY + timedelta(minutes=10)
    assert handoff.acknowledged_by == bob


def test_the_button_needs_the_pages_csrf_token(tick, primary, smtp_server):
    tick(REMINDER_AT)

    forged = Client(enforce_csrf_checks=True).post(ack_path(smtp_server.messages[0]))

    assert forged.status_code == 403
    assert the_handoff(primary).acknowledged_at is None


def test_a_tampered_link_is_a_404_page(tick, primary, smtp_server, client):
    tick(REMINDER_AT)
    path = ack_path(smtp_server.messages[0])
    token = path.removeprefix("/handoff/acknowledge/").removesuffix("/")
    tampered = f"/handoff/acknowledge/{token[:-3]}{'AAA' if token[-3:] != 'AAA' else 'BBB'}/"

    for response in (client.get(tampered), client.post(tampered)):
        assert response.status_code == 404
        assert "This link is not valid." in response.content.decode()
    assert the_handoff(primary).acknowledged_at is None


def test_a_link_acts_only_on_its_own_handoff(tick, primary, carol, dave, smtp_server, client):
    secondary = rotation_with(carol, dave, name="Secondary")
    tick(REMINDER_AT)
    to_bob, to_carol = sorted(smtp_server.messages, key=lambda m: m["To"])
    assert (to_bob["To"], to_carol["To"]) == ("bob@example.com", "carol@example.com")

    client.post(ack_path(to_bob))

    assert the_handoff(primary).acknowledged_at == REMINDER_AT
    assert the_handoff(secondary).acknowledged_at is None


def test_a_token_not_made_for_this_handoff_is_a_404_page(tick, primary, carol, client):
    tick(REMINDER_AT)
    handoff = the_handoff(primary)
    salt = handoffs.ACK_LINK_SALT
    tokens = {
        # Another purpose's link (each purpose has its own salt, DESIGN.md principle 9).
        "wrong purpose": signing.dumps(
            {"handoff": handoff.pk, "user": handoff.incoming_id}, salt="incidents.acknowledge"
        ),
        # Signed for someone who is not the incoming engineer.
        "other person": signing.dumps({"handoff": handoff.pk, "user": carol.pk}, salt=salt),
        # A handoff that does not exist.
        "no handoff": signing.dumps({"handoff": handoff.pk + 1000, "user": carol.pk}, salt=salt),
    }

    for name, token in tokens.items():
        response = client.post(f"/handoff/acknowledge/{token}/")
        assert response.status_code == 404, name
        assert "acknowledge the handoff" not in response.content.decode(), name
    assert the_handoff(primary).acknowledged_at is None


def test_a_link_older_than_seven_days_is_refused(tick, clock, primary, smtp_server, client):
    tick(REMINDER_AT)
    path = ack_path(smtp_server.messages[0])

    clock.move_to(REMINDER_AT + timedelta(days=8))

    for response in (client.get(path), client.post(path)):
        assert response.status_code == 404
        assert "This link has expired" in response.content.decode()
    assert the_handoff(primary).acknowledged_at is None


# --- The admin ------------------------------------------------------------------------------


def acknowledge_in_admin(client, user, handoff):
    client.force_login(user)
    return client.post(
        "/admin/escalation/handoff/",
        {"action": "acknowledge_selected", "_selected_action": [handoff.pk], "index": "0"},
    )


def test_the_incoming_engineer_acknowledges_with_the_admin_action(
    tick, clock, primary, bob, client
):
    tick(REMINDER_AT)
    clock.move_to(BOUNDARY + timedelta(minutes=5))

    response = acknowledge_in_admin(client, bob, the_handoff(primary))

    assert response.status_code == 302
    assert admin_messages(response) == ["Acknowledged Primary handoff 2026-03-16 00:00 UTC."]
    handoff = the_handoff(primary)
    assert handoff.acknowledged_at == BOUNDARY + timedelta(minutes=5)
    assert handoff.acknowledged_by == bob


def test_someone_else_cannot_acknowledge_for_the_incoming_engineer(tick, primary, carol, client):
    tick(REMINDER_AT)

    response = acknowledge_in_admin(client, carol, the_handoff(primary))

    assert admin_messages(response) == [
        "Primary handoff 2026-03-16 00:00 UTC: Only the incoming engineer acknowledges a handoff."
    ]
    handoff = the_handoff(primary)
    assert handoff.acknowledged_at is None and handoff.acknowledged_by is None


def test_a_superuser_acknowledges_on_the_incoming_engineers_behalf(tick, primary, boss, client):
    tick(REMINDER_AT)

    acknowledge_in_admin(client, boss, the_handoff(primary))

    handoff = the_handoff(primary)
    assert handoff.acknowledged_at == REMINDER_AT
    assert handoff.acknowledged_by == boss


def checklist_form(handoff, ticked: set[str]) -> dict[str, str]:
    items = list(handoff.checklist.all())
    data = {
        "checklist-TOTAL_FORMS": str(len(items)),
        "checklist-INITIAL_FORMS": str(len(items)),
        "checklist-MIN_NUM_FORMS": "0",
        "checklist-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for index, item in enumerate(items):
        data[f"checklist-{index}-id"] = str(item.pk)
        data[f"checklist-{index}-handoff"] = str(handoff.pk)
        if item.text in ticked:
            data[f"checklist-{index}-done"] = "on"
    return data


def test_ticking_checklist_items_in_the_admin_records_who_and_when(
    tick, clock, primary, bob, carol, client
):
    tick(REMINDER_AT)
    handoff = the_handoff(primary)
    url = f"/admin/escalation/handoff/{handoff.pk}/change/"
    client.force_login(bob)
    clock.move_to(BOUNDARY + timedelta(minutes=15))

    saved = client.post(
        url, checklist_form(handoff, {"Review open incidents", "Runbook access verified"})
    )

    assert saved.status_code == 302, saved.context and saved.context["errors"]
    done = {i.text: (i.done_at, i.done_by) for i in handoff.checklist.filter(done_at__isnull=False)}
    assert done == {
        "Review open incidents": (BOUNDARY + timedelta(minutes=15), bob),
        "Runbook access verified": (BOUNDARY + timedelta(minutes=15), bob),
    }

    # carol unticks one and ticks another; the item left alone keeps bob's stamp.
    client.force_login(carol)
    clock.move_to(BOUNDARY + timedelta(minutes=40))
    client.post(
        url, checklist_form(handoff, {"Runbook access verified", "Access to GitHub verified"})
    )

    done = {i.text: (i.done_at, i.done_by) for i in handoff.checklist.filter(done_at__isnull=False)}
    assert done == {
        "Runbook access verified": (BOUNDARY + timedelta(minutes=15), bob),
        "Access to GitHub verified": (BOUNDARY + timedelta(minutes=40), carol),
    }
    handoff.refresh_from_db()
    assert handoff.acknowledged_at is None  # ticking items is not acknowledging
    assert "2/10" in client.get("/admin/escalation/handoff/").content.decode()


def test_saving_the_change_form_writes_the_checklist_and_nothing_the_job_owns(
    tick, primary, bob, client
):
    tick(REMINDER_AT)
    handoff = the_handoff(primary)
    client.force_login(bob)

    with CaptureQueriesContext(connection) as queries:
        saved = client.post(
            f"/admin/escalation/handoff/{handoff.pk}/change/",
            checklist_form(handoff, {"Review open incidents"}),
        )

    assert saved.status_code == 302
    # A full-row save would write back the reminder, acknowledgement and overdue columns as
    # they were read at the start of the request, undoing a link or a job acting meanwhile.
    assert [q["sql"] for q in queries if q["sql"].startswith('UPDATE "escalation_handoff" ')] == []
    assert handoff.checklist.filter(done_by=bob).count() == 1


def test_a_security_incident_is_in_the_handoff_without_details_for_those_not_cleared(
    tick, primary, carol, dave, olive, boss, smtp_server, client
):
    carol.groups.add(Group.objects.get(name=SECURITY_TEAM))
    olive.groups.add(Group.objects.get(name=VIEWER))
    rotation_with(carol, dave, name="Secondary")  # carol takes over Secondary
    leak = declare(
        "API keys leaked in a public repo", "P1", is_security=True, now=utc(2026, 3, 15, 9)
    )

    tick(REMINDER_AT)

    to_bob, to_carol = sorted(smtp_server.messages, key=lambda m: m["To"])
    assert "API keys" not in to_bob.get_content()
    assert (
        f"  - {leak.public_id} [P1] Security incident (details restricted) (investigating)"
        in to_bob.get_content()
    )
    assert f"  - {leak.public_id} [P1] API keys leaked in a public repo" in to_carol.get_content()
    url = f"/admin/escalation/handoff/{the_handoff(primary).pk}/change/"
    client.force_login(olive)
    page = client.get(url).content.decode()
    assert "API keys" not in page and "Security incident (details restricted)" in page
    client.force_login(boss)
    assert "API keys leaked in a public repo" in client.get(url).content.decode()


def test_an_incident_flagged_security_after_the_handoff_loses_its_title_there_too(
    tick, primary, olive, client
):
    olive.groups.add(Group.objects.get(name=VIEWER))
    errors = declare("Login errors from one country", "P2", now=utc(2026, 3, 15, 9))
    tick(REMINDER_AT)
    incident_services.set_flags(errors, by=errors.declared_by, is_security=True, now=BOUNDARY)

    client.force_login(olive)
    page = client.get(f"/admin/escalation/handoff/{the_handoff(primary).pk}/change/")

    assert "Login errors" not in page.content.decode()
    assert f"{errors.public_id} [P2] Security incident (details restricted)" in (
        page.content.decode()
    )


# --- Changes after the handoff was recorded ---------------------------------------------------


def test_an_override_made_after_the_reminder_hands_over_to_the_person_covering(
    tick, clock, primary, alice, dave, smtp_server, client
):
    tick(REMINDER_AT)
    clock.move_to(REMINDER_AT + timedelta(minutes=30))
    services.create_override(
        primary, dave, BOUNDARY, BOUNDARY + timedelta(days=2), reason="bob is ill"
    )

    assert tick(REMINDER_AT + timedelta(minutes=31)) == {"created": 0, "reminded": 1, "flagged": 0}

    handoff = the_handoff(primary)
    assert (handoff.outgoing, handoff.incoming) == (alice, dave)
    assert handoff.reminder_sent_at == REMINDER_AT + timedelta(minutes=31)
    to_bob, to_dave = smtp_server.messages
    assert (to_bob["To"], to_dave["To"]) == ("bob@example.com", "dave@example.com")
    stale = client.post(ack_path(to_bob))
    assert stale.status_code == 404
    assert "has another incoming engineer" in stale.content.decode()
    assert client.post(ack_path(to_dave)).status_code == 200
    handoff.refresh_from_db()
    assert handoff.acknowledged_by == dave


def test_an_acknowledged_handoff_keeps_who_took_over(tick, primary, alice, bob, dave):
    tick(REMINDER_AT)
    handoffs.acknowledge_handoff(the_handoff(primary), by=bob, now=REMINDER_AT)
    services.create_override(primary, dave, BOUNDARY, BOUNDARY + timedelta(days=2))

    assert tick(REMINDER_AT + timedelta(minutes=1)) == {"created": 0, "reminded": 0, "flagged": 0}

    handoff = the_handoff(primary)
    assert (handoff.outgoing, handoff.incoming, handoff.acknowledged_by) == (alice, bob, bob)


def test_one_refused_address_does_not_stop_the_other_reminders(
    tick, primary, carol, dave, smtp_server
):
    rotation_with(carol, dave, name="Secondary")
    smtp_server.refused.add("bob@example.com")

    assert tick(REMINDER_AT) == {"created": 2, "reminded": 2, "flagged": 0}

    assert [m["To"] for m in smtp_server.messages] == ["carol@example.com"]
    # Claimed, so not retried: the outbox will bring retries (docs/architecture.md).
    assert tick(REMINDER_AT + timedelta(minutes=1)) == {"created": 0, "reminded": 0, "flagged": 0}


# --- Nobody acknowledged ----------------------------------------------------------------------


def test_an_unacknowledged_handoff_is_flagged_to_the_owner_once(
    tick, primary, smtp_server, client, boss
):
    tick(REMINDER_AT)
    client.force_login(boss)
    deadline = BOUNDARY + primary.handoff_ack_within  # Monday 04:00

    assert tick(deadline) == {"created": 0, "reminded": 0, "flagged": 0}
    page = client.get("/admin/escalation/handoff/").content.decode()
    assert "waiting" in page and NOT_ACKNOWLEDGED not in page

    assert tick(deadline + timedelta(minutes=1)) == {"created": 0, "reminded": 0, "flagged": 1}
    assert tick(deadline + timedelta(minutes=2)) == {"created": 0, "reminded": 0, "flagged": 0}
    assert tick(deadline + timedelta(days=2)) == {"created": 0, "reminded": 0, "flagged": 0}

    handoff = the_handoff(primary)
    assert handoff.overdue_notified_at == deadline + timedelta(minutes=1)
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com", "olive@example.com"]
    flag = smtp_server.messages[1]
    assert flag["Subject"] == "[On call] Handoff not acknowledged: Primary"
    body = flag.get_content()
    assert "Bob Oncall has not acknowledged taking over Primary at 2026-03-16 00:00 UTC." in body
    assert f"{settings.SITE_URL}/admin/escalation/handoff/{handoff.pk}/change/" in body
    assert NOT_ACKNOWLEDGED in client.get("/admin/escalation/handoff/").content.decode()


def test_a_handoff_acknowledged_in_time_is_never_flagged(tick, primary, bob, smtp_server, client):
    tick(REMINDER_AT)
    handoffs.acknowledge_handoff(the_handoff(primary), by=bob, now=BOUNDARY)

    assert tick(BOUNDARY + timedelta(hours=5)) == {"created": 0, "reminded": 0, "flagged": 0}

    assert the_handoff(primary).overdue_notified_at is None
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]
    client.force_login(bob)
    assert NOT_ACKNOWLEDGED not in client.get("/admin/escalation/handoff/").content.decode()


# Session, user, rotation filter, the two counts, rows, date hierarchy (range and days).
LIST_QUERIES = 8


def test_the_handoff_list_costs_the_same_queries_for_one_or_many_handoffs(
    tick, primary, boss, client, django_assert_num_queries
):
    client.force_login(boss)
    tick(REMINDER_AT)
    client.get("/admin/escalation/handoff/")  # warm caches (content types, permissions)
    with django_assert_num_queries(LIST_QUERIES):
        assert client.get("/admin/escalation/handoff/").status_code == 200

    for week in range(1, 4):
        tick(BOUNDARY + timedelta(weeks=week, hours=-1))
    client.force_login(boss)  # three weeks on, the first session has expired
    client.get("/admin/escalation/handoff/")
    with django_assert_num_queries(LIST_QUERIES):
        assert client.get("/admin/escalation/handoff/").status_code == 200
    assert Handoff.objects.count() == 4


# --- Gaps ---------------------------------------------------------------------------------


def test_a_boundary_between_two_gaps_hands_nothing_over(tick, primary, bob, carol):
    # The roster empties from the boundary of 23 March and carol alone returns on 6 April.
    services.set_rotation_members(primary, [], effective_at=utc(2026, 3, 18))
    services.set_rotation_members(primary, [carol], effective_at=utc(2026, 4, 1))

    for boundary in (utc(2026, 3, 23), utc(2026, 3, 30), utc(2026, 4, 6)):
        tick(boundary - timedelta(hours=1))

    assert [
        (h.boundary_at, h.outgoing, h.incoming)
        for h in Handoff.objects.filter(rotation=primary).order_by("boundary_at")
    ] == [
        (utc(2026, 3, 23), bob, None),  # into the gap
        (utc(2026, 4, 6), None, carol),  # out of it; 30 March is gap to gap
    ]


# --- The periodic task ----------------------------------------------------------------------


def test_the_celery_task_runs_the_same_job(
    clock, primary, smtp_server, django_capture_on_commit_callbacks
):
    clock.move_to(REMINDER_AT)

    with django_capture_on_commit_callbacks(execute=False):
        result = tasks.run_handoffs.apply()
    with django_capture_on_commit_callbacks(execute=False):
        again = tasks.run_handoffs.apply()
    deliver_pending()

    assert result.successful() and again.successful()
    handoff = the_handoff(primary)
    assert handoff.created_at == REMINDER_AT
    assert handoff.checklist.count() == 10
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]


def test_beat_runs_the_handoff_job_every_minute():
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["oncall-handoffs"]
    assert entry["task"] == "escalation.tasks.run_handoffs" == tasks.run_handoffs.name
    assert entry["schedule"] == timedelta(seconds=60)
    assert app.conf.beat_schedule["oncall-handoffs"] == entry
    assert "escalation.tasks.run_handoffs" in app.tasks
