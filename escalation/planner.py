"""What an escalation policy says is due for an incident at an instant: a pure function.

No database, no clock, no Celery: the engine (and the policy preview in the admin, and the
``simulate_escalation`` command) pass the incident's facts, the snapshot of its policy's steps,
the firings already recorded, and ``now``. DESIGN.md section 2, principle 3.

Rules (incident-response-guide.md "Escalation Matrix", incident-escalation-flow.md):

* A step falls due ``delay`` after declaration, and again every ``repeat_every`` up to
  ``repeat_times`` more times. Each (step, repetition) is one firing, fired at most once.
* A firing happens only while its condition holds *now*: acknowledging stops the steps
  conditioned on "not acknowledged", identifying the root cause stops "root cause not
  identified", and resolving stops every step. A firing whose time passed while the condition
  still held but was never recorded (a late tick) fires now, unless the condition has since
  stopped holding.
* Catching up never sends a burst: when several repetitions of one step are overdue at once,
  only the latest fires, and a repetition older than one already fired never fires. Three
  identical pages in the same second tell nobody anything the last one does not.
* Re-planning after a change of severity or flags is the same call with the new snapshot: its
  steps are planned from the declaration time, so those whose time has passed fire at once,
  except the firings already recorded (same step key and repetition).
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

NOT_ACKNOWLEDGED = "not_acknowledged"
NOT_RESOLVED = "not_resolved"
ROOT_CAUSE_NOT_IDENTIFIED = "root_cause_not_identified"
CONDITIONS = (NOT_ACKNOWLEDGED, NOT_RESOLVED, ROOT_CAUSE_NOT_IDENTIFIED)


@dataclass(frozen=True)
class Step:
    """One step of a policy snapshot. ``key`` is stable across re-snapshots of the same step."""

    key: str
    delay: timedelta
    condition: str = NOT_ACKNOWLEDGED
    targets: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("email",)
    repeat_every: timedelta | None = None
    repeat_times: int = 0
    label: str = ""

    def __post_init__(self):
        if self.condition not in CONDITIONS:
            raise ValueError(f"Unknown condition {self.condition!r}.")
        if self.delay < timedelta(0):
            raise ValueError("A step's delay cannot be negative.")
        if self.repeat_times < 0:
            raise ValueError("A step repeats zero or more times.")
        if self.repeat_times and (self.repeat_every is None or self.repeat_every <= timedelta(0)):
            raise ValueError("A repeating step needs a positive interval.")

    def due_times(self, declared_at: datetime) -> list[tuple[int, datetime]]:
        times = [(0, declared_at + self.delay)]
        for repetition in range(1, self.repeat_times + 1):
            times.append((repetition, declared_at + self.delay + self.repeat_every * repetition))
        return times


@dataclass(frozen=True)
class Facts:
    """What the planner needs to know about an incident; every time is UTC."""

    declared_at: datetime
    acknowledged_at: datetime | None = None
    root_cause_identified_at: datetime | None = None
    resolved_at: datetime | None = None

    def condition_holds(self, condition: str, at: datetime) -> bool:
        if self.resolved_at is not None and self.resolved_at <= at:
            return False
        stopped_at = {
            NOT_ACKNOWLEDGED: self.acknowledged_at,
            NOT_RESOLVED: None,
            ROOT_CAUSE_NOT_IDENTIFIED: self.root_cause_identified_at,
        }[condition]
        return stopped_at is None or stopped_at > at


@dataclass(frozen=True)
class Firing:
    step: Step
    repetition: int
    due_at: datetime

    @property
    def identity(self) -> tuple[str, int]:
        return self.step.key, self.repetition


@dataclass(frozen=True)
class Plan:
    due: list[Firing]  # to fire now, oldest first
    upcoming: list[Firing]  # would fire later if nothing changes, soonest first

    @property
    def next_due_at(self) -> datetime | None:
        """When the engine should wake up next for this incident (None: nothing left)."""
        return self.upcoming[0].due_at if self.upcoming else None


def plan(
    facts: Facts,
    steps: Iterable[Step],
    now: datetime,
    fired: Iterable[tuple[str, int]] = (),
) -> Plan:
    """Firings due at ``now`` and those still to come, given the firings already recorded."""
    done = set(fired)
    due: list[Firing] = []
    upcoming: list[Firing] = []
    latest_fired: dict[str, int] = {}
    for key, repetition in done:
        latest_fired[key] = max(repetition, latest_fired.get(key, -1))
    for step in steps:
        if not facts.condition_holds(step.condition, now):
            continue  # stopped: neither due now nor later
        overdue: Firing | None = None
        for repetition, due_at in step.due_times(facts.declared_at):
            if (step.key, repetition) in done or repetition < latest_fired.get(step.key, -1):
                continue
            firing = Firing(step, repetition, due_at)
            if due_at <= now:
                overdue = firing  # a later overdue repetition supersedes an earlier one
            else:
                upcoming.append(firing)
        if overdue is not None:
            due.append(overdue)
    due.sort(key=lambda f: (f.due_at, f.step.key, f.repetition))
    upcoming.sort(key=lambda f: (f.due_at, f.step.key, f.repetition))
    return Plan(due, upcoming)


def timeline(
    steps: Iterable[Step],
    declared_at: datetime,
    *,
    acknowledged_after: timedelta | None = None,
    root_cause_after: timedelta | None = None,
    resolved_after: timedelta | None = None,
    until: timedelta = timedelta(days=7),
) -> list[Firing]:
    """Every firing of a policy for a simulated incident, in order (the admin preview and
    ``simulate_escalation``): the planner replayed at each due time, recording as it goes."""
    steps = list(steps)

    def at(offset: timedelta | None) -> datetime | None:
        return declared_at + offset if offset is not None else None

    facts = Facts(
        declared_at,
        acknowledged_at=at(acknowledged_after),
        root_cause_identified_at=at(root_cause_after),
        resolved_at=at(resolved_after),
    )
    fired: list[Firing] = []
    now = declared_at
    end = declared_at + until
    while now <= end:
        result = plan(facts, steps, now, fired=[f.identity for f in fired])
        fired.extend(result.due)
        if result.next_due_at is None:
            break
        now = result.next_due_at
    return fired


def with_rounds(steps: list[Step], start: int, rounds: int, gap: timedelta) -> list[Step]:
    """The policy's steps followed by ``rounds`` more rounds of ``steps[start:]``.

    "Repeat from step N": each round starts ``gap`` after the last step of the round before,
    keeping the steps' spacing; a round's step has its own key, so it fires once like any other.
    """
    if not rounds or not steps or not 0 <= start < len(steps):
        return list(steps)
    looped = steps[start:]
    first, last = looped[0].delay, max(step.delay for step in steps)
    span = last - first + gap
    result = list(steps)
    for round_number in range(1, rounds + 1):
        for step in looped:
            result.append(
                replace(
                    step,
                    key=f"{step.key}~{round_number}",
                    delay=step.delay + span * round_number,
                    label=f"{step.label or step.key} (round {round_number + 1})",
                )
            )
    return result
