"""A responder works an incident in a real browser; a viewer then sees it without any controls.

Drives Debian's chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server. Playwright's own browser download does not work here, so the browser is the system one:
with CI=true a missing /usr/bin/chromium fails the test, elsewhere it is skipped.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Page, expect, sync_playwright

from incidents.models import Incident, IncidentRole, TimelineEntry
from ops.groups import RESPONDER, VIEWER
from ops.testing import IN_CI
from tests.conftest import restore_migration_data

from .factories import UserFactory, declare, default_policy, severity

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-tests-123"  # UserFactory's password
NOTE = "Replica lag started with the 14:02 schema migration; suspect the new index build."


def restore_groups() -> None:
    """Put back the migrations' groups, permissions and defaults: an earlier transactional test
    (or live server test) flushed every table (tests/conftest.py, restore_migration_data)."""
    restore_migration_data()


def browser_page(monkeypatch, **context_options) -> Iterator[Page]:
    """A page of a fresh headless Chromium context (``context_options``: viewport, scale ...)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    # from a thread with a running loop. The test's ORM calls happen between browser steps,
    # never concurrently with them, so the guard is lifted, for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**context_options)
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()
            # While Playwright's loop runs, Django keeps this thread's connection in a
            # context-local slot that its own teardown never sees; an open one would stop the
            # test database from being dropped at the end of the session.
            connections.close_all()


@pytest.fixture
def page(monkeypatch) -> Iterator[Page]:
    yield from browser_page(monkeypatch, viewport={"width": 1280, "height": 900})


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/admin/")
    expect(page.locator("#logout-form")).to_have_count(1)


def test_a_responder_declares_and_works_an_incident_and_a_viewer_only_reads_it(live_server, page):
    restore_groups()
    default_policy()
    responder = UserFactory(
        username="rita", first_name="Rita", last_name="Responder", groups=[RESPONDER]
    )
    UserFactory(username="victor", first_name="Victor", last_name="Viewer", groups=[VIEWER])
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The responder declares from the home page.
    log_in(page, base, "rita")
    page.get_by_role("link", name="Declare incident", exact=True).click()
    expect(page.locator("h1")).to_have_text("Declare incident")
    page.fill("#id_title", "Checkout is slow: orders database replica lagging")
    page.select_option("#id_severity", value=str(severity("P1").pk))
    page.select_option("#id_incident_type", label="Database Performance Degradation")
    page.fill("#id_summary", "p95 checkout latency above 8 s since 14:05 UTC; replica lag 90 s.")
    page.screenshot(path=SCREENSHOTS / "declare-incident.png", full_page=True)
    page.get_by_role("button", name="Declare incident").click()

    incident_page = re.compile(r"/admin/incidents/incident/\d+/change/")
    expect(page).to_have_url(incident_page)
    incident = Incident.objects.get(title="Checkout is slow: orders database replica lagging")
    expect(page.locator(".messagelist")).to_contain_text(f"Declared {incident.public_id}")

    # It acknowledges, takes command, ticks the first checklist item and writes a hypothesis.
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text(f"Acknowledged {incident.public_id}")
    page.get_by_role("button", name="Assign me as commander").click()
    expect(page.locator(".messagelist")).to_contain_text("You are the incident commander")
    first_item = page.locator("#checklist input[name=item]").first.get_attribute("value")
    item_row = page.locator(f"#checklist li:has(input[name=item][value='{first_item}'])")
    item_row.get_by_role("button", name=re.compile(r"^Mark done")).click()
    expect(item_row).to_have_class(re.compile(r"\bdone\b"))
    page.select_option(".note-form select[name=kind]", value="hypothesis")
    page.fill(".note-form textarea[name=body]", NOTE)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".messagelist")).to_contain_text("Note added to the timeline")

    expect(page.locator("#timeline li.kind-note.note-hypothesis .body")).to_have_text(NOTE)
    expect(page.locator("#milestones tr.milestone-acknowledged td")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    commander_row = page.locator("#roles tr", has_text="Incident commander")
    expect(commander_row.locator("td").first).to_have_text("Rita Responder")
    expect(item_row).to_have_class(re.compile(r"\bdone\b"))
    expect(item_row.get_by_role("button", name=re.compile(r"^Reopen"))).to_have_count(1)
    expect(page.locator(".incident-head .sla-clock")).to_contain_text("Resolution due in")
    # The note's redirect scrolled to #timeline; the admin's sticky sidebar would be drawn
    # there in a full-page shot.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SCREENSHOTS / "incident-page.png", full_page=True)
    change_url = page.url.split("#")[0]

    # The responder's list has the bulk actions the viewer must not get.
    page.goto(f"{base}/admin/incidents/incident/")
    expect(page.locator("select[name=action]")).to_have_count(1)

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#content")).to_contain_text("Logged out")

    # The viewer reads the same incident and gets no control at all.
    log_in(page, base, "victor")
    page.goto(change_url)
    expect(page.locator("#timeline li.kind-note .body")).to_have_text(NOTE)
    for name in ("Acknowledge", "Add note", "Assign", "Assign me as commander"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile(r"^Move to"))).to_have_count(0)
    expect(page.locator(".note-form")).to_have_count(0)
    expect(page.locator("#checklist button.tick")).to_have_count(0)
    expect(page.locator("#checklist form")).to_have_count(0)

    # The incident above is already acknowledged, so its missing Acknowledge button proves
    # little: an unacknowledged one must not offer it to the viewer either.
    fresh = declare("Search results are stale", by=responder)
    page.goto(f"{base}/admin/incidents/incident/{fresh.pk}/change/")
    expect(page.locator(".incident-head")).to_contain_text(fresh.public_id)
    expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)

    page.goto(f"{base}/admin/incidents/incident/")
    expect(page.locator("#result_list")).to_contain_text(incident.public_id)
    expect(page.locator("select[name=action]")).to_have_count(0)

    # The browser's clicks wrote the timeline through the services.
    incident.refresh_from_db()
    assert incident.acknowledged_by == responder
    assert incident.acknowledged_at is not None
    assert list(incident.roles.filter(unassigned_at__isnull=True).values_list("role", "user")) == [
        (IncidentRole.Role.COMMANDER, responder.pk)
    ]
    assert incident.checklist.get(pk=first_item).done_by == responder
    entries = incident.timeline.order_by("at", "pk")
    assert [entry.kind for entry in entries] == [
        TimelineEntry.Kind.DECLARED,
        TimelineEntry.Kind.ACKNOWLEDGED,
        TimelineEntry.Kind.ROLE_ASSIGNED,
        TimelineEntry.Kind.CHECKLIST_DONE,
        TimelineEntry.Kind.NOTE,
    ]
    assert {entry.author for entry in entries} == {responder}
    note = entries.last()
    assert (note.note_kind, note.body) == (TimelineEntry.NoteKind.HYPOTHESIS, NOTE)
