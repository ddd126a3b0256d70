"""The pure resolver with literal data: no database, no clock.

Unless a test says otherwise the rotation is the runbook's default (weekly, Monday 00:00 UTC)
from Monday 5 January 2026 with A, B and C, so its shifts are:

    #0 A Jan 5   #1 B Jan 12   #2 C Jan 19   #3 A Jan 26   #4 B Feb 2   #5 C Feb 9   #6 A Feb 16
"""

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from escalation.rotations import (
    DAYS,
    HOURS,
    WEEKS,
    Cover,
    Membership,
    RotationRules,
    Schedule,
    Shift,
    gaps,
    local_to_utc,
    on_call_at,
    shift_window,
    shifts_between,
)

UTC_ZONE = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

A, B, C, D = 1, 2, 3, 4
X, Y = 90, 91  # people who cover
MICRO = timedelta(microseconds=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def rules(
    unit: str = WEEKS,
    length: int = 1,
    *,
    zone: ZoneInfo = UTC_ZONE,
    handoff: time = time(0, 0),
    weekday: int = 0,
    starts_on: date = date(2026, 1, 5),
) -> RotationRules:
    return RotationRules(zone, unit, length, handoff, weekday, starts_on)


WEEKLY = rules()


def roster(*users: int, since: datetime | None = None, until: datetime | None = None):
    """Rows as set_rotation_members writes them: positions 0..n-1 in the given order."""
    return [Membership(user, position, since, until) for position, user in enumerate(users)]


def changed(old: tuple[int, ...], new: tuple[int, ...], at: datetime) -> list[Membership]:
    """Roster history after set_rotation_members(new) at ``at``: old rows end, new rows start."""
    return roster(*old, until=at) + roster(*new, since=at)


ABC = roster(A, B, C)


def spans(shifts: list[Shift]) -> list[tuple[datetime, datetime, int | None]]:
    return [(s.start, s.end, s.user) for s in shifts]


def starts(shifts: list[Shift]) -> list[datetime]:
    return [s.start for s in shifts]


def lengths(shifts: list[Shift]) -> list[timedelta]:
    return [s.end - s.start for s in shifts]


def holders(shifts: list[Shift]) -> list[int | None]:
    return [s.user for s in shifts]


def assert_chain(shifts: list[Shift], start: datetime, end: datetime) -> None:
    """Consecutive, non-empty spans covering [start, end) exactly."""
    assert shifts, "an empty answer covers nothing"
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start, (before, after)
    assert all(s.start < s.end for s in shifts), shifts


# Shift grid -------------------------------------------------------------------------------


def test_weekly_default_hands_over_monday_midnight_utc_in_roster_order_and_wraps():
    shifts = shifts_between(WEEKLY, ABC, [], utc(2026, 1, 5), utc(2026, 2, 16))

    assert spans(shifts) == [
        (utc(2026, 1, 5), utc(2026, 1, 12), A),
        (utc(2026, 1, 12), utc(2026, 1, 19), B),
        (utc(2026, 1, 19), utc(2026, 1, 26), C),
        (utc(2026, 1, 26), utc(2026, 2, 2), A),
        (utc(2026, 2, 2), utc(2026, 2, 9), B),
        (utc(2026, 2, 9), utc(2026, 2, 16), C),
    ]
    assert not any(s.is_override for s in shifts)


def test_first_weekly_handoff_is_the_first_handoff_weekday_on_or_after_starts_on():
    wednesday = rules(starts_on=date(2026, 1, 7))
    thursday_1700 = rules(starts_on=date(2026, 1, 7), weekday=3, handoff=time(17, 0))

    assert Schedule(wednesday).first == utc(2026, 1, 12)
    assert Schedule(thursday_1700).first == utc(2026, 1, 8, 17)


def test_daily_shifts_hand_over_every_day_at_the_handoff_time():
    daily = rules(DAYS, handoff=time(9, 0))

    shifts = shifts_between(daily, roster(A, B), [], utc(2026, 1, 5, 9), utc(2026, 1, 9, 9))

    assert spans(shifts) == [
        (utc(2026, 1, 5, 9), utc(2026, 1, 6, 9), A),
        (utc(2026, 1, 6, 9), utc(2026, 1, 7, 9), B),
        (utc(2026, 1, 7, 9), utc(2026, 1, 8, 9), A),
        (utc(2026, 1, 8, 9), utc(2026, 1, 9, 9), B),
    ]


def test_multi_day_shifts_last_that_many_days():
    three_days = rules(DAYS, 3, handoff=time(9, 0))

    shifts = shifts_between(three_days, ABC, [], utc(2026, 1, 5, 9), utc(2026, 1, 17, 9))

    assert starts(shifts) == [utc(2026, 1, d, 9) for d in (5, 8, 11, 14)]
    assert holders(shifts) == [A, B, C, A]


def test_twelve_hour_shifts_alternate_day_and_night():
    twelve_hours = rules(HOURS, 12, handoff=time(8, 0))

    shifts = shifts_between(twelve_hours, ABC, [], utc(2026, 1, 5, 8), utc(2026, 1, 7, 8))

    assert spans(shifts) == [
        (utc(2026, 1, 5, 8), utc(2026, 1, 5, 20), A),
        (utc(2026, 1, 5, 20), utc(2026, 1, 6, 8), B),
        (utc(2026, 1, 6, 8), utc(2026, 1, 6, 20), C),
        (utc(2026, 1, 6, 20), utc(2026, 1, 7, 8), A),
    ]


@pytest.mark.parametrize(
    ("rule", "boundaries"),
    [
        (WEEKLY, [utc(2026, 1, 5), utc(2026, 1, 12), utc(2026, 1, 19)]),
        (rules(DAYS, handoff=time(9, 0)), [utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)]),
        (rules(HOURS, 12, handoff=time(8, 0)), [utc(2026, 1, 5, 8), utc(2026, 1, 5, 20)]),
        # Across London's spring change: the handoff of 29 March is at the end of the gap.
        (
            rules(DAYS, zone=LONDON, handoff=time(1, 30), starts_on=date(2026, 3, 28)),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
        ),
    ],
)
def test_index_at_changes_exactly_at_each_boundary(rule, boundaries):
    schedule = Schedule(rule)

    assert schedule.first == boundaries[0]
    assert schedule.index_at(boundaries[0] - MICRO) == -1
    for index, boundary in enumerate(boundaries):
        assert schedule.boundary(index) == boundary
        assert schedule.index_at(boundary) == index
        assert schedule.index_at(boundary - MICRO) == index - 1


