"""In a real browser: a commander writes the post-incident review, completes it, prints it."""

from datetime import date, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from incidents import reviews, services
from incidents.models import Review

from .factories import UserFactory, declare
from .test_e2e_admin import SCREENSHOTS, log_in, page, restore_groups  # noqa: F401

pytestmark = pytest.mark.slow


def test_a_commander_completes_the_review_and_prints_it(live_server, page):  # noqa: F811
    restore_groups()
    carmen = UserFactory(
        username="carmen", first_name="Carmen", last_name="Ortiz", groups=["Incident Commander"]
    )
    ravi = UserFactory(username="ravi", first_name="Ravi", last_name="Kumar", groups=["Responder"])
    start = timezone.now() - timedelta(hours=6)
    incident = declare(
        "Checkout API returns 502 for all customers",
        code="P0",
        by=carmen,
        users_affected=48000,
        impact_scope="All customers; no orders can be placed.",
        now=start,
    )
    services.acknowledge_incident(incident, by=carmen, now=start + timedelta(minutes=9))
    services.resolve_incident(incident, by=carmen, now=start + timedelta(hours=2))
    review = Review.objects.get(incident=incident)
    reviews.add_action_item(
        review,
        action="Canary config pushes to 5% of pods first",
        owner=ravi,
        due_date=date.today() + timedelta(days=10),
        priority="high",
    )
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, "carmen")
    page.goto(f"{base}/admin/incidents/review/{review.pk}/change/")
    expect(page.locator("#id_summary")).to_contain_text("Severity: P0 - Critical")
    page.fill("#id_primary_cause", "A config push set the connection pool to 0.")
    page.fill("#id_immediate_fix", "Rolled the config back and restarted the pods.")
    page.fill("#id_went_well", "Paged within a minute; rollback was rehearsed.")
    page.fill("#id_could_improve", "The push had no canary stage.")
    page.fill("#id_lessons_learned", "Config is code: review and canary it like code.")
    page.screenshot(path=SCREENSHOTS / "review.png", full_page=True)
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("button", name="Complete review").click()
    expect(page.locator(".messagelist")).to_contain_text("Review complete.")
    assert Review.objects.get(pk=review.pk).state == Review.State.COMPLETE

    page.goto(f"{base}/admin/incidents/review/{review.pk}/print/")
    expect(page.locator("h1")).to_have_text(f"Incident Report: {incident.public_id}")
    expect(page.locator("table")).to_contain_text("Canary config pushes to 5% of pods first")
    page.screenshot(path=SCREENSHOTS / "review-print.png", full_page=True)
