"""In a real browser: a commander posts an update from the incident page; responders and
stakeholders get it through a real SMTP server; the page shows the communications panel and the
log. Screenshots for the docs."""

import pytest
from playwright.sync_api import expect

from comms.models import Stakeholder, StakeholderList
from incidents import services
from incidents.models import IncidentRole, Status
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare, severity
from tests.incidents.test_e2e_admin import (  # noqa: F401 - the browser fixture
    SCREENSHOTS,
    log_in,
    page,
    restore_groups,
)

pytestmark = pytest.mark.slow


def test_a_commander_posts_an_update_and_everyone_hears(
    live_server,
    page,  # noqa: F811 - the fixture imported above
    smtp_server,
):
    restore_groups()
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cora = UserFactory(
        username="cora", first_name="Cora", last_name="Commander", groups=["Incident Commander"]
    )
    rob = UserFactory(username="rob", first_name="Rob", last_name="Responder")
    listing = StakeholderList.objects.create(name="Executives")
    listing.severities.set([severity("P0")])
    Stakeholder.objects.create(stakeholder_list=listing, name="CEO", email="ceo@example.com")
    incident = declare("Checkout API returns 502 for all customers", code="P0", by=cora)
    services.assign_role(incident, IncidentRole.Role.COMMANDER, cora, by=cora)
    services.assign_role(incident, IncidentRole.Role.RESPONDER, rob, by=cora)

    log_in(page, base, "cora")
    page.goto(f"{base}/admin/incidents/incident/{incident.pk}/change/")
    panel = page.locator("#communications")
    expect(panel).to_contain_text("#incident-")  # the P0's war room
    page.get_by_role("link", name="Post update").click()

    # P0: responders, stakeholders and the status page are pre-selected.
    for value in ("internal", "stakeholders", "public"):
        expect(page.locator(f"input[name=audiences][value={value}]")).to_be_checked()
    page.select_option("#id_status", Status.IDENTIFIED)
    page.fill("#id_progress", "Bad connection-pool setting in the 13:05 config push.")
    page.fill("#id_next_steps", "Roll back the config; watch error rates.")
    page.fill("#id_eta", "30 minutes")
    page.fill("#id_public_text", "We have found the cause of the checkout failures.")
    page.screenshot(path=SCREENSHOTS / "post-update.png", full_page=True)
    page.get_by_role("button", name="Post update").click()

    expect(page.locator(".messagelist")).to_contain_text(
        "Update sent to 2 responders, 1 stakeholder, the status page."
    )
    deliver_pending()
    received = {message["To"]: message for message in smtp_server.messages}
    assert {"cora@example.com", "rob@example.com", "ceo@example.com"} <= set(received)
    assert "config push" in received["rob@example.com"].get_body(("plain",)).get_content()
    assert "config push" not in received["ceo@example.com"].get_body(("plain",)).get_content()

    page.reload()
    expect(panel).to_contain_text("Stakeholders")
    expect(panel).to_contain_text("1 sent")
    panel.screenshot(path=SCREENSHOTS / "communications-panel.png")

    page.goto(f"{base}/status/")
    expect(page.locator("body")).to_contain_text(
        "We have found the cause of the checkout failures."
    )