def test_shift_window_is_the_shift_or_from_the_instant_to_the_first_handoff():
    assert shift_window(WEEKLY, utc(2026, 1, 14, 12)) == (utc(2026, 1, 12), utc(2026, 1, 19))
    assert shift_window(WEEKLY, utc(2026, 1, 12)) == (utc(2026, 1, 12), utc(2026, 1, 19))
    assert shift_window(WEEKLY, utc(2026, 1, 2, 10)) == (utc(2026, 1, 2, 10), utc(2026, 1, 5))


def test_before_starts_on_the_answer_is_a_gap_from_the_query_to_the_first_handoff():
    asked = utc(2026, 1, 2, 10, 15)

    answer = on_call_at(WEEKLY, ABC, [], asked)

    assert answer.is_gap
    assert (answer.start, answer.end, answer.user) == (asked, utc(2026, 1, 5), None)
    assert spans(shifts_between(WEEKLY, ABC, [], utc(2026, 1, 1), utc(2026, 1, 12))) == [
        (utc(2026, 1, 1), utc(2026, 1, 5), None),
        (utc(2026, 1, 5), utc(2026, 1, 12), A),
    ]


def test_empty_roster_gives_gaps_not_people():
    answer = on_call_at(WEEKLY, [], [], utc(2026, 1, 14, 12))
    shifts = shifts_between(WEEKLY, [], [], utc(2026, 1, 1), utc(2026, 2, 2))

    assert (answer.start, answer.end, answer.user) == (utc(2026, 1, 12), utc(2026, 1, 19), None)
    # Before the start and every empty shift after it: one gap, never an invented person.
    assert spans(shifts) == [(utc(2026, 1, 1), utc(2026, 2, 2), None)]


