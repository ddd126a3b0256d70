"""``manage.py oncall``: who is on call, as text for people and as JSON for scripts.

"Primary" is weekly from Monday 5 January 2026 (alice, bob, carol), so on Wednesday 14 January
bob holds the Jan 12 - Jan 19 shift.
"""

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from escalation import services

from .factories import RotationFactory, UserFactory, rotation_with

pytestmark = pytest.mark.django_db

WEDNESDAY_NOON = "2026-01-14T12:00:00Z"
KEYS = ["rotation", "on_call", "emails", "since", "until", "gap"]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def person(username: str, **fields):
    return UserFactory(username=username, first_name=username.title(), last_name="Tester", **fields)


@pytest.fixture
def rotations():
    """Primary (bob on Jan 14), Secondary (dave, covered by carol 06:00-18:00), Empty (a gap)."""
    alice, bob, carol, dave = (person(name) for name in ("alice", "bob", "carol", "dave"))
    rotation_with(alice, bob, carol, name="Primary")
    secondary = rotation_with(dave, name="Secondary")
    services.create_override(secondary, carol, utc(2026, 1, 14, 6), utc(2026, 1, 14, 18))
    RotationFactory(name="Empty")


def oncall(*args: str) -> str:
    out = StringIO()
    call_command("oncall", *args, stdout=out)
    return out.getvalue()


def test_text_lists_every_rotation_with_person_and_span(rotations):
    assert oncall("--at", WEDNESDAY_NOON).splitlines() == [
        "Empty: NOBODY (gap) from 2026-01-12 00:00 to 2026-01-19 00:00 UTC",
        "Primary: Bob Tester (bob) from 2026-01-12 00:00 to 2026-01-19 00:00 UTC",
        "Secondary: Carol Tester (carol) (override) from 2026-01-14 06:00 to 2026-01-14 18:00 UTC",
    ]


def test_text_for_a_named_rotation(rotations):
    assert oncall("Primary", "--at", WEDNESDAY_NOON).splitlines() == [
        "Primary: Bob Tester (bob) from 2026-01-12 00:00 to 2026-01-19 00:00 UTC",
    ]


def test_json_for_all_rotations(rotations):
    answer = json.loads(oncall("--json", "--at", WEDNESDAY_NOON))

    assert [list(row) for row in answer] == [KEYS] * 3
    assert answer == [
        {
            "rotation": "Empty",
            "on_call": [],
            "emails": [],
            "since": "2026-01-12T00:00:00+00:00",
            "until": "2026-01-19T00:00:00+00:00",
            "gap": True,
        },
        {
            "rotation": "Primary",
            "on_call": ["bob"],
            "emails": ["bob@example.com"],
            "since": "2026-01-12T00:00:00+00:00",
            "until": "2026-01-19T00:00:00+00:00",
            "gap": False,
        },
        {
            "rotation": "Secondary",
            "on_call": ["carol"],
            "emails": ["carol@example.com"],
            "since": "2026-01-14T06:00:00+00:00",
            "until": "2026-01-14T18:00:00+00:00",
            "gap": False,
        },
    ]


def test_json_for_a_named_rotation(rotations):
    assert json.loads(oncall("Secondary", "--json", "--at", "2026-01-14T18:00:00Z")) == [
        {
            "rotation": "Secondary",
            "on_call": ["dave"],
            "emails": ["dave@example.com"],
            "since": "2026-01-14T18:00:00+00:00",
            "until": "2026-01-19T00:00:00+00:00",
            "gap": False,
        }
    ]


def test_json_leaves_out_an_empty_email_but_not_the_person():
    rotation_with(person("noemail", email=""), name="Quiet")

    [row] = json.loads(oncall("--json", "--at", WEDNESDAY_NOON))

    assert (row["on_call"], row["emails"], row["gap"]) == (["noemail"], [], False)


def test_a_gap_before_the_rotation_starts(rotations):
    [row] = json.loads(oncall("Primary", "--json", "--at", "2026-01-02T10:00:00Z"))

    assert row == {
        "rotation": "Primary",
        "on_call": [],
        "emails": [],
        "since": "2026-01-02T10:00:00+00:00",
        "until": "2026-01-05T00:00:00+00:00",
        "gap": True,
    }


def test_at_with_an_offset_is_the_same_instant_and_printed_in_utc(rotations):
    assert oncall("--at", "2026-01-14T13:00:00+01:00") == oncall("--at", WEDNESDAY_NOON)
    # Before the start the gap begins at the instant asked about: shown in UTC as labelled.
    assert oncall("Primary", "--at", "2026-01-02T12:00:00+02:00").splitlines() == [
        "Primary: NOBODY (gap) from 2026-01-02 10:00 to 2026-01-05 00:00 UTC",
    ]


def test_without_at_it_answers_for_now(rotations):
    with time_machine.travel(utc(2026, 1, 21, 3), tick=False):
        output = oncall("Primary")

    assert output.splitlines() == [
        "Primary: Carol Tester (carol) from 2026-01-19 00:00 to 2026-01-26 00:00 UTC",
    ]


def test_unknown_rotation_is_refused(rotations):
    with pytest.raises(CommandError, match="No rotation named 'Tertiary'"):
        oncall("Tertiary", "--at", WEDNESDAY_NOON)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("tomorrow", "is not an ISO-8601 date and time"),
        ("2026-01-14T12:00:00", "needs a time zone"),
        ("2026-01-14", "needs a time zone"),
    ],
)
def test_bad_or_naive_at_is_refused(rotations, at, message):
    with pytest.raises(CommandError, match=message):
        oncall("--at", at)


def test_impossible_date_at_is_refused(rotations):
    with pytest.raises(CommandError):
        oncall("--at", "2026-02-30T10:00:00Z")
