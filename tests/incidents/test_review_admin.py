"""Writing a review in the admin: sections, action items, completing, exports, the item list."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from incidents import reviews, services
from incidents.models import ActionItem, Review

from .factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def responder():
    return UserFactory(
        username="rita", first_name="Rita", last_name="Responder", groups=["Responder"]
    )


@pytest.fixture
def review(responder):
    with time_machine.travel(T0, tick=False):
        incident = declare("Payments down", code="P0", by=responder)
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        services.resolve_incident(incident, by=responder)
    return Review.objects.get(incident=incident)


def form_data(review, **sections) -> dict:
    fields = [
        "summary",
        "timeline",
        "primary_cause",
        "contributing_factors",
        "why_it_happened",
        "immediate_fix",
        "verification",
        "user_impact",
        "data_impact",
        "business_impact",
        "went_well",
        "could_improve",
        "lessons_learned",
    ]
    data = {name: getattr(review, name) for name in fields}
    data.update(sections)
    data.update(
        {
            "action_items-TOTAL_FORMS": "0",
            "action_items-INITIAL_FORMS": "0",
            "action_items-MIN_NUM_FORMS": "0",
            "action_items-MAX_NUM_FORMS": "1000",
        }
    )
    return data


def test_a_responder_writes_the_review_adds_an_action_and_completes_it(client, responder, review):
    client.force_login(responder)
    url = f"/admin/incidents/review/{review.pk}/change/"
    page = client.get(url).content.decode()
    assert "Date/Time: 2026-03-10 14:00 UTC" in page  # drafted from the incident
    assert "Still to fill in before it can be completed" in page

    data = form_data(
        review,
        primary_cause="Expired TLS certificate.",
        immediate_fix="Renewed it.",
        went_well="Paged in a minute.",
        could_improve="Nobody watched expiry dates.",
        lessons_learned="Monitor certificates.",
    )
    data.update(
        {
            "action_items-TOTAL_FORMS": "1",
            "action_items-0-action": "Alert 14 days before a certificate expires",
            "action_items-0-owner": str(responder.pk),
            "action_items-0-due_date": "2026-03-20",
            "action_items-0-priority": "high",
            "action_items-0-status": "open",
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    item = ActionItem.objects.get(review=review)
    assert (item.owner, item.priority, item.created_at is not None) == (responder, "high", True)

    client.post(f"/admin/incidents/review/{review.pk}/act/complete/")
    review.refresh_from_db()
    assert review.state == Review.State.COMPLETE and review.completed_by == responder
    # A complete review is the record: read only until reopened.
    assert "Reopen for editing" in client.get(url).content.decode()
    assert client.post(url, data).status_code == 403


def test_an_action_added_in_the_review_as_done_is_closed_and_one_with_a_blank_action_refused(
    client, responder, review
):
    client.force_login(responder)
    url = f"/admin/incidents/review/{review.pk}/change/"
    data = form_data(review)
    item = {
        "action_items-TOTAL_FORMS": "1",
        "action_items-0-owner": str(responder.pk),
        "action_items-0-due_date": "2026-03-20",
        "action_items-0-priority": "low",
        "action_items-0-status": "done",
    }
    refused = client.post(url, {**data, **item, "action_items-0-action": "   "})
    assert refused.status_code == 200 and not ActionItem.objects.exists()

    response = client.post(url, {**data, **item, "action_items-0-action": "Rotate the keys"})
    assert response.status_code == 302, response.content.decode()[:2000]
    added = ActionItem.objects.get(review=review)
    assert added.status == ActionItem.State.DONE
    assert added.created_at is not None and added.closed_at is not None


def test_completing_with_sections_missing_says_which(client, responder, review):
    client.force_login(responder)
    response = client.post(f"/admin/incidents/review/{review.pk}/act/complete/", follow=True)
    assert "Fill in before completing: Primary cause, Immediate fix" in response.content.decode()
    review.refresh_from_db()
    assert review.state == Review.State.DRAFT


def test_the_incident_page_links_the_review_and_a_review_can_be_required_there(
    client, responder, review
):
    client.force_login(responder)
    page = client.get(f"/admin/incidents/incident/{review.incident_id}/change/").content.decode()
    assert f"/admin/incidents/review/{review.pk}/change/" in page
    assert "P0 incidents always get a review" in page

    with time_machine.travel(T0, tick=False):
        minor = declare("Typo on pricing page", code="P3", by=responder)
    client.post(
        f"/admin/incidents/incident/{minor.pk}/act/require-review/",
        {"reason": "third time this month", "anchor": "review"},
    )
    assert Review.objects.get(incident=minor).reasons == [
        "requested by Rita Responder: third time this month"
    ]


def test_exports_markdown_and_a_printable_page(client, responder, review):
    client.force_login(responder)
    markdown = client.get(f"/admin/incidents/review/{review.pk}/export.md")
    assert markdown["Content-Type"].startswith("text/markdown")
    assert f'filename="{review.incident.public_id}-review.md"' in markdown["Content-Disposition"]
    assert markdown.content.decode().startswith(f"# Incident Report: {review.incident.public_id}")
    printable = client.get(f"/admin/incidents/review/{review.pk}/print/").content.decode()
    assert "@media print" in printable and "8. Action Items" in printable


def test_the_action_item_list_filters_mine_and_overdue(client, responder, review):
    other = UserFactory(username="omar", groups=["Responder"])
    for action, owner, due in (
        ("Mine, overdue", responder, date(2026, 3, 1)),
        ("Mine, later", responder, date(2026, 12, 1)),
        ("Someone else's, overdue", other, date(2026, 3, 1)),
    ):
        reviews.add_action_item(review, action=action, owner=owner, due_date=due)
    client.force_login(responder)

    with time_machine.travel(datetime(2026, 3, 15, 12, tzinfo=UTC), tick=True):
        mine = client.get("/admin/incidents/actionitem/?mine=yes").content.decode()
        overdue = client.get("/admin/incidents/actionitem/?due=overdue").content.decode()

    assert "Mine, overdue" in mine and "Mine, later" in mine
    assert "Someone else&#x27;s, overdue" not in mine
    assert "Mine, overdue" in overdue and "Someone else&#x27;s, overdue" in overdue
    assert "Mine, later" not in overdue


def test_a_security_incident_s_review_is_hidden_from_responders_not_on_it(client, responder):
    with time_machine.travel(T0, tick=False):
        breach = declare("Tokens leaked", code="P1", is_security=True, by=UserFactory())
        services.resolve_incident(breach, by=UserFactory())
    review = Review.objects.get(incident=breach)
    client.force_login(responder)
    assert client.get(f"/admin/incidents/review/{review.pk}/change/").status_code in (302, 404)
    assert "Tokens leaked" not in client.get("/admin/incidents/review/").content.decode()
    assert client.get(f"/admin/incidents/review/{review.pk}/export.md").status_code == 404