def test_shifts_between_an_empty_or_reversed_window_is_empty():
    assert shifts_between(WEEKLY, ABC, [], utc(2026, 1, 14), utc(2026, 1, 14)) == []
    assert shifts_between(WEEKLY, ABC, [], utc(2026, 1, 14), utc(2026, 1, 13)) == []


def test_a_schedule_refuses_a_zero_length_shift_or_an_unknown_unit():
    with pytest.raises(ValueError, match="at least one unit"):
        Schedule(rules(length=0))
    with pytest.raises(ValueError, match="Unknown shift unit"):
        Schedule(rules("fortnights"))


# Daylight saving ---------------------------------------------------------------------------
# 2026 changes: London 29 March 01:00 UTC and 25 October 01:00 UTC;
# New York 8 March 07:00 UTC and 1 November 06:00 UTC.


@pytest.mark.parametrize(
    ("zone", "mondays_utc", "middle_week"),
    [
        pytest.param(
            LONDON,
            [utc(2026, 3, 16, 9), utc(2026, 3, 23, 9), utc(2026, 3, 30, 8), utc(2026, 4, 6, 8)],
            hours(167),
            id="london-spring",
        ),
        pytest.param(
            LONDON,
            [utc(2026, 10, 12, 8), utc(2026, 10, 19, 8), utc(2026, 10, 26, 9), utc(2026, 11, 2, 9)],
            hours(169),
            id="london-autumn",
        ),
        pytest.param(
            NEW_YORK,
            [utc(2026, 2, 23, 14), utc(2026, 3, 2, 14), utc(2026, 3, 9, 13), utc(2026, 3, 16, 13)],
            hours(167),
            id="new-york-spring",
        ),
        pytest.param(
            NEW_YORK,
            [
                utc(2026, 10, 19, 13),
                utc(2026, 10, 26, 13),
                utc(2026, 11, 2, 14),
                utc(2026, 11, 9, 14),
            ],
            hours(169),
            id="new-york-autumn",
        ),
    ],
)
def test_weekly_monday_0900_local_handoff_keeps_local_time_across_dst(
    zone, mondays_utc, middle_week
):
    weekly_0900 = rules(zone=zone, handoff=time(9, 0))

    shifts = shifts_between(weekly_0900, roster(A, B), [], mondays_utc[0], mondays_utc[-1])

    assert starts(shifts) == mondays_utc[:-1]
    assert shifts[-1].end == mondays_utc[-1]
    for shift in shifts:
        local = shift.start.astimezone(zone)
        assert (local.weekday(), local.time()) == (0, time(9, 0))
    # Only the week spanning the change differs from 168 hours, by exactly the hour.
    assert lengths(shifts) == [hours(168), middle_week, hours(168)]
    first, second, third = holders(shifts)
    assert first != second and third == first


