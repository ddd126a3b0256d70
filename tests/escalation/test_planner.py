"""The pure escalation planner with literal data: no database, no clock, no mocks.

The snapshots below are the runbook's matrix as a policy would snapshot it onto an incident
(incident-response-guide.md "Escalation Matrix", incident-escalation-flow.md "Escalation Paths"):

    P0         0    on call + DevOps Lead + Backend Lead   not acknowledged; again at 5 and 10 min
               2 h  Engineering Manager                    not resolved
               4 h  CTO                                    not resolved
    P1         2 h  team lead                              not resolved
               4 h  Engineering Manager                    not resolved
               8 h  executives                             not resolved
    security   0    Security Team                          not resolved
    data loss  0    Backend Lead + Engineering Manager     not resolved

Scenarios read as a timeline, like GoAlert's smoke tests: declare, move ``now``, plan, record
what was due as fired (as the engine does in the same transaction), and assert exactly which
firings were due, so any unexpected one fails the test.
"""

from datetime import UTC, datetime, timedelta

import pytest

from escalation.planner import (
    NOT_ACKNOWLEDGED,
    NOT_RESOLVED,
    ROOT_CAUSE_NOT_IDENTIFIED,
    Facts,
    Firing,
    Plan,
    Step,
    plan,
    timeline,
)

DECLARED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

P0 = (
    Step(
        key="p0-page",
        delay=timedelta(0),
        condition=NOT_ACKNOWLEDGED,
        targets=("oncall:primary", "role:devops-lead", "role:backend-lead"),
        repeat_every=5 * MINUTE,
        repeat_times=2,
        label="Page on call, DevOps Lead and Backend Lead",
    ),
    Step(
        key="p0-engineering-manager",
        delay=2 * HOUR,
        condition=NOT_RESOLVED,
        targets=("role:engineering-manager",),
        label="P0 unresolved after 2 hours",
    ),
    Step(
        key="p0-cto",
        delay=4 * HOUR,
        condition=NOT_RESOLVED,
        targets=("role:cto",),
        label="Extended outage: P0 over 4 hours",
    ),
)
P1 = (
    Step(
        key="p1-team-lead",
        delay=2 * HOUR,
        condition=NOT_RESOLVED,
        targets=("role:team-lead",),
        label="P1 unresolved after 2 hours",
    ),
    Step(
        key="p1-engineering-manager",
        delay=4 * HOUR,
        condition=NOT_RESOLVED,
        targets=("role:engineering-manager",),
        label="P1 unresolved after 4 hours",
    ),
    Step(
        key="p1-executives",
        delay=8 * HOUR,
        condition=NOT_RESOLVED,
        targets=("role:cto",),
        label="P1 unresolved after 8 hours: executive notification",
    ),
)
SECURITY = (
    Step(
        key="security-team",
        delay=timedelta(0),
        condition=NOT_RESOLVED,
        targets=("role:security-team",),
        label="Security breach: Security Team immediately",
    ),
)
DATA_LOSS = (
    Step(
        key="data-loss",
        delay=timedelta(0),
        condition=NOT_RESOLVED,
        targets=("role:backend-lead", "role:engineering-manager"),
        label="Data loss: Backend Lead and Engineering Manager immediately",
    ),
)
# incident-escalation-flow.md, P0 response: "Root Cause Identified? No, 30min -> Escalate to
# Engineering Manager".
ROOT_CAUSE = (
    Step(
        key="p0-root-cause",
        delay=30 * MINUTE,
        condition=ROOT_CAUSE_NOT_IDENTIFIED,
        targets=("role:engineering-manager",),
        label="P0 root cause not identified after 30 minutes",
    ),
)


def after(delta: timedelta) -> datetime:
    return DECLARED_AT + delta


def identities(firings: list[Firing]) -> list[tuple[str, int]]:
    return [firing.identity for firing in firings]


