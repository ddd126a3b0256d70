"""In a real browser on a phone-sized screen: the public status page reads without login, without
sideways scrolling, and shows the outage, its updates, the services and their 90 days."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from comms.models import (
    Audience,
    CommsSettings,
    IncidentComms,
    IncidentUpdate,
    Maintenance,
    ServiceState,
    StatusPageService,
)
from incidents import services
from incidents.models import Service, Status
from tests.incidents.factories import UserFactory, declare
from tests.incidents.test_e2e_admin import SCREENSHOTS, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture
def phone(monkeypatch) -> Iterator[Page]:
    """A 390x844 viewport at twice the pixel density, as a current phone shows the page."""
    yield from browser_page(
        monkeypatch,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )


def populate(now) -> None:
    """Four public services, a P1 being fixed, a resolved incident from yesterday, three older
    ones in the 90 days and tomorrow night's maintenance."""
    by = UserFactory()
    inner = {name: Service.objects.create(name=name) for name in ("web", "api", "sso", "search")}
    shown = {}
    for position, (name, description, behind) in enumerate(
        [
            ("Website", "Browsing the shop and your account.", "web"),
            ("Checkout and payments", "Placing orders and paying for them.", "api"),
            ("Sign-in", "Logging in, including single sign-on.", "sso"),
            ("Search", "Finding products.", "search"),
        ]
    ):
        shown[name] = StatusPageService.objects.create(
            name=name, description=description, position=position
        )
        shown[name].services.set([inner[behind]])

    def public(incident, title, impact=""):
        IncidentComms.objects.update_or_create(
            incident=incident,
            defaults={"is_public": True, "public_title": title, "public_impact": impact},
        )
        return incident

    def post(incident, text, at, status, **extra):
        IncidentUpdate.objects.create(
            incident=incident, posted_at=at, status=status, public_text=text, **extra
        )

    start = now - timedelta(minutes=95)
    outage = public(
        declare("api 502s", code="P1", by=by, affected_services=[inner["api"]], now=start),
        "Some payments fail at checkout",
    )
    post(
        outage,
        "Some customers see an error when paying. We are investigating.",
        start + timedelta(minutes=5),
        Status.INVESTIGATING,
    )
    post(
        outage,
        "We found the cause, a faulty release of our payment service, and are rolling it back.",
        start + timedelta(minutes=50),
        Status.FIXING,
    )
    for days, hours, code, title, behind in (
        (1, 3, "P2", "Slow sign-in for some users", "sso"),
        (12, 5, "P1", "Search results incomplete", "search"),
        (33, 2, "P0", "Website unavailable", "web"),
        (61, 9, "P2", "Delayed order confirmations", "api"),
    ):
        began = now - timedelta(days=days, hours=hours)
        incident = public(
            declare(title, code=code, by=by, affected_services=[inner[behind]], now=began), title
        )
        post(incident, "We are looking into it.", began + timedelta(minutes=10), Status.IDENTIFIED)
        post(
            incident,
            "This is resolved. Thank you for your patience.",
            began + timedelta(hours=hours),
            Status.RESOLVED,
            kind=IncidentUpdate.Kind.RESOLUTION,
            audiences=[Audience.PUBLIC],
        )
        services.resolve_incident(incident, by=by, now=began + timedelta(hours=hours))
    tonight = (now + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    window = Maintenance.objects.create(
        title="Database upgrade",
        description="Checkout may be unavailable for up to 15 minutes during the window.",
        starts_at=tonight,
        ends_at=tonight + timedelta(hours=2),
    )
    window.services.set([shown["Checkout and payments"]])
    settings = CommsSettings.load()
    settings.status_page_title = "Acme status"
    settings.save()


def test_the_status_page_reads_on_a_phone(live_server, phone):
    populate(timezone.now())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    response = phone.goto(f"{live_server.url}/status/")

    assert response.status == 200
    assert response.headers["cache-control"] in ("public, max-age=30", "max-age=30, public")
    expect(phone.locator("h1")).to_have_text("Acme status")
    expect(phone.locator("#banner strong")).to_have_text(ServiceState.PARTIAL.label)
    expect(phone.locator("#active h3")).to_have_text(["Some payments fail at checkout"])
    expect(phone.locator("#active .update-text").first).to_have_text(
        "We found the cause, a faulty release of our payment service, and are rolling it back."
    )
    expect(phone.locator(".service-name")).to_have_text(
        ["Website", "Checkout and payments", "Sign-in", "Search"]
    )
    checkout = phone.locator(".service").nth(1)
    expect(checkout.locator(".state")).to_have_text("Partial outage")
    expect(checkout.locator(".days li")).to_have_count(90)
    expect(phone.locator("#maintenance-upcoming h3")).to_have_text("Database upgrade")
    expect(phone.locator("#history h3")).to_have_text(["Slow sign-in for some users"])
    assert checkout.locator(".days li").last.bounding_box()["width"] >= 2  # still a visible bar
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(phone.locator('link[rel="alternate"][type="application/atom+xml"]')).to_have_attribute(
        "href", "/status/feed.atom"
    )

    phone.screenshot(path=SCREENSHOTS / "status-page.png", full_page=True)

    phone.get_by_role("link", name="JSON summary").click()
    assert '"state": "partial_outage"' in phone.content()