@pytest.mark.parametrize(
    ("zone", "handoff", "first_day", "boundaries_utc", "first_local_after_gap"),
    [
        pytest.param(
            LONDON,
            time(1, 30),
            date(2026, 3, 28),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
            time(2, 0),  # 02:00 BST
            id="london-0130",
        ),
        pytest.param(
            NEW_YORK,
            time(2, 30),
            date(2026, 3, 7),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)],
            time(3, 0),  # 03:00 EDT
            id="new-york-0230",
        ),
    ],
)
def test_daily_handoff_in_the_skipped_hour_happens_when_the_gap_ends(
    zone, handoff, first_day, boundaries_utc, first_local_after_gap
):
    daily = rules(DAYS, zone=zone, handoff=handoff, starts_on=first_day)
    start, end = boundaries_utc[0], boundaries_utc[-1] + hours(24)

    shifts = shifts_between(daily, roster(A, B), [], start, end)

    assert starts(shifts) == boundaries_utc
    assert shifts[1].start.astimezone(zone).time() == first_local_after_gap
    # The lost hour comes off the two shifts around the gap's end, half an hour each; the day
    # after is a plain 24 hours, and nothing else moves.
    assert lengths(shifts) == [hours(23.5), hours(23.5), hours(24)]
    assert sum(lengths(shifts[:2]), timedelta()) == boundaries_utc[2] - boundaries_utc[0]
    assert sum(lengths(shifts), timedelta()) == end - start == hours(71)
    assert holders(shifts) == [A, B, A]


@pytest.mark.parametrize(
    ("zone", "first_day", "boundaries_utc"),
    [
        pytest.param(
            LONDON,
            date(2026, 10, 24),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
            id="london",
        ),
        pytest.param(
            NEW_YORK,
            date(2026, 10, 31),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            id="new-york",
        ),
    ],
)
def test_daily_handoff_in_the_repeated_hour_happens_the_first_time(zone, first_day, boundaries_utc):
    daily = rules(DAYS, zone=zone, handoff=time(1, 30), starts_on=first_day)
    start, end = boundaries_utc[0], boundaries_utc[-1] + hours(24)

    shifts = shifts_between(daily, roster(A, B), [], start, end)

    assert starts(shifts) == boundaries_utc
    handoff_on_change_day = shifts[1].start.astimezone(zone)
    assert (handoff_on_change_day.time(), handoff_on_change_day.fold) == (time(1, 30), 0)
    assert lengths(shifts) == [hours(24), hours(25), hours(24)]
    assert sum(lengths(shifts), timedelta()) == end - start == hours(73)


@pytest.mark.parametrize("length", [12, 5])
@pytest.mark.parametrize(
    ("zone", "first_day", "change"),
    [
        pytest.param(LONDON, date(2026, 3, 28), utc(2026, 3, 29, 1), id="london-spring"),
        pytest.param(LONDON, date(2026, 10, 24), utc(2026, 10, 25, 1), id="london-autumn"),
        pytest.param(NEW_YORK, date(2026, 3, 7), utc(2026, 3, 8, 7), id="new-york-spring"),
        pytest.param(NEW_YORK, date(2026, 10, 31), utc(2026, 11, 1, 6), id="new-york-autumn"),
    ],
)
def test_hourly_shifts_are_exactly_n_real_hours_across_dst(zone, first_day, change, length):
    hourly = rules(HOURS, length, zone=zone, handoff=time(9, 0), starts_on=first_day)
    first = Schedule(hourly).first
    end = first + hours(length * 12)

    shifts = shifts_between(hourly, ABC, [], first, end)

    assert first.astimezone(zone).time() == time(9, 0)
    assert first < change < end
    assert lengths(shifts) == [hours(length)] * 12
    assert holders(shifts) == [A, B, C] * 4
    # Elapsed time is kept, so the wall-clock handoff moves by the hour after the change.
    first_local = first.astimezone(zone)
    for number, shift in enumerate(shifts):
        local = shift.start.astimezone(zone)
        moved = local.utcoffset() - first_local.utcoffset()
        assert abs(moved) == (hours(1) if shift.start >= change else timedelta(0))
        wall_clock = local.replace(tzinfo=None) - first_local.replace(tzinfo=None)
        assert wall_clock == hours(length * number) + moved


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        pytest.param(LONDON, datetime(2026, 1, 15, 12), utc(2026, 1, 15, 12), id="london-gmt"),
        pytest.param(LONDON, datetime(2026, 7, 1, 12), utc(2026, 7, 1, 11), id="london-bst"),
        pytest.param(NEW_YORK, datetime(2026, 6, 15, 9), utc(2026, 6, 15, 13), id="ny-edt"),
        pytest.param(NEW_YORK, datetime(2026, 12, 15, 9), utc(2026, 12, 15, 14), id="ny-est"),
        # Skipped: the end of the gap.
        pytest.param(
            LONDON, datetime(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1), id="london-gap-0100"
        ),
        pytest.param(
            LONDON, datetime(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1), id="london-gap-0130"
        ),
        pytest.param(
            LONDON, datetime(2026, 3, 29, 1, 59, 59), utc(2026, 3, 29, 1), id="london-gap-015959"
        ),
        pytest.param(
            LONDON, datetime(2026, 3, 29, 1, 30, 30), utc(2026, 3, 29, 1), id="london-gap-seconds"
        ),
        pytest.param(
            LONDON, datetime(2026, 3, 29, 2, 0), utc(2026, 3, 29, 1), id="london-0200-bst"
        ),
        pytest.param(NEW_YORK, datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7), id="ny-gap-0230"),
        pytest.param(NEW_YORK, datetime(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7), id="ny-0300-edt"),
        # Repeated: the first occurrence.
        pytest.param(LONDON, datetime(2026, 10, 25, 1, 0), utc(2026, 10, 25, 0), id="london-0100"),
        pytest.param(
            LONDON, datetime(2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30), id="london-0130"
        ),
        pytest.param(LONDON, datetime(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2), id="london-0200"),
        pytest.param(NEW_YORK, datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30), id="ny-0130"),
    ],
)
def test_local_to_utc_for_existing_skipped_and_repeated_times(zone, local, expected):
    assert local_to_utc(local, zone) == expected


