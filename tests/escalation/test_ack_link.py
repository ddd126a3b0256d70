"""The acknowledge link of an escalation email, used the way a recipient uses it: the link from
the email body, the confirmation page, its button. PostgreSQL, time moved with time-machine."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client
from django.urls import reverse

from comms import outbox
from comms.models import Notification
from escalation import engine, handoffs
from escalation.models import FiredStep
from incidents import services
from incidents.models import TimelineEntry
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db

# Wednesday 11 March 2026: otto's week on call (see the organisation fixture).
T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
ACK_PATH = re.compile(re.escape(settings.SITE_URL) + r"(/incident/acknowledge/[^/\s]+/)")


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(T0, tick=False)
    return time_machine


@pytest.fixture
def incident(organisation, clock):
    """A P0 declared at T0 whose first step (on call, DevOps and Backend leads) has fired."""
    incident = declare("Checkout is down", code="P0")
    engine.run_due()
    return incident


def email_to(incident, user) -> Notification:
    return Notification.objects.get(incident=incident, user=user, channel="email")


def link_of(notification: Notification) -> str:
    """The acknowledge link's path, as found in the email's text."""
    found = ACK_PATH.search(notification.body_text)
    assert found, notification.body_text
    return found.group(1)


def acknowledged(incident) -> list[TimelineEntry]:
    return list(incident.timeline.filter(kind=TimelineEntry.Kind.ACKNOWLEDGED))


def assert_unchanged(incident, notification) -> None:
    incident.refresh_from_db()
    notification.refresh_from_db()
    assert incident.acknowledged_at is None
    assert incident.acknowledged_by is None
    assert notification.link_used_at is None
    assert acknowledged(incident) == []


def test_each_alert_email_carries_its_own_acknowledge_link(incident, organisation):
    emails = Notification.objects.filter(incident=incident, channel="email")
    assert {n.recipient for n in emails} == {
        "otto@example.com",
        "dev@example.com",
        "back@example.com",
    }
    links = set()
    for notification in emails:
        path = link_of(notification)
        assert settings.SITE_URL + path in notification.body_text
        assert path.startswith(reverse("escalation-ack", args=["x"]).rsplit("x/", 1)[0])
        links.add(path)
    assert len(links) == 3


def test_opening_the_link_shows_the_incident_and_changes_nothing(incident, organisation, client):
    notification = email_to(incident, organisation["otto"])

    for _ in range(2):  # the recipient, and a mail scanner before them
        page = client.get(link_of(notification))
        assert page.status_code == 200
        html = page.content.decode()
        assert incident.public_id in html
        assert "Checkout is down" in html
        assert f'<button type="submit">Acknowledge {incident.public_id}</button>' in html
        assert "otto@example.com" in html
        assert "Opening this page changed nothing" in html

    assert_unchanged(incident, notification)


def test_the_button_acknowledges_as_the_recipient_and_stops_the_backup_page(
    incident, organisation, client, clock
):
    otto = organisation["otto"]
    notification = email_to(incident, otto)
    clock.move_to(T0 + timedelta(minutes=5), tick=False)

    page = client.post(link_of(notification))

    assert page.status_code == 200
    html = page.content.decode()
    assert f"You acknowledged {incident.public_id} at 2026-03-11 12:05 UTC" in html
    assert "<button" not in html
    incident.refresh_from_db()
    assert incident.acknowledged_by == otto
    assert incident.acknowledged_at == T0 + timedelta(minutes=5)
    [entry] = acknowledged(incident)
    assert entry.author == otto
    assert entry.at == T0 + timedelta(minutes=5)
    assert otto.get_full_name() in entry.body
    notification.refresh_from_db()
    assert notification.link_used_at == T0 + timedelta(minutes=5)

    # The backup page at +15 minutes is for an unacknowledged P0: it does not fire.
    clock.move_to(T0 + timedelta(minutes=16), tick=False)
    engine.run_due()
    keys = FiredStep.objects.filter(incident=incident).values_list("step_key", flat=True)
    assert not [key for key in keys if key.endswith("p0-backup")]
    assert not Notification.objects.filter(incident=incident, recipient="bea@example.com")


def test_the_button_needs_the_pages_csrf_token(incident, organisation):
    notification = email_to(incident, organisation["otto"])
    browser = Client(enforce_csrf_checks=True)
    path = link_of(notification)

    forged = browser.post(path)
    assert forged.status_code == 403
    assert_unchanged(incident, notification)

    page = browser.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token
    pressed = browser.post(path, {"csrfmiddlewaretoken": token.group(1)})
    assert pressed.status_code == 200
    assert "You acknowledged" in pressed.content.decode()
    incident.refresh_from_db()
    assert incident.acknowledged_by == organisation["otto"]


def test_a_used_link_says_so_and_changes_nothing(incident, organisation, client, clock):
    notification = email_to(incident, organisation["otto"])
    path = link_of(notification)
    client.post(path)
    incident.refresh_from_db()
    first_ack = incident.acknowledged_at

    clock.move_to(T0 + timedelta(minutes=30), tick=False)
    again = client.post(path)
    opened = client.get(path)

    for page in (again, opened):
        html = page.content.decode()
        assert page.status_code == 200
        assert "This link was already used at 2026-03-11 12:00 UTC." in html
        assert "<button" not in html
        assert "You acknowledged" not in html
    incident.refresh_from_db()
    notification.refresh_from_db()
    assert incident.acknowledged_at == first_ack
    assert notification.link_used_at == T0
    assert len(acknowledged(incident)) == 1


@pytest.mark.parametrize("change", ["last character", "cut short", "another uid"])
def test_a_tampered_link_is_not_valid(incident, organisation, client, change):
    notification = email_to(incident, organisation["otto"])
    token = link_of(notification).rstrip("/").rsplit("/", 1)[1]
    if change == "last character":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif change == "cut short":
        token = token[: len(token) // 2]
    else:  # someone else's notification id, with the signature left as it was
        other = email_to(incident, organisation["dev"])
        token = str(other.uid) + token[len(str(notification.uid)) :]
    path = reverse("escalation-ack", args=[token])

    for page in (client.get(path), client.post(path)):
        assert page.status_code == 404
        html = page.content.decode()
        assert "This link is not valid" in html
        assert "<button" not in html
        assert incident.public_id not in html
    assert_unchanged(incident, notification)
    assert_unchanged(incident, email_to(incident, organisation["dev"]))


def test_an_expired_link_says_so(incident, organisation, client, clock):
    notification = email_to(incident, organisation["otto"])
    path = link_of(notification)

    clock.move_to(T0 + settings.ACK_LINK_MAX_AGE - timedelta(minutes=1), tick=False)
    assert "<button" in client.get(path).content.decode()  # still good just before

    clock.move_to(T0 + settings.ACK_LINK_MAX_AGE + timedelta(seconds=1), tick=False)
    for page in (client.get(path), client.post(path)):
        assert page.status_code == 404
        html = page.content.decode()
        assert "This link has expired" in html
        assert "Acknowledge the incident in the portal instead" in html
        assert "<button" not in html
    assert_unchanged(incident, notification)


def test_a_link_for_an_incident_someone_else_acknowledged(incident, organisation, client, clock):
    dev = organisation["dev"]
    notification = email_to(incident, organisation["otto"])
    clock.move_to(T0 + timedelta(minutes=3), tick=False)
    services.acknowledge_incident(incident, by=dev)

    clock.move_to(T0 + timedelta(minutes=4), tick=False)
    expected = (
        f"{incident.public_id} was already acknowledged by {dev.get_full_name()} "
        "at 2026-03-11 12:03 UTC."
    )
    for page in (client.get(link_of(notification)), client.post(link_of(notification))):
        assert page.status_code == 200
        html = page.content.decode()
        assert expected in html
        assert "<button" not in html
        assert "You acknowledged" not in html

    incident.refresh_from_db()
    notification.refresh_from_db()
    assert incident.acknowledged_by == dev
    assert incident.acknowledged_at == T0 + timedelta(minutes=3)
    assert notification.link_used_at is None
    assert len(acknowledged(incident)) == 1


def test_a_link_for_a_resolved_incident_does_not_acknowledge_it(
    incident, organisation, client, clock
):
    notification = email_to(incident, organisation["otto"])
    clock.move_to(T0 + timedelta(minutes=3), tick=False)
    services.resolve_incident(incident, by=organisation["dev"])

    page = client.post(link_of(notification))

    assert page.status_code == 200
    assert f"{incident.public_id} is resolved." in page.content.decode()
    incident.refresh_from_db()
    notification.refresh_from_db()
    assert incident.acknowledged_by is None
    assert notification.link_used_at is None


@pytest.mark.parametrize(
    "salt",
    [handoffs.ACK_LINK_SALT, "other", "django.core.signing"],
    ids=["handoff link", "another salt", "no salt"],
)
def test_a_token_signed_for_another_purpose_is_refused(incident, organisation, client, salt):
    notification = email_to(incident, organisation["otto"])
    token = signing.dumps(str(notification.uid), salt=salt)
    path = reverse("escalation-ack", args=[token])

    for page in (client.get(path), client.post(path)):
        assert page.status_code == 404
        assert "This link is not valid" in page.content.decode()
    assert_unchanged(incident, notification)


def test_a_link_to_nothing_the_portal_sent_is_refused(incident, client):
    path = engine.ack_url(uuid.uuid4()).removeprefix(settings.SITE_URL)

    page = client.post(path)

    assert page.status_code == 404
    assert "does not lead to an incident" in page.content.decode()
    incident.refresh_from_db()
    assert incident.acknowledged_at is None


def test_the_alert_email_as_received_follows_the_runbook_and_links_the_button(
    incident, organisation, smtp_server
):
    notification = email_to(incident, organisation["otto"])

    assert outbox.deliver(notification.pk) == "sent"

    [message] = smtp_server.messages
    assert message["To"] == "otto@example.com"
    assert message["Subject"] == f"INCIDENT ALERT - P0 {incident.public_id}: Checkout is down"
    assert message["Message-ID"] == notification.message_id
    text = message.get_body(preferencelist=("plain",)).get_content()
    lines = text.splitlines()
    assert lines[0] == "INCIDENT ALERT - P0"
    assert f"Incident ID: {incident.public_id}" in lines
    assert incident.public_id.startswith("INC-")
    assert "Severity: P0 - Critical" in lines
    assert "Status: INVESTIGATING" in lines
    assert any(line.startswith("Assigned To: ") for line in lines)
    assert any(line.startswith("ETA for Update: ") for line in lines)
    url = settings.SITE_URL + link_of(notification)
    assert url in lines
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f'<a href="{url}"' in html
    assert f"Acknowledge {incident.public_id}</a>" in html
