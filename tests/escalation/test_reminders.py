"""Reminders for action items and overdue reviews, through the outbox to a real SMTP server."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from escalation import reminders, tasks
from escalation.models import OrgRole
from incidents import reviews, services
from incidents.models import IncidentRole, Review
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def people():
    return {
        "cmd": UserFactory(username="cmd", email="cmd@example.com"),
        "owner": UserFactory(username="own", email="own@example.com"),
        "em": UserFactory(username="em", email="em@example.com"),
    }


@pytest.fixture
def review(people):
    with time_machine.travel(T0, tick=False):
        incident = declare("Payments down", code="P0", by=people["cmd"])
        services.assign_role(incident, IncidentRole.Role.COMMANDER, people["cmd"], by=people["cmd"])
        services.resolve_incident(incident, by=people["cmd"])
    OrgRole.objects.get_or_create(
        slug="engineering-manager", defaults={"name": "Engineering Manager"}
    )
    OrgRole.objects.get(slug="engineering-manager").holders.set([people["em"]])
    return Review.objects.get(incident=incident)


def run(at: datetime, django_capture_on_commit_callbacks) -> dict:
    with time_machine.travel(at, tick=False):
        with django_capture_on_commit_callbacks(execute=False):
            result = reminders.run_reminders()
        deliver_pending()
    return result


def test_an_owner_hears_two_days_before_and_once_overdue(
    people, review, smtp_server, django_capture_on_commit_callbacks
):
    reviews.add_action_item(
        review,
        action="Alert on certificate expiry",
        owner=people["owner"],
        due_date=date(2026, 3, 20),
    )

    assert (
        run(datetime(2026, 3, 17, 9, tzinfo=UTC), django_capture_on_commit_callbacks)[
            "action_items"
        ]
        == 0
    )
    run(datetime(2026, 3, 18, 9, tzinfo=UTC), django_capture_on_commit_callbacks)
    run(datetime(2026, 3, 19, 9, tzinfo=UTC), django_capture_on_commit_callbacks)  # not again
    run(datetime(2026, 3, 21, 9, tzinfo=UTC), django_capture_on_commit_callbacks)
    run(datetime(2026, 3, 22, 9, tzinfo=UTC), django_capture_on_commit_callbacks)  # not again

    mails = [m for m in smtp_server.messages if m["To"] == "own@example.com"]
    assert [m.get_content().split("\n")[2] for m in mails] == [
        f"Your action item from the review of {review.incident.public_id} (Payments down) "
        "is due on 2026-03-20:",
        f"Your action item from the review of {review.incident.public_id} (Payments down) "
        "was due on 2026-03-20 and is still open:",
    ]


def test_a_done_item_is_not_chased(people, review, smtp_server, django_capture_on_commit_callbacks):
    item = reviews.add_action_item(
        review, action="Rotate keys", owner=people["owner"], due_date=date(2026, 3, 12)
    )
    reviews.set_action_status(item, "done")
    run(datetime(2026, 3, 21, 9, tzinfo=UTC), django_capture_on_commit_callbacks)
    assert [m["To"] for m in smtp_server.messages if m["To"] == "own@example.com"] == []


def test_an_overdue_review_goes_to_the_commander_then_the_engineering_manager(
    people, review, smtp_server, django_capture_on_commit_callbacks
):
    due = review.due_at
    run(due - timedelta(minutes=1), django_capture_on_commit_callbacks)
    run(due + timedelta(minutes=5), django_capture_on_commit_callbacks)
    run(due + timedelta(hours=12), django_capture_on_commit_callbacks)
    run(due + timedelta(hours=24, minutes=5), django_capture_on_commit_callbacks)
    run(due + timedelta(hours=48), django_capture_on_commit_callbacks)

    # (The commander also had the resolution notice; this test is about review reminders.)
    reminders = [m for m in smtp_server.messages if m["Subject"].startswith("[Review")]
    assert [(m["To"], m["Subject"].split("]")[0]) for m in reminders] == [
        ("cmd@example.com", "[Review overdue"),
        ("em@example.com", "[Review overdue, escalated"),
    ]


def test_a_completed_review_is_not_chased(
    people, review, smtp_server, django_capture_on_commit_callbacks
):
    for field in reviews.REQUIRED_SECTIONS:
        setattr(review, field, "Written.")
    review.save()
    with time_machine.travel(T0 + timedelta(hours=5), tick=False):
        reviews.complete_review(review, by=people["cmd"])
    run(review.due_at + timedelta(days=3), django_capture_on_commit_callbacks)
    assert [m for m in smtp_server.messages if m["Subject"].startswith("[Review")] == []


def test_beat_runs_the_reminders(django_capture_on_commit_callbacks, people, review):
    from django.conf import settings

    assert (
        settings.CELERY_BEAT_SCHEDULE["review-reminders"]["task"]
        == "escalation.tasks.run_reminders"
    )
    at = review.due_at + timedelta(minutes=1)
    with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=False):
        assert tasks.run_reminders.apply().successful()
    review.refresh_from_db()
    assert review.commander_reminded_at is not None