# Roster changes -----------------------------------------------------------------------------

MID_SHIFT_1 = utc(2026, 1, 14, 12)  # B's first shift, Jan 12 - Jan 19
MID_SHIFT_4 = utc(2026, 2, 4, 12)  # B's second shift, Feb 2 - Feb 9


def test_member_removed_mid_shift_finishes_it_and_is_never_on_call_after_the_next_handoff():
    members = changed((A, B, C), (A, C), MID_SHIFT_1)

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 1, 5), utc(2026, 6, 1))

    assert spans(shifts[:3]) == [
        (utc(2026, 1, 5), utc(2026, 1, 12), A),
        (utc(2026, 1, 12), utc(2026, 1, 19), B),  # not cut short at the change
        (utc(2026, 1, 19), utc(2026, 1, 26), C),  # B's place passes to who followed B
    ]
    assert holders(shifts[3:7]) == [A, C, A, C]
    assert B not in holders(shifts[2:])
    assert on_call_at(WEEKLY, members, [], utc(2026, 1, 19) - MICRO).user == B
    assert on_call_at(WEEKLY, members, [], utc(2026, 1, 19)).user == C


def test_member_added_mid_shift_enters_at_the_next_handoff():
    members = changed((A, B, C), (A, B, D, C), MID_SHIFT_1)

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 1, 5), utc(2026, 2, 23))

    assert holders(shifts) == [A, B, D, C, A, B, D]
    assert on_call_at(WEEKLY, members, [], MID_SHIFT_1 + hours(1)).user == B
    assert min(s.start for s in shifts if s.user == D) == utc(2026, 1, 19)


def test_past_shifts_keep_their_holders_after_roster_changes():
    window = (utc(2026, 1, 1), MID_SHIFT_4)
    before = shifts_between(WEEKLY, ABC, [], *window)

    for new in [(C, A), (D,), (), (C, B, A, D)]:
        after = shifts_between(WEEKLY, changed((A, B, C), new, MID_SHIFT_4), [], *window)
        assert spans(after) == spans(before), new
        # B keeps the whole shift the change falls in.
        members = changed((A, B, C), new, MID_SHIFT_4)
        assert on_call_at(WEEKLY, members, [], utc(2026, 2, 9) - MICRO).user == B
    assert spans(before)[-1] == (utc(2026, 2, 2), MID_SHIFT_4, B)