class Incident:
    """An incident as the engine sees it: its facts so far, its policy snapshot and the
    firings recorded. ``tick`` is one engine pass: plan at ``now``, record what was due."""

    def __init__(self, steps: tuple[Step, ...]):
        self.steps = steps
        self.declared_at = DECLARED_AT
        self.acknowledged_at: datetime | None = None
        self.root_cause_identified_at: datetime | None = None
        self.resolved_at: datetime | None = None
        self.fired: list[Firing] = []
        self.last: Plan | None = None

    def facts(self) -> Facts:
        return Facts(
            self.declared_at,
            acknowledged_at=self.acknowledged_at,
            root_cause_identified_at=self.root_cause_identified_at,
            resolved_at=self.resolved_at,
        )

    def tick(self, now: datetime) -> list[tuple[str, int]]:
        self.last = plan(self.facts(), self.steps, now, fired=identities(self.fired))
        self.fired.extend(self.last.due)
        return identities(self.last.due)

    def upcoming(self) -> list[tuple[str, int]]:
        return identities(self.last.upcoming)


def sweep(incident: Incident, *, until: timedelta, every: timedelta = MINUTE) -> list:
    """Tick every ``every`` from declaration to ``until``: (offset, step key, repetition) of
    everything that fired."""
    seen = []
    offset = timedelta(0)
    while offset <= until:
        seen += [(offset, key, repetition) for key, repetition in incident.tick(after(offset))]
        offset += every
    return seen


# Scenarios -----------------------------------------------------------------------------------


def test_unacknowledged_p0_pages_repeats_then_manager_then_cto_and_nothing_more():
    incident = Incident(P0)

    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]
    assert incident.last.due[0].step.targets == (
        "oncall:primary",
        "role:devops-lead",
        "role:backend-lead",
    )
    assert incident.last.next_due_at == after(5 * MINUTE)
    assert incident.tick(after(4 * MINUTE)) == []
    assert incident.tick(after(5 * MINUTE)) == [("p0-page", 1)]
    assert incident.tick(after(9 * MINUTE)) == []
    assert incident.tick(after(10 * MINUTE)) == [("p0-page", 2)]
    assert incident.last.next_due_at == after(2 * HOUR)
    assert incident.tick(after(2 * HOUR - SECOND)) == []
    assert incident.tick(after(2 * HOUR)) == [("p0-engineering-manager", 0)]
    assert incident.last.due[0].step.targets == ("role:engineering-manager",)
    assert incident.tick(after(3 * HOUR)) == []
    assert incident.tick(after(4 * HOUR)) == [("p0-cto", 0)]
    assert incident.last.due[0].step.targets == ("role:cto",)
    assert incident.last.next_due_at is None
    assert incident.tick(after(7 * 24 * HOUR)) == []


def test_unacknowledged_p0_ticked_every_minute_fires_exactly_the_matrix():
    assert sweep(Incident(P0), until=24 * HOUR) == [
        (0 * MINUTE, "p0-page", 0),
        (5 * MINUTE, "p0-page", 1),
        (10 * MINUTE, "p0-page", 2),
        (2 * HOUR, "p0-engineering-manager", 0),
        (4 * HOUR, "p0-cto", 0),
    ]


def test_ack_at_3_min_stops_the_repeats_but_not_the_unresolved_steps():
    incident = Incident(P0)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]

    incident.acknowledged_at = after(3 * MINUTE)
    assert incident.tick(after(3 * MINUTE)) == []
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]
    assert incident.last.next_due_at == after(2 * HOUR)
    assert incident.tick(after(5 * MINUTE)) == []
    assert incident.tick(after(10 * MINUTE)) == []
    assert incident.tick(after(2 * HOUR)) == [("p0-engineering-manager", 0)]
    assert incident.tick(after(4 * HOUR)) == [("p0-cto", 0)]
    assert incident.last.next_due_at is None


