"""In a real browser: an admin reads a policy's preview, a paged engineer acknowledges from the
link in the email, and the incident page shows the escalation. Screenshots for the docs."""

import re

import pytest
from playwright.sync_api import expect

from comms.models import Notification
from escalation import engine
from escalation.models import EscalationPolicy
from incidents.models import Incident
from tests.incidents.factories import UserFactory, declare
from tests.incidents.test_e2e_admin import (  # noqa: F401 - the browser fixture
    SCREENSHOTS,
    log_in,
    page,
    restore_groups,
)

pytestmark = pytest.mark.slow


def test_a_paged_engineer_acknowledges_from_the_email_and_the_page_shows_it(
    live_server,
    page,  # noqa: F811 - the fixture imported above
    organisation,
):
    restore_groups()
    UserFactory(username="root", is_superuser=True)
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    incident = declare("Checkout is down: payment provider timeouts", code="P0")
    engine.run_due()
    # Olive and otto take turns by the week: whoever is on call today got the page.
    email = Notification.objects.get(
        incident=incident, user__in=[organisation["olive"], organisation["otto"]]
    )
    on_call = email.user
    (link,) = re.findall(r"https?://\S+/incident/acknowledge/\S+/", email.body_text)
    path = re.sub(r"^https?://[^/]+", "", link)

    # Opening the link shows the incident and a button; nothing has changed yet.
    page.goto(base + path)
    expect(page.locator("dd").first).to_contain_text(incident.public_id)
    page.screenshot(path=SCREENSHOTS / "acknowledge-link.png", full_page=True)
    assert Incident.objects.get(pk=incident.pk).acknowledged_at is None
    page.get_by_role("button", name=f"Acknowledge {incident.public_id}").click()
    expect(page.locator(".done")).to_contain_text(f"You acknowledged {incident.public_id}")
    assert Incident.objects.get(pk=incident.pk).acknowledged_by == on_call

    # The incident page: the policy followed, who was paged, what comes next, each delivery.
    log_in(page, base, "root")
    page.goto(f"{base}/admin/incidents/incident/{incident.pk}/change/")
    panel = page.locator("#escalation")
    expect(panel).to_contain_text("Follows P0 Critical")
    expect(panel).to_contain_text(email.recipient)
    expect(panel).to_contain_text("P0 unresolved after 2 hours: Engineering Manager")
    panel.screenshot(path=SCREENSHOTS / "escalation-panel.png")

    # The policy page previews the matrix against today's roster.
    policy = EscalationPolicy.objects.get(name="P0 Critical")
    page.goto(f"{base}/admin/escalation/escalationpolicy/{policy.pk}/change/")
    preview = page.locator(".field-preview")
    expect(preview).to_contain_text("em@example.com")
    expect(preview).to_contain_text("cto@example.com")
    page.screenshot(path=SCREENSHOTS / "escalation-policy.png", full_page=True)