def test_turn_continues_after_the_last_holder_in_the_new_order():
    members = changed((A, B, C), (C, B, A), MID_SHIFT_4)

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 2, 2), utc(2026, 3, 9))

    # B held Feb 2; after B in the new order comes A, not the new top of the list.
    assert holders(shifts) == [B, A, C, B, A]


def test_roster_change_exactly_at_a_handoff_applies_to_that_shift():
    members = changed((A, B, C), (A, B), utc(2026, 1, 19))

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 1, 5), utc(2026, 2, 9))

    assert holders(shifts) == [A, B, A, B, A]


def test_someone_added_and_removed_within_one_shift_is_never_on_call():
    members = [*ABC, Membership(D, 3, since=utc(2026, 1, 13), until=utc(2026, 1, 16))]

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 1, 5), utc(2026, 3, 2))

    assert holders(shifts) == [A, B, C, A, B, C, A, B]


def test_emptied_roster_leaves_a_gap_and_the_turn_resumes_after_the_last_holder():
    members = [
        *roster(A, B, C, until=MID_SHIFT_1),
        *roster(A, B, C, since=MID_SHIFT_4),
    ]

    shifts = shifts_between(WEEKLY, members, [], utc(2026, 1, 5), utc(2026, 2, 23))

    assert spans(shifts) == [
        (utc(2026, 1, 5), utc(2026, 1, 12), A),
        (utc(2026, 1, 12), utc(2026, 1, 19), B),
        (utc(2026, 1, 19), utc(2026, 2, 9), None),
        (utc(2026, 2, 9), utc(2026, 2, 16), C),
        (utc(2026, 2, 16), utc(2026, 2, 23), A),
    ]


# Overrides ----------------------------------------------------------------------------------


def test_cover_inside_one_shift_splits_it_in_three():
    cover = Cover(X, utc(2026, 1, 14, 18), utc(2026, 1, 15, 6))

    shifts = shifts_between(WEEKLY, ABC, [cover], utc(2026, 1, 12), utc(2026, 1, 19))

    assert [(s.start, s.end, s.user, s.is_override) for s in shifts] == [
        (utc(2026, 1, 12), utc(2026, 1, 14, 18), B, False),
        (utc(2026, 1, 14, 18), utc(2026, 1, 15, 6), X, True),
        (utc(2026, 1, 15, 6), utc(2026, 1, 19), B, False),
    ]
    assert on_call_at(WEEKLY, ABC, [cover], utc(2026, 1, 14, 18)) == shifts[1]
    assert on_call_at(WEEKLY, ABC, [cover], utc(2026, 1, 15, 6) - MICRO).user == X
    assert on_call_at(WEEKLY, ABC, [cover], utc(2026, 1, 15, 6)).user == B


def test_cover_spanning_several_shifts_is_one_span():
    cover = Cover(X, utc(2026, 1, 15), utc(2026, 1, 27))

    shifts = shifts_between(WEEKLY, ABC, [cover], utc(2026, 1, 12), utc(2026, 2, 2))

    assert [(s.start, s.end, s.user, s.is_override) for s in shifts] == [
        (utc(2026, 1, 12), utc(2026, 1, 15), B, False),
        (utc(2026, 1, 15), utc(2026, 1, 27), X, True),
        (utc(2026, 1, 27), utc(2026, 2, 2), A, False),
    ]
    # C's whole shift is covered; the turn after it is unchanged.
    assert C not in holders(shifts)
    # "Who is on call now" answers with the cover's piece of the current shift.
    now = on_call_at(WEEKLY, ABC, [cover], utc(2026, 1, 20))
    assert (now.start, now.end, now.user, now.is_override) == (
        utc(2026, 1, 19),
        utc(2026, 1, 26),
        X,
        True,
    )