def test_resolving_at_90_min_stops_everything():
    incident = Incident(P0)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]
    assert incident.tick(after(5 * MINUTE)) == [("p0-page", 1)]
    assert incident.tick(after(10 * MINUTE)) == [("p0-page", 2)]

    incident.resolved_at = after(90 * MINUTE)
    assert incident.tick(after(90 * MINUTE)) == []
    assert incident.upcoming() == []
    assert incident.tick(after(2 * HOUR)) == []
    assert incident.upcoming() == []
    assert incident.last.next_due_at is None
    assert incident.tick(after(4 * HOUR)) == []


def test_late_first_tick_fires_each_overdue_step_once_oldest_first_without_a_burst():
    incident = Incident(P0)

    # The page and its two repeats are all overdue: one page goes out, not three.
    assert incident.tick(after(2 * HOUR + 30 * MINUTE)) == [
        ("p0-page", 2),
        ("p0-engineering-manager", 0),
    ]
    assert [firing.due_at for firing in incident.last.due] == [
        after(10 * MINUTE),
        after(2 * HOUR),
    ]
    assert incident.upcoming() == [("p0-cto", 0)]
    assert incident.last.next_due_at == after(4 * HOUR)

    # A duplicated wake-up at the same instant, after the first one was recorded.
    assert incident.tick(after(2 * HOUR + 30 * MINUTE)) == []
    assert incident.tick(after(4 * HOUR)) == [("p0-cto", 0)]


def test_late_tick_orders_by_due_time_not_by_snapshot_order():
    incident = Incident(P0[::-1] + ROOT_CAUSE)

    assert incident.tick(after(4 * HOUR + 30 * MINUTE)) == [
        ("p0-page", 2),
        ("p0-root-cause", 0),
        ("p0-engineering-manager", 0),
        ("p0-cto", 0),
    ]


def test_late_first_tick_after_ack_fires_only_what_ack_does_not_stop():
    incident = Incident(P0)
    incident.acknowledged_at = after(1 * MINUTE)

    assert incident.tick(after(2 * HOUR + 30 * MINUTE)) == [("p0-engineering-manager", 0)]


@pytest.mark.parametrize(
    "acknowledged_after",
    [4 * MINUTE, 5 * MINUTE, 7 * MINUTE],
    ids=["before-due", "at-due", "after-due"],
)
def test_ack_before_a_late_tick_stops_the_overdue_repeat(acknowledged_after):
    incident = Incident(P0)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]
    assert incident.last.next_due_at == after(5 * MINUTE)

    # The wake-up for the repeat due at 5 min is late and runs at 8 min, after the ack.
    incident.acknowledged_at = after(acknowledged_after)
    assert incident.tick(after(8 * MINUTE)) == []
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]


def test_ack_after_the_tick_that_planned_a_repeat_and_before_its_due_time_stops_it():
    incident = Incident(P0)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]
    assert incident.tick(after(4 * MINUTE)) == []
    assert incident.upcoming()[0] == ("p0-page", 1)
    assert incident.last.next_due_at == after(5 * MINUTE)

    incident.acknowledged_at = after(4 * MINUTE + 30 * SECOND)
    assert incident.tick(after(5 * MINUTE)) == []
    assert incident.tick(after(10 * MINUTE)) == []
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]


def test_root_cause_step_fires_while_the_root_cause_is_unknown():
    incident = Incident(P0 + ROOT_CAUSE)
    incident.acknowledged_at = after(2 * MINUTE)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]

    assert incident.tick(after(30 * MINUTE)) == [("p0-root-cause", 0)]
    assert incident.last.due[0].step.targets == ("role:engineering-manager",)


def test_root_cause_identified_stops_the_root_cause_step():
    incident = Incident(P0 + ROOT_CAUSE)
    incident.acknowledged_at = after(2 * MINUTE)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]

    incident.root_cause_identified_at = after(20 * MINUTE)
    assert incident.tick(after(30 * MINUTE)) == []
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]


