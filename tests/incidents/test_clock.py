"""Deadlines in calendar time and in working time (incidents.clock); pure, no database."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from incidents.clock import WorkingCalendar, add_working_time, deadline

LONDON = ZoneInfo("Europe/London")

# The shipped calendar (presets.DEFAULT_BUSINESS_CALENDAR), written out: UTC, Mon-Fri 09-17.
OFFICE = WorkingCalendar(
    zone=ZoneInfo("UTC"),
    workdays=frozenset({0, 1, 2, 3, 4}),
    day_starts_at=time(9),
    day_ends_at=time(17),
)
LONDON_OFFICE = WorkingCalendar(
    zone=LONDON,
    workdays=frozenset({0, 1, 2, 3, 4}),
    day_starts_at=time(9),
    day_ends_at=time(17),
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def one_business_day(start: datetime, calendar: WorkingCalendar = OFFICE) -> datetime:
    return deadline(start, timedelta(days=1), in_business_days=True, calendar=calendar)


# 2026-03-13 is a Friday, 2026-03-14 a Saturday, 2026-03-16 a Monday.


def test_it_counts_one_business_day_from_friday_afternoon_to_monday_afternoon():
    assert one_business_day(utc(2026, 3, 13, 16)) == utc(2026, 3, 16, 16)


def test_it_counts_one_business_day_from_saturday_to_the_end_of_monday():
    assert one_business_day(utc(2026, 3, 14, 10)) == utc(2026, 3, 16, 17)


def test_it_counts_one_business_day_from_a_weekday_before_opening_to_that_evening():
    assert one_business_day(utc(2026, 3, 11, 8)) == utc(2026, 3, 11, 17)


def test_it_counts_one_business_day_from_opening_to_closing_of_the_same_day():
    assert one_business_day(utc(2026, 3, 11, 9)) == utc(2026, 3, 11, 17)


def test_it_counts_one_business_day_from_closing_time_to_the_next_closing_time():
    assert one_business_day(utc(2026, 3, 11, 17)) == utc(2026, 3, 12, 17)


def test_it_skips_holidays():
    calendar = WorkingCalendar(
        zone=ZoneInfo("UTC"),
        workdays=frozenset({0, 1, 2, 3, 4}),
        day_starts_at=time(9),
        day_ends_at=time(17),
        holidays=frozenset({date(2026, 3, 16), date(2026, 3, 17)}),
    )

    assert one_business_day(utc(2026, 3, 13, 16), calendar) == utc(2026, 3, 18, 16)


def test_it_reads_holidays_and_hours_from_a_business_calendar_row():
    from incidents.models import BusinessCalendar

    row = BusinessCalendar(
        name="UK",
        timezone="Europe/London",
        workdays=[0, 1, 2, 3, 4],
        day_starts_at="09:00",
        day_ends_at="17:30",
        holidays=["2026-12-25"],
    )

    assert row.spec() == WorkingCalendar(
        zone=LONDON,
        workdays=frozenset({0, 1, 2, 3, 4}),
        day_starts_at=time(9),
        day_ends_at=time(17, 30),
        holidays=frozenset({date(2026, 12, 25)}),
    )


def test_it_keeps_local_working_hours_across_the_march_clock_change():
    # The UK moves to BST on Sunday 2026-03-29: Friday is 16:00 GMT, Monday 16:00 BST.
    start = london(2026, 3, 27, 16)
    assert start == utc(2026, 3, 27, 16)

    due = one_business_day(start, LONDON_OFFICE)

    assert due == london(2026, 3, 30, 16)
    assert due == utc(2026, 3, 30, 15)


def test_it_keeps_local_working_hours_across_the_october_clock_change():
    # The UK goes back to GMT on Sunday 2026-10-25: Friday is 16:00 BST, Monday 16:00 GMT.
    start = london(2026, 10, 23, 16)
    assert start == utc(2026, 10, 23, 15)

    due = one_business_day(start, LONDON_OFFICE)

    assert due == london(2026, 10, 26, 16)
    assert due == utc(2026, 10, 26, 16)


def test_it_counts_a_full_working_day_on_the_monday_after_a_clock_change():
    # Saturday before the March change: all eight hours of Monday, 09:00-17:00 BST.
    assert one_business_day(london(2026, 3, 28, 10), LONDON_OFFICE) == utc(2026, 3, 30, 16)


def test_it_counts_half_a_business_day_as_half_the_working_hours():
    due = deadline(utc(2026, 3, 9, 9), timedelta(days=0.5), in_business_days=True, calendar=OFFICE)

    assert due == utc(2026, 3, 9, 13)


def test_it_carries_a_fractional_business_day_over_into_the_next_day():
    due = deadline(utc(2026, 3, 9, 13), timedelta(days=1.5), in_business_days=True, calendar=OFFICE)

    assert due == utc(2026, 3, 10, 17)


def test_it_adds_working_hours_across_the_night():
    assert add_working_time(utc(2026, 3, 9, 15), timedelta(hours=3), OFFICE) == utc(2026, 3, 10, 10)


def test_it_returns_the_start_for_no_working_time():
    start = utc(2026, 3, 14, 10)

    assert add_working_time(start, timedelta(0), OFFICE) == start


def test_it_returns_deadlines_in_utc_for_a_start_in_another_zone():
    start = datetime(2026, 3, 13, 11, tzinfo=ZoneInfo("America/New_York"))  # 15:00 UTC

    due = one_business_day(start)

    assert due == utc(2026, 3, 16, 15)
    assert due.utcoffset() == timedelta(0)


def test_it_refuses_a_calendar_without_working_days():
    calendar = WorkingCalendar(
        zone=ZoneInfo("UTC"), workdays=frozenset(), day_starts_at=time(9), day_ends_at=time(17)
    )

    with pytest.raises(ValueError, match="no working time"):
        one_business_day(utc(2026, 3, 13, 16), calendar)


def test_it_refuses_a_calendar_whose_working_day_has_no_hours():
    calendar = WorkingCalendar(
        zone=ZoneInfo("UTC"),
        workdays=frozenset({0, 1, 2, 3, 4}),
        day_starts_at=time(9),
        day_ends_at=time(9),
    )

    with pytest.raises(ValueError, match="no working time"):
        one_business_day(utc(2026, 3, 13, 16), calendar)


def test_it_refuses_a_business_day_target_without_a_calendar():
    with pytest.raises(ValueError, match="needs a business calendar"):
        deadline(utc(2026, 3, 13, 16), timedelta(days=1), in_business_days=True, calendar=None)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (utc(2026, 3, 13, 16), timedelta(minutes=15)),
        (utc(2026, 3, 14, 10), timedelta(hours=2)),
        (utc(2026, 3, 13, 23, 50), timedelta(hours=48)),
        (utc(2026, 3, 13, 16), timedelta(weeks=1)),
    ],
)
@pytest.mark.parametrize("calendar", [OFFICE, None])
def test_it_adds_a_calendar_time_target_plainly_even_out_of_hours(start, target, calendar):
    assert deadline(start, target, in_business_days=False, calendar=calendar) == start + target