@pytest.mark.parametrize("listed", ["in creation order", "reversed"])
def test_overlapping_covers_the_one_created_later_wins(listed):
    wide = Cover(X, utc(2026, 1, 14), utc(2026, 1, 17), order=1)
    narrow = Cover(Y, utc(2026, 1, 15), utc(2026, 1, 16), order=2)
    covers = [wide, narrow] if listed == "in creation order" else [narrow, wide]

    shifts = shifts_between(WEEKLY, ABC, covers, utc(2026, 1, 12), utc(2026, 1, 19))

    assert spans(shifts) == [
        (utc(2026, 1, 12), utc(2026, 1, 14), B),
        (utc(2026, 1, 14), utc(2026, 1, 15), X),
        (utc(2026, 1, 15), utc(2026, 1, 16), Y),
        (utc(2026, 1, 16), utc(2026, 1, 17), X),
        (utc(2026, 1, 17), utc(2026, 1, 19), B),
    ]


def test_an_earlier_cover_under_a_later_one_never_shows():
    narrow = Cover(Y, utc(2026, 1, 15), utc(2026, 1, 16), order=1)
    wide = Cover(X, utc(2026, 1, 14), utc(2026, 1, 17), order=2)

    shifts = shifts_between(WEEKLY, ABC, [wide, narrow], utc(2026, 1, 12), utc(2026, 1, 19))

    assert spans(shifts) == [
        (utc(2026, 1, 12), utc(2026, 1, 14), B),
        (utc(2026, 1, 14), utc(2026, 1, 17), X),
        (utc(2026, 1, 17), utc(2026, 1, 19), B),
    ]


def test_cover_over_a_gap_fills_it():
    before_start = Cover(X, utc(2026, 1, 2), utc(2026, 1, 3))
    empty_shift = Cover(Y, utc(2026, 1, 21), utc(2026, 1, 22), order=1)
    members = roster(A, B, until=MID_SHIFT_1) + roster(A, B, since=utc(2026, 1, 23))
    covers = [before_start, empty_shift]

    shifts = shifts_between(WEEKLY, members, covers, utc(2026, 1, 1), utc(2026, 1, 26))

    assert [(s.start, s.end, s.user, s.is_override) for s in shifts] == [
        (utc(2026, 1, 1), utc(2026, 1, 2), None, False),
        (utc(2026, 1, 2), utc(2026, 1, 3), X, True),
        (utc(2026, 1, 3), utc(2026, 1, 5), None, False),
        (utc(2026, 1, 5), utc(2026, 1, 12), A, False),
        (utc(2026, 1, 12), utc(2026, 1, 19), B, False),
        (utc(2026, 1, 19), utc(2026, 1, 21), None, False),
        (utc(2026, 1, 21), utc(2026, 1, 22), Y, True),
        (utc(2026, 1, 22), utc(2026, 1, 26), None, False),
    ]
    assert on_call_at(WEEKLY, members, covers, utc(2026, 1, 2, 12)).user == X
    assert on_call_at(WEEKLY, members, covers, utc(2026, 1, 21, 12)).user == Y


def test_covers_reaching_outside_the_window_are_cut_to_it():
    cover = Cover(X, utc(2026, 1, 6), utc(2026, 1, 8))

    assert spans(shifts_between(WEEKLY, ABC, [cover], utc(2026, 1, 9), utc(2026, 1, 10))) == [
        (utc(2026, 1, 9), utc(2026, 1, 10), A),
    ]
    assert spans(shifts_between(WEEKLY, ABC, [cover], utc(2026, 1, 7), utc(2026, 1, 10))) == [
        (utc(2026, 1, 7), utc(2026, 1, 8), X),
        (utc(2026, 1, 8), utc(2026, 1, 10), A),
    ]


