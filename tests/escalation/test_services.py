"""On-call services against the real database: rotations, rosters and overrides as rows.

"Primary" is the runbook's default rotation (weekly, Monday 00:00 UTC from 5 January 2026) with
alice, bob and carol: alice Jan 5, bob Jan 12, carol Jan 19, alice Jan 26, bob Feb 2 ...
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from escalation import services
from escalation.models import OrgRole, Override, Rotation, RotationMember
from escalation.services import OnCallError

from .factories import RotationFactory, UserFactory, rotation_with

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def person(username: str):
    return UserFactory(
        username=username, first_name=username.title(), last_name="Tester", is_staff=True
    )


@pytest.fixture
def owner():
    return person("owner")


@pytest.fixture
def alice():
    return person("alice")


@pytest.fixture
def bob():
    return person("bob")


@pytest.fixture
def carol():
    return person("carol")


@pytest.fixture
def dave():
    return person("dave")


@pytest.fixture
def primary(alice, bob, carol):
    return rotation_with(alice, bob, carol, name="Primary")


def answer_row(answer) -> tuple:
    username = answer.user.username if answer.user else None
    return (answer.rotation.name, username, answer.since, answer.until, answer.is_override)


def span_rows(spans) -> list[tuple]:
    return [(s.start, s.end, s.user.username if s.user else None, s.is_override) for s in spans]


def roster_rows(rotation) -> list[tuple]:
    return list(
        RotationMember.objects.filter(rotation=rotation)
        .order_by("pk")
        .values_list("pk", "user__username", "position", "since", "until")
    )


# on_call ------------------------------------------------------------------------------------


def test_on_call_answers_each_rotation_with_its_person_and_span(primary, alice, bob, carol, dave):
    rotation_with(
        bob,
        dave,
        name="London daily",
        shift_unit=Rotation.Unit.DAYS,
        handoff_time=time(9, 0),
        timezone="Europe/London",
        starts_on=date(2026, 3, 28),
    )
    rotation_with(
        carol,
        alice,
        name="Twelve hours",
        shift_unit=Rotation.Unit.HOURS,
        shift_length=12,
        handoff_time=time(8, 0),
    )
    RotationFactory(name="Empty")

    # Monday after London's spring change: the daily handoff is at 09:00 BST = 08:00 UTC.
    answers = services.on_call(at=utc(2026, 3, 30, 10))

    assert [answer_row(a) for a in answers] == [
        ("Empty", None, utc(2026, 3, 30), utc(2026, 4, 6), False),
        ("London daily", "bob", utc(2026, 3, 30, 8), utc(2026, 3, 31, 8), False),
        ("Primary", "alice", utc(2026, 3, 30), utc(2026, 4, 6), False),
        ("Twelve hours", "carol", utc(2026, 3, 30, 8), utc(2026, 3, 30, 20), False),
    ]
    assert answers[0].is_gap
    assert not any(a.is_gap for a in answers[1:])


def test_on_call_of_a_queryset_answers_only_its_rotations(primary, dave):
    rotation_with(dave, name="Secondary")

    answers = services.on_call(Rotation.objects.filter(name="Primary"), at=utc(2026, 1, 14, 12))

    assert [answer_row(a) for a in answers] == [
        ("Primary", "bob", utc(2026, 1, 12), utc(2026, 1, 19), False),
    ]


def test_on_call_defaults_to_now(primary):
    with time_machine.travel(utc(2026, 1, 21, 3), tick=False):
        [answer] = services.on_call()

    assert answer_row(answer) == ("Primary", "carol", utc(2026, 1, 19), utc(2026, 1, 26), False)


def test_on_call_honours_override_rows(primary, owner, dave, carol):
    services.create_override(
        primary, dave, utc(2026, 1, 14, 18), utc(2026, 1, 15, 6), by=owner, reason="bob travels"
    )
    services.create_override(primary, carol, utc(2026, 1, 14, 22), utc(2026, 1, 14, 23), by=owner)

    def at(*args):
        [answer] = services.on_call(at=utc(*args))
        return answer_row(answer)[1:]

    # The covers cut bob's shift: his span ends where the first begins, and restarts after.
    assert at(2026, 1, 14, 12) == ("bob", utc(2026, 1, 12), utc(2026, 1, 14, 18), False)
    assert at(2026, 1, 14, 18) == ("dave", utc(2026, 1, 14, 18), utc(2026, 1, 14, 22), True)
    assert at(2026, 1, 14, 22, 30) == ("carol", utc(2026, 1, 14, 22), utc(2026, 1, 14, 23), True)
    assert at(2026, 1, 15, 5) == ("dave", utc(2026, 1, 14, 23), utc(2026, 1, 15, 6), True)
    assert at(2026, 1, 16) == ("bob", utc(2026, 1, 15, 6), utc(2026, 1, 19), False)
    assert at(2026, 1, 19) == ("carol", utc(2026, 1, 19), utc(2026, 1, 26), False)


def test_on_call_reports_edges_in_utc_whatever_offset_it_is_asked_in(primary):
    paris_noon = datetime(2026, 1, 2, 12, tzinfo=ZoneInfo("Europe/Paris"))

    [answer] = services.on_call(at=paris_noon)

    assert answer.is_gap
    assert (answer.since, answer.until) == (utc(2026, 1, 2, 11), utc(2026, 1, 5))
    assert answer.since.utcoffset() == timedelta(0)


# Rosters ------------------------------------------------------------------------------------


def test_set_rotation_members_keeps_past_shifts_and_applies_from_the_next_handoff(
    primary, alice, bob, carol, dave
):
    now = utc(2026, 2, 4, 12)  # bob's shift, Feb 2 - Feb 9
    with time_machine.travel(now, tick=False):
        last_month = span_rows(services.shifts(primary.pk, now - timedelta(days=30), now))

        services.set_rotation_members(primary, [alice, carol, dave])

        assert span_rows(services.shifts(primary.pk, now - timedelta(days=30), now)) == last_month
    assert [s[2] for s in last_month] == ["alice", "bob", "carol", "alice", "bob"]
    # bob finishes his shift; whoever took his place in the order follows him.
    [answer] = services.on_call(at=now)
    assert answer_row(answer)[1:] == ("bob", utc(2026, 2, 2), utc(2026, 2, 9), False)
    later = span_rows(services.shifts(primary.pk, utc(2026, 2, 9), utc(2026, 5, 4)))
    assert [s[2] for s in later[:4]] == ["carol", "dave", "alice", "carol"]
    assert "bob" not in {s[2] for s in later}
    # History is kept as rows: the old roster ends at the change, the new one starts there.
    rows = roster_rows(primary)
    assert [(r[1], r[2], r[4]) for r in rows[:3]] == [
        ("alice", 0, now),
        ("bob", 1, now),
        ("carol", 2, now),
    ]
    assert [(r[1], r[2], r[3], r[4]) for r in rows[3:]] == [
        ("alice", 0, now, None),
        ("carol", 1, now, None),
        ("dave", 2, now, None),
    ]


def test_set_rotation_members_with_the_same_roster_twice_is_a_noop(primary, alice, bob, carol):
    before = roster_rows(primary)

    returned = services.set_rotation_members(
        primary, [alice, bob, carol], effective_at=utc(2026, 2, 4, 12)
    )

    assert roster_rows(primary) == before
    assert [m.pk for m in returned] == [r[0] for r in before]


def test_set_rotation_members_refuses_a_person_twice(primary, alice, bob):
    before = roster_rows(primary)

    with pytest.raises(OnCallError) as refused:
        services.set_rotation_members(primary, [alice, bob, alice], effective_at=utc(2026, 2, 4))

    assert refused.value.field == "members"
    assert roster_rows(primary) == before


@pytest.mark.parametrize("ends_at", [utc(2026, 1, 14, 18), utc(2026, 1, 14, 17)])
def test_create_override_refuses_an_end_not_after_its_start(primary, owner, dave, ends_at):
    with pytest.raises(OnCallError) as refused:
        services.create_override(primary, dave, utc(2026, 1, 14, 18), ends_at, by=owner)

    assert refused.value.field == "ends_at"
    assert not Override.objects.exists()


def test_create_override_records_who_created_it(primary, owner, dave):
    override = services.create_override(
        primary, dave, utc(2026, 1, 14, 18), utc(2026, 1, 15, 6), by=owner, reason="bob travels"
    )

    override.refresh_from_db()
    assert (override.rotation, override.user, override.created_by, override.reason) == (
        primary,
        dave,
        owner,
        "bob travels",
    )
    assert (override.starts_at, override.ends_at) == (utc(2026, 1, 14, 18), utc(2026, 1, 15, 6))


# Shifts and gaps ----------------------------------------------------------------------------


def test_shifts_lists_every_span_of_the_window_with_overrides(primary, owner, dave):
    services.create_override(primary, dave, utc(2026, 1, 14, 18), utc(2026, 1, 15, 6), by=owner)

    spans = services.shifts(primary.pk, utc(2026, 1, 10), utc(2026, 1, 20))

    assert span_rows(spans) == [
        (utc(2026, 1, 10), utc(2026, 1, 12), "alice", False),
        (utc(2026, 1, 12), utc(2026, 1, 14, 18), "bob", False),
        (utc(2026, 1, 14, 18), utc(2026, 1, 15, 6), "dave", True),
        (utc(2026, 1, 15, 6), utc(2026, 1, 19), "bob", False),
        (utc(2026, 1, 19), utc(2026, 1, 20), "carol", False),
    ]


def test_upcoming_gaps_before_the_start_and_after_the_roster_empties(alice, bob, carol, owner):
    rotation = rotation_with(alice, bob, starts_on=date(2026, 1, 19))
    services.set_rotation_members(rotation, [], effective_at=utc(2026, 1, 28, 12))
    services.create_override(rotation, carol, utc(2026, 2, 3), utc(2026, 2, 4), by=owner)

    gaps = services.upcoming_gaps(rotation.pk, now=utc(2026, 1, 7), days=30)

    assert span_rows(gaps) == [
        (utc(2026, 1, 7), utc(2026, 1, 19), None, False),
        (utc(2026, 2, 2), utc(2026, 2, 3), None, False),
        (utc(2026, 2, 4), utc(2026, 2, 6), None, False),
    ]
    assert services.upcoming_gaps(rotation.pk, now=utc(2026, 1, 19), days=14) == []


# Org roles ----------------------------------------------------------------------------------


def test_role_holders_are_the_holders_or_whoever_is_on_call_in_the_rotation(
    primary, alice, bob, dave, owner
):
    comms = OrgRole.objects.create(name="Comms Lead", slug="comms-lead")
    comms.holders.set([bob, alice])
    on_call_role = OrgRole.objects.create(name="Primary on call", slug="primary", rotation=primary)
    OrgRole.objects.create(
        name="Nobody yet", slug="nobody-yet", rotation=RotationFactory(name="Empty")
    )
    services.create_override(primary, dave, utc(2026, 1, 15), utc(2026, 1, 16), by=owner)

    def holders(at: datetime, roles=None) -> dict[str, list[str]]:
        return {
            role.slug: [user.username for user in people]
            for role, people in services.role_holders(roles, at=at)
        }

    at_noon = holders(utc(2026, 1, 14, 12))
    assert at_noon["comms-lead"] == ["alice", "bob"]
    assert at_noon["primary"] == ["bob"]
    assert at_noon["nobody-yet"] == []
    assert holders(utc(2026, 1, 15, 12))["primary"] == ["dave"]
    assert holders(utc(2026, 1, 20), roles=[on_call_role]) == {"primary": ["carol"]}


# Query counts -------------------------------------------------------------------------------


def _rotations_with_members_and_an_override(count: int, at: datetime) -> None:
    for _ in range(count):
        n = Rotation.objects.count()
        first, second, cover = (person(f"r{n}-{i}") for i in range(3))
        rotation = rotation_with(first, second, name=f"Rotation {n:03}")
        services.create_override(rotation, cover, at - timedelta(hours=1), at + timedelta(hours=1))


def test_on_call_makes_the_same_queries_for_3_and_40_rotations():
    at = utc(2026, 1, 14, 12)

    _rotations_with_members_and_an_override(3, at)
    with CaptureQueriesContext(connection) as three:
        answers = services.on_call(at=at)
    assert len(answers) == 3

    _rotations_with_members_and_an_override(37, at)
    with CaptureQueriesContext(connection) as forty:
        answers = services.on_call(at=at)
    assert len(answers) == 40

    # Rotations, their members, their overrides, the people.
    assert len(three) == len(forty) == 4
    assert all(a.is_override and a.user.username.endswith("-2") for a in answers)
    assert all(a.since == at - timedelta(hours=1) for a in answers)


def test_on_call_query_count_with_django_assert_num_queries(django_assert_num_queries, primary):
    with django_assert_num_queries(4):
        services.on_call(at=utc(2026, 1, 14, 12))
