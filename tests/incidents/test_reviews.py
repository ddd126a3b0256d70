"""Post-incident reviews: the runbook's rules, the draft, completing, closing, exports."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from incidents import reviews, services
from incidents.models import ActionItem, Incident, Review, Service, Status, TimelineEntry

from .factories import UserFactory, declare, incident_type

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def resolve_after(incident, delta: timedelta, by=None):
    by = by or UserFactory()
    with time_machine.travel(T0 + delta, tick=False):
        return services.resolve_incident(incident, by=by)


def declared(code="P1", **kwargs):
    with time_machine.travel(T0, tick=False):
        return declare(kwargs.pop("title", "Checkout is down"), code=code, **kwargs)


def test_a_p0_gets_a_review_due_48_hours_after_resolution_with_a_drafted_report():
    incident = declared(
        "P0", users_affected=1200, impact_scope="No one could pay.", title="Payments down"
    )
    with time_machine.travel(T0 + timedelta(minutes=7), tick=False):
        services.acknowledge_incident(incident, by=UserFactory(first_name="Ann", last_name="Ack"))
    resolve_after(incident, timedelta(hours=1, minutes=30))

    review = Review.objects.get(incident=incident)
    assert review.required and review.state == Review.State.DRAFT
    assert review.reasons == ["P0 incidents always get a review"]
    assert review.due_at == T0 + timedelta(hours=1, minutes=30) + timedelta(hours=48)
    assert "Date/Time: 2026-03-10 14:00 UTC" in review.summary
    assert "Duration: 1 hours 30 minutes" in review.summary
    assert "Severity: P0 - Critical" in review.summary
    assert "Users Impacted: 1200" in review.summary
    assert "Acknowledgment: 2026-03-10 14:07 UTC - Ann Ack" in review.timeline
    assert "Root Cause Identified: not recorded" in review.timeline
    assert review.user_impact == "No one could pay."
    entry = incident.timeline.filter(kind=TimelineEntry.Kind.REVIEW).get()
    assert "due 2026-03-12 15:30 UTC" in entry.body


@pytest.mark.parametrize(
    ("lasted", "required"), [(timedelta(hours=4, minutes=1), True), (timedelta(hours=1), False)]
)
def test_a_p1_needs_a_review_only_when_it_lasted_over_four_hours(lasted, required):
    incident = declared("P1")
    resolve_after(incident, lasted)
    review = Review.objects.filter(incident=incident).first()
    assert (review is not None) == required
    if required:
        assert review.reasons == ["P1 lasting 4 hours 1 minutes (over 4 hours 0 minutes)"]


@pytest.mark.parametrize(
    ("flags", "reason"),
    [({"is_security": True}, "security incident"), ({"is_data_loss": True}, "data loss")],
)
def test_security_and_data_loss_always_get_a_review(flags, reason):
    incident = declared("P3", **flags)
    resolve_after(incident, timedelta(minutes=20))
    assert Review.objects.get(incident=incident).reasons == [reason]


def test_the_third_incident_of_a_type_or_service_in_thirty_days_is_recurring():
    api = Service.objects.create(name="Public API")
    kind = incident_type("high-error-rate")
    for days in (0, 12):
        with time_machine.travel(T0 + timedelta(days=days), tick=False):
            earlier = declare(
                "Errors spike", code="P3", incident_type=kind, affected_services=[api]
            )
            services.resolve_incident(earlier, by=UserFactory())
        assert not Review.objects.filter(incident=earlier).exists()
    with time_machine.travel(T0 + timedelta(days=25), tick=False):
        third = declare(
            "Errors spike again", code="P3", incident_type=kind, affected_services=[api]
        )
        services.resolve_incident(third, by=UserFactory())

    assert Review.objects.get(incident=third).reasons == [
        f"recurring: 3 {kind.name} incidents in 30 days",
        "recurring: 3 incidents affecting Public API in 30 days",
    ]


def test_recurring_services_are_counted_in_one_query_whatever_their_number(
    django_assert_num_queries,
):
    rules = reviews.rules()
    names = ["Billing", "Checkout", "Search"]
    for name in names:
        Service.objects.create(name=name)

    def incident_affecting(*chosen):
        return declare(
            "Errors", code="P3", affected_services=Service.objects.filter(name__in=chosen)
        )

    incident_affecting("Checkout")
    incident_affecting(*names)
    one = incident_affecting("Billing")
    three = incident_affecting(*names)
    now = three.declared_at

    one = Incident.objects.select_related("severity").get(pk=one.pk)
    three = Incident.objects.select_related("severity").get(pk=three.pk)
    with django_assert_num_queries(1):
        assert reviews.required_because(one, now, rules) == []
    with django_assert_num_queries(1):
        reasons = reviews.required_because(three, now, rules)
    assert reasons == [
        "recurring: 3 incidents affecting Billing in 30 days",
        "recurring: 3 incidents affecting Checkout in 30 days",
    ]


def test_a_required_review_blocks_closing_until_it_is_complete():
    incident = declared("P0")
    owner = UserFactory()
    resolve_after(incident, timedelta(hours=2))
    review = Review.objects.get(incident=incident)

    with pytest.raises(services.IncidentError, match="needs its post-incident review completed"):
        services.change_status(incident, Status.CLOSED, by=owner)
    with pytest.raises(reviews.ReviewError, match="Primary cause, Immediate fix"):
        reviews.complete_review(review, by=owner)

    for field in reviews.REQUIRED_SECTIONS:
        setattr(review, field, "Written.")
    review.save()
    reviews.add_action_item(
        review, action="Alert on replica lag", owner=owner, due_date=date(2026, 3, 20)
    )
    with time_machine.travel(T0 + timedelta(hours=30), tick=False):
        reviews.complete_review(review, by=owner)
        services.change_status(incident, Status.CLOSED, by=owner)

    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    assert (
        "completed the post-incident review"
        in incident.timeline.filter(kind=TimelineEntry.Kind.REVIEW).order_by("pk").last().body
    )


def test_a_reopened_review_blocks_closing_again_and_a_closed_incident_keeps_its_review():
    incident = declared("P0")
    owner = UserFactory()
    resolve_after(incident, timedelta(hours=2))
    review = Review.objects.get(incident=incident)
    for field in reviews.REQUIRED_SECTIONS:
        setattr(review, field, "Written.")
    review.save()
    reviews.complete_review(review, by=owner)

    reviews.reopen_review(review, by=owner)
    with pytest.raises(services.IncidentError, match="needs its post-incident review completed"):
        services.change_status(incident, Status.CLOSED, by=owner)

    reviews.complete_review(review, by=owner)
    services.change_status(incident, Status.CLOSED, by=owner)
    with pytest.raises(reviews.ReviewError, match="part of the record"):
        reviews.reopen_review(review, by=owner)
    review.refresh_from_db()
    assert review.state == Review.State.COMPLETE


def test_an_action_item_needs_an_owner_before_the_review_completes():
    incident = declared("P0")
    resolve_after(incident, timedelta(hours=1))
    review = Review.objects.get(incident=incident)
    for field in reviews.REQUIRED_SECTIONS:
        setattr(review, field, "Written.")
    review.save()
    ActionItem.objects.create(
        review=review, action="Someone should", due_date=date(2026, 3, 20), created_at=T0
    )
    with pytest.raises(reviews.ReviewError, match="no owner"):
        reviews.complete_review(review, by=UserFactory())


def test_a_review_can_be_required_by_hand_and_is_dated_on_resolution():
    incident = declared("P3")
    asker = UserFactory(first_name="Cara", last_name="Commander")
    reviews.require_review(incident, by=asker, reason="third customer escalation this month")
    review = Review.objects.get(incident=incident)
    assert review.due_at is None
    assert review.reasons == ["requested by Cara Commander: third customer escalation this month"]
    resolve_after(incident, timedelta(hours=1))
    review.refresh_from_db()
    assert review.due_at == T0 + timedelta(hours=49)
    with pytest.raises(reviews.ReviewError, match="Say why"):
        reviews.require_review(incident, by=asker, reason=" ")


def test_the_markdown_export_follows_the_runbook_template():
    incident = declared("P0", title="Payments down")
    resolve_after(incident, timedelta(hours=1))
    review = Review.objects.get(incident=incident)
    review.primary_cause = "Expired TLS certificate on the payment gateway."
    review.save()
    owner = UserFactory(first_name="Dev", last_name="Ops")
    reviews.add_action_item(
        review,
        action="Monitor certificate expiry",
        owner=owner,
        due_date=date(2026, 3, 20),
        priority="high",
    )

    export = reviews.as_markdown(review)

    assert export.filename == f"{incident.public_id}-review.md"
    text = export.content
    for heading in (
        f"# Incident Report: {incident.public_id}",
        "## 1. Incident Summary",
        "## 2. Timeline",
        "## 3. Root Cause Analysis",
        "## 4. Resolution Details",
        "## 5. Impact Assessment",
        "## 6. What Went Well",
        "## 7. What Could Be Improved",
        "## 8. Action Items",
        "## 9. Lessons Learned",
    ):
        assert heading in text
    assert "- **Primary Cause:** Expired TLS certificate on the payment gateway." in text
    assert "| Monitor certificate expiry | Dev Ops | 2026-03-20 | High | Open |" in text