def test_root_cause_step_stops_when_root_cause_identified_at_is_now_or_earlier():
    facts = Facts(DECLARED_AT, root_cause_identified_at=after(30 * MINUTE))

    just_before = plan(facts, ROOT_CAUSE, after(30 * MINUTE - SECOND))
    assert identities(just_before.due) == []
    assert identities(just_before.upcoming) == [("p0-root-cause", 0)]
    for now in (after(30 * MINUTE), after(31 * MINUTE)):
        result = plan(facts, ROOT_CAUSE, now)
        assert result == Plan(due=[], upcoming=[])


def test_severity_raised_p1_to_p0_pages_once_at_once_and_then_follows_p0():
    incident = Incident(P1 + DATA_LOSS)
    assert incident.tick(after(0 * MINUTE)) == [("data-loss", 0)]
    assert incident.last.next_due_at == after(2 * HOUR)
    assert incident.tick(after(15 * MINUTE)) == []

    # Re-snapshot on the severity change; the data loss flag's step keeps its key.
    incident.steps = P0 + DATA_LOSS
    # One page for the P0, not one per repetition already overdue.
    assert incident.tick(after(30 * MINUTE)) == [("p0-page", 2)]
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]
    assert incident.last.next_due_at == after(2 * HOUR)
    assert incident.tick(after(30 * MINUTE)) == []
    assert incident.tick(after(2 * HOUR)) == [("p0-engineering-manager", 0)]
    assert incident.tick(after(4 * HOUR)) == [("p0-cto", 0)]
    # The P1 snapshot is gone: no executive notification at 8 h on top of the CTO at 4 h.
    assert incident.tick(after(8 * HOUR)) == []
    assert incident.last.next_due_at is None


def test_security_flag_added_later_fires_security_team_at_once():
    incident = Incident(P0)
    assert incident.tick(after(0 * MINUTE)) == [("p0-page", 0)]
    incident.acknowledged_at = after(3 * MINUTE)
    assert incident.tick(after(3 * MINUTE)) == []

    # Flagged as a breach at 20 min: the security rule's step joins the snapshot. It is not
    # conditioned on "not acknowledged", so the ack before the flag does not silence it.
    incident.steps = P0 + SECURITY
    assert incident.tick(after(20 * MINUTE)) == [("security-team", 0)]
    assert incident.last.due[0].step.targets == ("role:security-team",)
    assert incident.last.due[0].due_at == DECLARED_AT
    assert incident.upcoming() == [("p0-engineering-manager", 0), ("p0-cto", 0)]
    assert incident.tick(after(21 * MINUTE)) == []


# Plan.next_due_at ----------------------------------------------------------------------------


def test_next_due_at_is_the_soonest_upcoming_firing():
    manager, cto = P0[1], P0[2]
    result = Plan(
        due=[],
        upcoming=[Firing(manager, 0, after(2 * HOUR)), Firing(cto, 0, after(4 * HOUR))],
    )

    assert result.next_due_at == after(2 * HOUR)


def test_next_due_at_is_none_when_nothing_is_left():
    assert Plan(due=[], upcoming=[]).next_due_at is None
    page = P0[0]
    assert Plan(due=[Firing(page, 0, DECLARED_AT)], upcoming=[]).next_due_at is None

    everything_fired = [("p0-page", 0), ("p0-page", 1), ("p0-page", 2)]
    everything_fired += [("p0-engineering-manager", 0), ("p0-cto", 0)]
    assert plan(Facts(DECLARED_AT), P0, after(5 * HOUR), everything_fired).next_due_at is None

    resolved = Facts(DECLARED_AT, resolved_at=after(1 * HOUR))
    assert plan(resolved, P0, after(1 * HOUR), [("p0-page", 0)]).next_due_at is None


# timeline() ----------------------------------------------------------------------------------


def offsets(firings: list[Firing]) -> list[tuple[timedelta, str, int]]:
    return [(f.due_at - DECLARED_AT, f.step.key, f.repetition) for f in firings]


