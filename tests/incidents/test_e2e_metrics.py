"""In a real browser: a superuser opens the metrics dashboard from the home page and reads it."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from incidents import reviews, services
from incidents.metrics import Period, breached
from incidents.models import ActionItem, Incident, Review, Service

from .factories import UserFactory, declare, default_policy, incident_type
from .test_e2e_admin import SCREENSHOTS, log_in, page, restore_groups  # noqa: F401

pytestmark = pytest.mark.slow

TITLES = {
    "complete-outage": "Checkout returns 502 for every customer",
    "database-degradation": "Orders database replica lagging",
    "high-error-rate": "Error rate above 5 % after release",
    "authentication-failure": "SSO logins failing",
    "performance-degradation": "Search p95 above 3 s",
}
SERVICES = ("Checkout API", "Web app", "Identity", "Orders database", "Search")
# Severity: (relative weight, acknowledged after (min), resolved after (min)) ranges, chosen so
# that most incidents meet their targets and some do not.
PROFILES = {
    "P0": (1, (3, 25), (40, 180)),
    "P1": (3, (10, 80), (120, 600)),
    "P2": (5, (30, 300), (300, 3000)),
}


def populate(now, people) -> None:
    """About sixty incidents over the last six months, worked through the services."""
    rng = random.Random(20260310)
    services_by_name = {name: Service.objects.create(name=name) for name in SERVICES}
    codes = [code for code, profile in PROFILES.items() for _ in range(profile[0])]
    for index in range(60):
        code = rng.choice(codes)
        _, ack_range, resolve_range = PROFILES[code]
        declared_at = now - timedelta(days=180) + timedelta(hours=index * 70 + rng.randrange(48))
        slug = rng.choice(list(TITLES))
        incident = declare(
            TITLES[slug],
            code=code,
            by=rng.choice(people),
            incident_type=incident_type(slug),
            affected_services=rng.sample(list(services_by_name.values()), rng.randrange(1, 3)),
            now=declared_at,
        )
        acknowledged_at = declared_at + timedelta(minutes=rng.randrange(*ack_range))
        resolved_at = declared_at + timedelta(minutes=rng.randrange(*resolve_range))
        if acknowledged_at < now:
            services.acknowledge_incident(incident, by=rng.choice(people), now=acknowledged_at)
        if resolved_at < now and rng.random() < 0.95:
            services.resolve_incident(incident, by=rng.choice(people), now=resolved_at)
    for number, review in enumerate(Review.objects.select_related("incident").order_by("pk")):
        reviews.add_action_item(
            review,
            action="Add a canary stage",
            owner=rng.choice(people),
            due_date=(review.created_at + timedelta(days=14)).date(),
        )
        if number % 3:
            for name in reviews.REQUIRED_SECTIONS:
                setattr(review, name, "Written in the review meeting.")
            review.save()
            late = timedelta(hours=60) if number % 5 == 0 else timedelta(hours=20)
            reviews.complete_review(
                review, by=rng.choice(people), now=min(review.created_at + late, now)
            )
            reviews.set_action_status(review.action_items.get(), ActionItem.State.DONE, now=now)


def test_a_superuser_reads_the_metrics_dashboard(live_server, page):  # noqa: F811
    restore_groups()
    default_policy()
    UserFactory(username="sam", first_name="Sam", last_name="Super", is_superuser=True)
    people = [UserFactory(first_name=name, last_name="Responder") for name in ("Ana", "Bo", "Cy")]
    now = timezone.now()
    populate(now, people)
    start = (now - timedelta(days=180)).date()
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    log_in(page, base, "sam")
    page.get_by_role("link", name="Metrics", exact=True).click()
    expect(page.locator("h1")).to_have_text("Incident metrics")
    page.fill("#id_start", start.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{base}/admin/metrics/?start={start}&end={now.date()}&severity=")

    total = Incident.objects.filter(declared_at__date__gte=start).count()
    expect(page.locator("#card-incidents .figure")).to_have_text(str(total))
    months = Period(start, now.date()).months()
    expect(page.locator("#chart-months svg g")).to_have_count(len(months))
    expect(page.locator("#chart-severities svg g")).to_have_count(3)
    newest_breach = Incident.objects.filter(breached(now)).order_by("-declared_at", "-pk")[0]
    expect(page.locator("#breaches tbody tr").first.locator("a")).to_have_attribute(
        "href", f"/admin/incidents/incident/{newest_breach.pk}/change/"
    )
    page.screenshot(path=SCREENSHOTS / "metrics-dashboard.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"incidents-{start}-to-{now.date()}.csv"
    lines = download.value.path().read_text().splitlines()
    assert len(lines) == total + 1
