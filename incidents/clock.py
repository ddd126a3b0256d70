"""Deadlines from SLA targets: calendar time, or working time of a business calendar.

Pure functions: no database, no clock. "N business days" is N working days' worth of working
time counted from the start, skipping nights, weekends and holidays. With a 09:00-17:00 calendar,
1 business day from Friday 16:00 is Monday 16:00; from Saturday 10:00 it is Monday 17:00. Working
hours are local to the calendar's zone, so a working day stays 09:00-17:00 across a DST change.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Ten years of days: far beyond any SLA, and a guard against a calendar with no working time.
_MAX_DAYS_SCANNED = 3660


@dataclass(frozen=True)
class WorkingCalendar:
    zone: ZoneInfo
    workdays: frozenset[int]
    day_starts_at: time
    day_ends_at: time
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_model(cls, calendar) -> "WorkingCalendar":
        return cls(
            zone=ZoneInfo(calendar.timezone),
            workdays=frozenset(int(day) for day in calendar.workdays),
            day_starts_at=_as_time(calendar.day_starts_at),
            day_ends_at=_as_time(calendar.day_ends_at),
            holidays=frozenset(date.fromisoformat(str(day)) for day in calendar.holidays or []),
        )

    @property
    def working_day(self) -> timedelta:
        """Length of one working day, as written in the calendar (wall-clock hours)."""
        start = datetime.combine(date(2000, 1, 3), self.day_starts_at)
        end = datetime.combine(date(2000, 1, 3), self.day_ends_at)
        return end - start

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.workdays or day in self.holidays:
            return None
        # Local wall-clock hours, turned into UTC so all arithmetic is in elapsed time.
        start = datetime.combine(day, self.day_starts_at, tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day, self.day_ends_at, tzinfo=self.zone).astimezone(UTC)
        return start, end


def _as_time(value) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value))


def add_working_time(start: datetime, amount: timedelta, calendar: WorkingCalendar) -> datetime:
    """The instant when ``amount`` of working time has passed since ``start``."""
    if amount <= timedelta(0):
        return start
    remaining = amount
    start = start.astimezone(UTC)
    day = start.astimezone(calendar.zone).date()
    for _ in range(_MAX_DAYS_SCANNED):
        window = calendar.window(day)
        if window is not None:
            opens, closes = window
            begin = max(start, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    raise ValueError("The business calendar has no working time in the next ten years.")


def deadline(
    start: datetime,
    target: timedelta,
    *,
    in_business_days: bool,
    calendar: WorkingCalendar | None,
) -> datetime:
    """``start`` plus an SLA target; a target in business days counts working days."""
    if not in_business_days:
        return start + target
    if calendar is None:
        raise ValueError("A target in business days needs a business calendar.")
    if calendar.working_day <= timedelta(0):
        # Otherwise N business days would be no time at all: due the instant it starts.
        raise ValueError("The business calendar has no working time in a day.")
    working_days = target / timedelta(days=1)
    return add_working_time(start, calendar.working_day * working_days, calendar)