def test_timeline_for_p0_acknowledged_after_20_min_and_resolved_after_5_h():
    firings = timeline(P0, DECLARED_AT, acknowledged_after=20 * MINUTE, resolved_after=5 * HOUR)

    assert offsets(firings) == [
        (0 * MINUTE, "p0-page", 0),
        (5 * MINUTE, "p0-page", 1),
        (10 * MINUTE, "p0-page", 2),
        (2 * HOUR, "p0-engineering-manager", 0),
        (4 * HOUR, "p0-cto", 0),
    ]


def test_timeline_for_p0_acknowledged_after_7_min_and_resolved_after_3_h():
    firings = timeline(P0, DECLARED_AT, acknowledged_after=7 * MINUTE, resolved_after=3 * HOUR)

    assert offsets(firings) == [
        (0 * MINUTE, "p0-page", 0),
        (5 * MINUTE, "p0-page", 1),
        (2 * HOUR, "p0-engineering-manager", 0),
    ]


def test_timeline_for_unacknowledged_p1_within_7_days():
    assert offsets(timeline(P1, DECLARED_AT)) == [
        (2 * HOUR, "p1-team-lead", 0),
        (4 * HOUR, "p1-engineering-manager", 0),
        (8 * HOUR, "p1-executives", 0),
    ]


def test_timeline_stops_at_until():
    assert offsets(timeline(P1, DECLARED_AT, until=4 * HOUR)) == [
        (2 * HOUR, "p1-team-lead", 0),
        (4 * HOUR, "p1-engineering-manager", 0),
    ]


# Step validation -----------------------------------------------------------------------------


def test_step_rejects_a_negative_delay():
    with pytest.raises(ValueError, match="delay cannot be negative"):
        Step(key="early", delay=-SECOND)


def test_step_rejects_an_unknown_condition():
    with pytest.raises(ValueError, match="Unknown condition 'not_mitigated'"):
        Step(key="odd", delay=timedelta(0), condition="not_mitigated")


@pytest.mark.parametrize("repeat_every", [None, timedelta(0), -MINUTE], ids=str)
def test_step_rejects_a_repeat_without_a_positive_interval(repeat_every):
    with pytest.raises(ValueError, match="repeating step needs a positive interval"):
        Step(key="page", delay=timedelta(0), repeat_every=repeat_every, repeat_times=2)


def test_an_older_repetition_never_fires_after_a_newer_one():
    step = Step("page", 0 * MINUTE, repeat_every=5 * MINUTE, repeat_times=3)
    facts = Facts(DECLARED_AT)

    result = plan(facts, [step], after(11 * MINUTE), fired=[("page", 2)])

    assert identities(result.due) == []
    assert identities(result.upcoming) == [("page", 3)]


def test_a_step_cannot_repeat_a_negative_number_of_times():
    with pytest.raises(ValueError, match="zero or more times"):
        Step("page", 0 * MINUTE, repeat_every=5 * MINUTE, repeat_times=-1)


def test_rounds_repeat_the_policy_from_a_step_keeping_its_spacing():
    from escalation.planner import with_rounds

    steps = [
        Step("a", timedelta(0), targets=("role:x",)),
        Step("b", timedelta(minutes=10), targets=("role:y",)),
        Step("c", timedelta(minutes=20), targets=("role:z",)),
    ]

    looped = with_rounds(steps, start=1, rounds=2, gap=timedelta(minutes=5))

    # Round 2 starts 5 minutes after the last step (c at 20): b at 25, c at 35; round 3 at 40, 50.
    assert [(s.key, s.delay.total_seconds() / 60) for s in looped] == [
        ("a", 0),
        ("b", 10),
        ("c", 20),
        ("b~1", 25),
        ("c~1", 35),
        ("b~2", 40),
        ("c~2", 50),
    ]
    assert with_rounds(steps, start=1, rounds=0, gap=timedelta(minutes=5)) == steps
