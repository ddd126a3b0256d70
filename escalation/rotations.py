"""Who is on call: a pure function of a rotation's rules, its roster history and its overrides.

No database and no clock: callers pass plain values (``RotationRules``, ``Membership``,
``Cover``) and instants. The rules for handoffs that fall on a daylight-saving change are in
docs/oncall.md; the short version:

* Shifts measured in days or weeks hand over at a wall-clock time in the rotation's zone, so a
  weekly shift that spans a DST change lasts 167 or 169 hours. That is the only way a shift's
  length changes.
* A handoff whose local time does not exist (the skipped hour of spring) happens when the gap
  ends (01:30 in London on the last Sunday of March hands over at 02:00 BST).
* A handoff whose local time happens twice (the repeated hour of autumn) happens the first time.
* Shifts measured in hours are elapsed time from the first handoff: a 12-hour shift is always
  twelve hours, and its local handoff time moves by an hour across a DST change.
* A roster change (someone added, removed or reordered) takes effect at the first handoff at or
  after the change, so no shift is ever cut short by it; the turn continues with the next person
  after the last one on call, in the new order.
* An override replaces whoever is scheduled for its span; of overlapping overrides the one
  created last wins.
* Where nobody is scheduled (before the rotation starts, or an empty roster) the answer is a gap,
  never an invented person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOURS, DAYS, WEEKS = "hours", "days", "weeks"
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class RotationRules:
    zone: ZoneInfo
    unit: str  # HOURS, DAYS or WEEKS
    length: int  # shift length in units
    handoff_time: time  # local wall-clock time of the handoff
    handoff_weekday: int  # Monday=0; used when unit is WEEKS
    starts_on: date  # the first handoff is the first handoff time on or after this date


@dataclass(frozen=True)
class Membership:
    """One person's place in the roster over a span; ``until`` None means still a member."""

    user: int
    position: int
    since: datetime | None = None
    until: datetime | None = None

    def active_at(self, instant: datetime) -> bool:
        return is_active(self.since, self.until, instant)


def is_active(since: datetime | None, until: datetime | None, instant: datetime) -> bool:
    """Whether a roster row from ``since`` to ``until`` (None: open) holds at ``instant``."""
    return (since is None or since <= instant) and (until is None or instant < until)


@dataclass(frozen=True)
class Cover:
    """An override: ``user`` is on call from ``start`` to ``end`` whatever the schedule says."""

    user: int
    start: datetime
    end: datetime
    order: int = 0  # creation order: the later cover wins where two overlap


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    user: int | None  # None: a gap, nobody on call
    is_override: bool = False
    index: int | None = None  # the scheduled shift number (0 = first), None before the start

    @property
    def is_gap(self) -> bool:
        return self.user is None