def test_cover_that_ends_before_it_starts_changes_nothing():
    backwards = Cover(X, utc(2026, 1, 15), utc(2026, 1, 14))

    assert spans(shifts_between(WEEKLY, ABC, [backwards], utc(2026, 1, 12), utc(2026, 1, 19))) == [
        (utc(2026, 1, 12), utc(2026, 1, 19), B),
    ]


# Gaps ---------------------------------------------------------------------------------------


def test_gaps_lists_only_the_spans_where_nobody_is_on_call():
    starts_jan_12 = rules(starts_on=date(2026, 1, 12))
    members = [
        Membership(A, 0, until=utc(2026, 1, 20)),
        Membership(A, 0, since=utc(2026, 1, 30)),
    ]
    covers = [Cover(X, utc(2026, 1, 27), utc(2026, 1, 28))]

    shifts = shifts_between(starts_jan_12, members, covers, utc(2026, 1, 5), utc(2026, 2, 9))

    assert spans(gaps(shifts)) == [
        (utc(2026, 1, 5), utc(2026, 1, 12), None),  # before the start
        (utc(2026, 1, 26), utc(2026, 1, 27), None),  # empty roster at the Jan 26 handoff
        (utc(2026, 1, 28), utc(2026, 2, 2), None),
    ]
    assert all(g.is_gap for g in gaps(shifts))
    assert gaps(shifts_between(starts_jan_12, members, [], utc(2026, 2, 2), utc(2026, 2, 9))) == []


# Randomized ---------------------------------------------------------------------------------

ZONES = [UTC_ZONE, LONDON, NEW_YORK]
EPOCH = utc(2025, 12, 1)


def _random_case(rng: random.Random):
    unit = rng.choice([HOURS, DAYS, WEEKS])
    rule = rules(
        unit,
        rng.choice([1, 5, 8, 12, 24, 36]) if unit == HOURS else rng.randint(1, 3),
        zone=rng.choice(ZONES),
        # Half-hours too, so handoffs land in skipped and repeated hours.
        handoff=time(rng.randint(0, 23), rng.choice([0, 30])),
        weekday=rng.randint(0, 6),
        starts_on=date(2026, 1, 1) + timedelta(days=rng.randint(0, 330)),
    )

    def instant() -> datetime:
        return EPOCH + timedelta(minutes=rng.randint(0, 400 * 24 * 60))

    members = []
    for user in range(1, rng.randint(0, 5) + 1):
        since, until = sorted([instant(), instant()])
        members.append(
            Membership(
                user, rng.randint(0, 4), rng.choice([None, since]), rng.choice([None, until])
            )
        )
    covers = []
    for order in range(rng.randint(0, 3)):
        cover_start = instant()
        cover_end = cover_start + timedelta(minutes=rng.randint(1, 20 * 24 * 60))
        covers.append(Cover(100 + order, cover_start, cover_end, order=order))
    start = instant() + timedelta(microseconds=rng.randint(0, 999_999))
    end = start + timedelta(minutes=rng.randint(1, 60 * 24 * 60))
    return rule, members, covers, start, end


def test_shifts_between_chains_exactly_and_agrees_with_on_call_at_for_random_windows():
    rng = random.Random(1234)

    for _ in range(300):
        rule, members, covers, start, end = _random_case(rng)
        shifts = shifts_between(rule, members, covers, start, end)
        context = (rule, members, covers, start, end)

        assert_chain(shifts, start, end)
        for _ in range(8):
            t = start + (end - start) * rng.random()
            [span] = [s for s in shifts if s.start <= t < s.end]
            answer = on_call_at(rule, members, covers, t)
            assert answer.start <= t < answer.end, (context, t, answer)
            assert (answer.user, answer.is_override) == (span.user, span.is_override), (
                context,
                t,
            )
            # on_call_at answers within the current shift; shifts_between within its window.
            shift_start, shift_end = shift_window(rule, t)
            assert (max(answer.start, start), min(answer.end, end)) == (
                max(span.start, shift_start),
                min(span.end, shift_end),
            ), (context, t, answer, span)
