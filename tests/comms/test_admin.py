"""The delivery log in the admin: what went out, to whom, and what failed; secrets stay hidden."""

from datetime import UTC, datetime

import pytest
import time_machine

from comms.models import Notification
from escalation import engine
from tests.incidents.factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
LOG = "/admin/comms/notification/"


@pytest.fixture
def paged(organisation):
    with time_machine.travel(T0, tick=False):
        outage = declare("Checkout is down", code="P0")
        breach = declare("Tokens leaked", code="P0", is_security=True)
        engine.run_due()
    return outage, breach


def test_responders_see_the_log_but_not_a_security_incident_s_messages(client, paged):
    outage, breach = paged
    client.force_login(UserFactory(username="rita", groups=["Responder"]))

    page = client.get(LOG).content.decode()

    assert outage.public_id in page
    assert breach.public_id not in page
    hidden = Notification.objects.filter(incident=breach).first()
    assert client.get(f"{LOG}{hidden.pk}/change/").status_code in (302, 404)


def test_the_security_team_sees_them(client, paged):
    _, breach = paged
    client.force_login(UserFactory(username="sam", groups=["Responder", "Security Team"]))
    assert breach.public_id in client.get(LOG).content.decode()


def test_failed_rows_can_be_sent_again_and_nothing_can_be_deleted(client, paged):
    outage, _ = paged
    failed = Notification.objects.filter(incident=outage).first()
    Notification.objects.filter(pk=failed.pk).update(state="failed", attempts=5, last_error="x")
    sent = Notification.objects.filter(incident=outage).exclude(pk=failed.pk).first()
    Notification.objects.filter(pk=sent.pk).update(state="sent")
    client.force_login(UserFactory(username="ada", groups=["Admin"]))

    response = client.post(
        LOG, {"action": "send_again", "_selected_action": [failed.pk, sent.pk]}, follow=True
    )

    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.state, failed.max_attempts) == ("pending", 6)
    assert sent.state == "sent"
    body = response.content.decode()
    assert "1 queued to send again." in body and "only failed notifications" in body
    assert client.post(f"{LOG}{sent.pk}/delete/").status_code == 403


def test_viewers_cannot_see_the_delivery_log(client, paged):
    client.force_login(UserFactory(username="vic", groups=["Viewer"]))
    assert client.get(LOG).status_code == 403