def local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive local time in ``zone`` as a UTC instant, by the DST rules above."""
    first = local.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local:
        return instant  # exists; fold=0 is the first of two occurrences in autumn
    # Skipped in spring. fold=0 read it with the offset before the change, which lands after
    # the change; step back to the first instant of the new offset, i.e. the end of the gap.
    new_offset = instant.astimezone(zone).utcoffset()
    # Changes happen on whole minutes; stepping from a handoff time with seconds would stop
    # those seconds after the end of the gap.
    instant = instant.replace(second=0, microsecond=0)
    while (instant - _MINUTE).astimezone(zone).utcoffset() == new_offset:
        instant -= _MINUTE
    return instant


class Schedule:
    """The shift grid of one rotation: boundaries, and the shift containing an instant."""

    def __init__(self, rules: RotationRules):
        if rules.length < 1:
            raise ValueError("A shift lasts at least one unit.")
        if rules.unit not in (HOURS, DAYS, WEEKS):
            raise ValueError(f"Unknown shift unit {rules.unit!r}.")
        self.rules = rules
        first_day = rules.starts_on
        if rules.unit == WEEKS:
            first_day += timedelta(days=(rules.handoff_weekday - first_day.weekday()) % 7)
        self.first_day = first_day
        self.first = local_to_utc(datetime.combine(first_day, rules.handoff_time), rules.zone)
        self.step_days = rules.length * (7 if rules.unit == WEEKS else 1)

    def boundary(self, index: int) -> datetime:
        """Start of shift ``index`` (0 is the first shift)."""
        if self.rules.unit == HOURS:
            return self.first + timedelta(hours=self.rules.length * index)
        day = self.first_day + timedelta(days=self.step_days * index)
        return local_to_utc(datetime.combine(day, self.rules.handoff_time), self.rules.zone)

    def index_at(self, instant: datetime) -> int:
        """Number of the shift containing ``instant``; -1 before the first handoff."""
        if instant < self.first:
            return -1
        if self.rules.unit == HOURS:
            return int((instant - self.first) // timedelta(hours=self.rules.length))
        local_day = instant.astimezone(self.rules.zone).date()
        index = max((local_day - self.first_day).days // self.step_days, 0)
        # The estimate is off by at most one around the handoff time of the boundary day.
        while index > 0 and self.boundary(index) > instant:
            index -= 1
        while self.boundary(index + 1) <= instant:
            index += 1
        return index

    def first_index_from(self, instant: datetime) -> int:
        """Number of the first shift starting at or after ``instant``: the shift that first sees
        a roster change made then (a shift keeps the roster it started with)."""
        return max(self.index_at(instant - timedelta(microseconds=1)) + 1, 0)


def _roster(members: list[Membership], instant: datetime) -> list[Membership]:
    return sorted((m for m in members if m.active_at(instant)), key=lambda m: (m.position, m.user))


def _next_holder(roster: list[Membership], previous: Membership | None) -> int:
    """Index in ``roster`` of whoever comes after ``previous`` in turn."""
    if previous is None:
        return 0
    for index, member in enumerate(roster):
        if member.user == previous.user:
            return (index + 1) % len(roster)
    after = [i for i, m in enumerate(roster) if (m.position, m.user) > (previous.position, 0)]
    return after[0] if after else 0


def scheduled_shifts(
    rules: RotationRules, members: list[Membership], start: datetime, end: datetime
) -> list[Shift]:
    """The rotation's own shifts overlapping [start, end), before overrides.

    The roster is read at each shift's start. Runs of shifts with the same roster are jumped
    over arithmetically, so the cost grows with the number of roster changes and the shifts
    returned, not with the rotation's age.
    """
    schedule = Schedule(rules)
    shifts: list[Shift] = []
    if start < schedule.first:
        shifts.append(Shift(start, min(schedule.first, end), None))
        if end <= schedule.first:
            return shifts
    last_index = schedule.index_at(end - timedelta(microseconds=1))
    # Instants where the roster may change, snapped to the shift that first sees the change.
    change_indexes = sorted(
        {
            schedule.first_index_from(instant)
            for m in members
            for instant in (m.since, m.until)
            if instant is not None
        }
        | {0}
    )
    first_wanted = max(schedule.index_at(start), 0)
    previous: Membership | None = None
    for seg_no, seg_start in enumerate(change_indexes):
        if seg_start > last_index:
            break
        seg_end = change_indexes[seg_no + 1] if seg_no + 1 < len(change_indexes) else None
        roster = _roster(members, schedule.boundary(seg_start))
        if not roster:
            holder_at = None
        else:
            offset = _next_holder(roster, previous)

            def holder_at(index, roster=roster, offset=offset, seg_start=seg_start):
                return roster[(offset + index - seg_start) % len(roster)]

        stop = last_index + 1 if seg_end is None else min(seg_end, last_index + 1)
        for index in range(max(seg_start, first_wanted), stop):
            member = holder_at(index) if holder_at else None
            shifts.append(
                Shift(
                    schedule.boundary(index),
                    schedule.boundary(index + 1),
                    member.user if member else None,
                    index=index,
                )
            )
        if holder_at is not None:
            last_in_segment = (seg_end if seg_end is not None else last_index + 1) - 1
            previous = holder_at(last_in_segment)
    return _merge_gaps(shifts)


def _merge_gaps(shifts: list[Shift]) -> list[Shift]:
    merged: list[Shift] = []
    for shift in shifts:
        if merged and shift.is_gap and merged[-1].is_gap and merged[-1].end == shift.start:
            merged[-1] = Shift(merged[-1].start, shift.end, None, index=merged[-1].index)
        else:
            merged.append(shift)
    return merged


def apply_overrides(shifts: list[Shift], covers: list[Cover]) -> list[Shift]:
    """Cut the covers into the schedule; later covers win over earlier ones."""
    result = list(shifts)
    for cover in sorted(covers, key=lambda c: c.order):
        if cover.end <= cover.start:
            continue
        pieces: list[Shift] = []
        inserted = False
        for shift in result:
            if shift.end <= cover.start or shift.start >= cover.end:
                pieces.append(shift)
                continue
            if shift.start < cover.start:
                pieces.append(_clip(shift, shift.start, cover.start))
            if not inserted:
                pieces.append(
                    Shift(
                        max(cover.start, result[0].start),
                        min(cover.end, result[-1].end),
                        cover.user,
                        is_override=True,
                        index=shift.index,
                    )
                )
                inserted = True
            if shift.end > cover.end:
                pieces.append(_clip(shift, cover.end, shift.end))
        result = pieces
    return result


def _clip(shift: Shift, start: datetime, end: datetime) -> Shift:
    return Shift(start, end, shift.user, shift.is_override, shift.index)


def shifts_between(
    rules: RotationRules,
    members: list[Membership],
    covers: list[Cover],
    start: datetime,
    end: datetime,
) -> list[Shift]:
    """Who is on call over [start, end): consecutive spans covering it exactly, gaps included."""
    if end <= start:
        return []
    # Whole shifts reach outside the window; clipped first, no piece (and no cover cut into
    # one) can start before ``start`` or end after ``end``.
    scheduled = [
        _clip(shift, max(shift.start, start), min(shift.end, end))
        for shift in scheduled_shifts(rules, members, start, end)
    ]
    return apply_overrides(scheduled, covers)


def shift_window(rules: RotationRules, instant: datetime) -> tuple[datetime, datetime]:
    """The scheduled shift containing ``instant``; before the first handoff, [instant, first)."""
    schedule = Schedule(rules)
    index = schedule.index_at(instant)
    if index < 0:
        return instant, schedule.first
    return schedule.boundary(index), schedule.boundary(index + 1)


def on_call_at(
    rules: RotationRules, members: list[Membership], covers: list[Cover], instant: datetime
) -> Shift:
    """The span containing ``instant``: its person (or a gap) and since/until when."""
    window = shift_window(rules, instant)
    # Covers can start or end inside the shift; resolve the shift and pick the piece.
    pieces = shifts_between(rules, members, covers, *window) if window[1] > window[0] else []
    for piece in pieces:
        if piece.start <= instant < piece.end:
            return piece
    return Shift(instant, window[1], None)


def gaps(shifts: list[Shift]) -> list[Shift]:
    return [shift for shift in shifts if shift.is_gap]
