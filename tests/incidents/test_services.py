"""Every change to an incident, through incidents.services, as a user would trigger it."""

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser, Group

from incidents import services
from incidents.models import (
    BusinessCalendar,
    ChecklistPhase,
    DailySequence,
    DetectionSource,
    Incident,
    IncidentRole,
    Service,
    SeverityLevel,
    Status,
    TimelineEntry,
)
from incidents.services import IncidentError

from .factories import UserFactory, declare, incident_type, severity

pytestmark = pytest.mark.django_db

# A Tuesday afternoon, inside the default calendar's working hours.
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)

MILESTONE_FIELDS = (
    "detected_at",
    "acknowledged_at",
    "investigation_started_at",
    "root_cause_identified_at",
    "fix_applied_at",
    "service_restored_at",
    "verification_completed_at",
)

Kind = TimelineEntry.Kind
Role = IncidentRole.Role


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    # These users never log in; the default hasher's rounds would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def owner():
    return UserFactory(username="olivia", first_name="Olivia", last_name="Owner")


@pytest.fixture
def responder():
    return UserFactory(username="rita", first_name="Rita", last_name="Responder")


@pytest.fixture
def outsider():
    return UserFactory(username="otto", first_name="Otto", last_name="Outsider")


def entries(incident: Incident) -> list[tuple[str, str, dict]]:
    """The incident's own timeline, oldest first (the escalation's entries are tested with it)."""
    own = incident.timeline.exclude(kind=Kind.ESCALATED)
    return list(own.order_by("pk").values_list("kind", "body", "data"))


def last_entry(incident: Incident) -> TimelineEntry:
    return incident.timeline.exclude(kind=Kind.ESCALATED).order_by("-pk").first()


def milestones(incident: Incident) -> dict[str, datetime | None]:
    return {name: getattr(incident, name) for name in MILESTONE_FIELDS}


def walk(incident: Incident, *statuses: str, by) -> None:
    for status in statuses:
        services.change_status(incident, status, by=by)


# --- declare -------------------------------------------------------------------------------


def test_it_numbers_incidents_by_utc_day_and_sequence(clock, owner):
    first = declare(by=owner)
    second = declare("Search is slow", by=owner)
    clock.shift(timedelta(days=1))
    next_day = declare("Login fails", by=owner)

    for incident in (first, second, next_day):
        incident.refresh_from_db()
    assert [(i.public_id, i.day, i.sequence) for i in (first, second, next_day)] == [
        ("INC-20260310-001", date(2026, 3, 10), 1),
        ("INC-20260310-002", date(2026, 3, 10), 2),
        ("INC-20260311-001", date(2026, 3, 11), 1),
    ]
    assert dict(DailySequence.objects.values_list("day", "last")) == {
        date(2026, 3, 10): 2,
        date(2026, 3, 11): 1,
    }


def test_it_numbers_by_the_utc_day_not_the_local_one(owner):
    # 00:30 on the 11th in Berlin is still 23:30 on the 10th in UTC.
    with time_machine.travel(
        datetime(2026, 3, 11, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")), tick=False
    ):
        incident = declare(by=owner)

    incident.refresh_from_db()
    assert (incident.public_id, incident.day) == ("INC-20260310-001", date(2026, 3, 10))
    assert incident.declared_at == datetime(2026, 3, 10, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "ack_in", "resolve_in"),
    [
        ("P0", timedelta(minutes=15), timedelta(hours=2)),
        ("P1", timedelta(hours=1), timedelta(hours=8)),
        ("P2", timedelta(hours=4), timedelta(hours=48)),
    ],
)
def test_it_starts_the_sla_clocks_of_the_severity(clock, owner, code, ack_in, resolve_in):
    incident = declare(code=code, by=owner)

    incident.refresh_from_db()
    assert incident.severity.code == code
    assert incident.declared_at == T0
    assert incident.ack_due_at == T0 + ack_in
    assert incident.resolution_due_at == T0 + resolve_in


def test_a_p3_declared_on_friday_afternoon_is_due_for_acknowledgement_on_monday(owner):
    friday = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)
    with time_machine.travel(friday, tick=False):
        incident = declare(code="P3", by=owner)

    incident.refresh_from_db()
    assert incident.ack_due_at == datetime(2026, 3, 16, 15, 0, tzinfo=UTC)
    # The resolution target (1 week) is calendar time.
    assert incident.resolution_due_at == datetime(2026, 3, 20, 15, 0, tzinfo=UTC)


def test_a_p3_cannot_be_declared_without_a_business_calendar(clock, owner):
    p3 = severity("P3")
    BusinessCalendar.objects.all().delete()

    with pytest.raises(IncidentError) as refused:
        services.declare_incident(title="Typo", severity=p3, by=owner)

    assert refused.value.field == "severity"
    assert Incident.objects.count() == 0


def test_it_records_the_milestones_already_true_when_declared(clock, owner):
    incident = declare(
        by=owner,
        detected_at=T0 - timedelta(minutes=20),
        detection_source=DetectionSource.MONITORING_ALERT,
    )

    incident.refresh_from_db()
    assert milestones(incident) == {
        "detected_at": T0 - timedelta(minutes=20),
        "acknowledged_at": None,
        "investigation_started_at": T0,
        "root_cause_identified_at": None,
        "fix_applied_at": None,
        "service_restored_at": None,
        "verification_completed_at": None,
    }
    assert incident.status == Status.INVESTIGATING
    assert incident.detection_source == DetectionSource.MONITORING_ALERT
    assert (incident.resolved_at, incident.closed_at) == (None, None)
    assert (incident.time_to_acknowledge, incident.time_to_resolve) == (None, None)
    assert incident.declared_by == owner


def test_detection_defaults_to_the_declaration_time(clock, owner):
    incident = declare(by=owner)

    incident.refresh_from_db()
    assert incident.detected_at == T0


def test_it_copies_the_types_checklist_and_its_flags(clock, owner):
    breach = incident_type("security-breach")

    incident = declare(by=owner, code="P0", incident_type=breach)

    incident.refresh_from_db()
    assert incident.incident_type == breach
    assert (incident.is_security, incident.is_data_loss) == (True, False)
    template = list(breach.checklist.values_list("phase", "text"))
    assert len(template) == 14
    assert list(incident.checklist.values_list("position", "phase", "text")) == [
        (index, phase, text) for index, (phase, text) in enumerate(template)
    ]
    assert set(incident.checklist.values_list("source_type", "done_at", "done_by")) == {
        (breach.pk, None, None)
    }
    assert incident.checklist.first().phase == ChecklistPhase.DIAGNOSIS


def test_a_data_corruption_type_implies_data_loss(clock, owner):
    incident = declare(by=owner, code="P0", incident_type=incident_type("data-corruption"))

    incident.refresh_from_db()
    assert (incident.is_security, incident.is_data_loss) == (False, True)
    assert incident.checklist.count() == 15


def test_it_writes_the_declared_entry(clock, owner):
    api = Service.objects.create(name="API")
    incident = declare(
        "Checkout is down",
        code="P0",
        by=owner,
        incident_type=incident_type("security-breach"),
        affected_services=[api],
    )

    entry = incident.timeline.get()
    assert (entry.kind, entry.author, entry.at, entry.note_kind) == (Kind.DECLARED, owner, T0, "")
    assert entry.body == "Olivia Owner declared P0 Critical: Checkout is down (flags: security)"
    assert entry.data == {
        "severity": "P0",
        "ack_due_at": "2026-03-10T14:15:00+00:00",
        "resolution_due_at": "2026-03-10T16:00:00+00:00",
        "type": "security-breach",
    }
    assert list(incident.affected_services.all()) == [api]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "  "}, "title"),
        ({"detected_at": T0 + timedelta(minutes=1)}, "detected_at"),
    ],
)
def test_it_refuses_an_invalid_declaration_and_uses_no_number(clock, owner, kwargs, field):
    p1 = severity("P1")

    with pytest.raises(IncidentError) as refused:
        services.declare_incident(**{"title": "Down", "severity": p1, "by": owner, **kwargs})

    assert refused.value.field == field
    assert Incident.objects.count() == 0
    assert TimelineEntry.objects.count() == 0
    assert declare(by=owner).public_id == "INC-20260310-001"


def test_it_refuses_an_inactive_severity(clock, owner):
    severity("P0")
    SeverityLevel.objects.filter(code="P0").update(is_active=False)

    with pytest.raises(IncidentError) as refused:
        services.declare_incident(title="Down", severity=severity("P0"), by=owner)

    assert refused.value.field == "severity"
    assert str(refused.value) == "P0 Critical is not an active severity level."
    assert Incident.objects.count() == 0


# --- acknowledge ---------------------------------------------------------------------------


def test_ack_stores_who_when_and_how_long_it_took(clock, owner, responder):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=5))

    services.acknowledge_incident(incident, by=responder)

    incident.refresh_from_db()
    assert incident.acknowledged_at == T0 + timedelta(minutes=5)
    assert incident.acknowledged_by == responder
    assert incident.time_to_acknowledge == timedelta(minutes=5)
    assert incident.is_ack_breached() is False
    entry = last_entry(incident)
    assert (entry.kind, entry.body, entry.data) == (
        Kind.ACKNOWLEDGED,
        "Rita Responder acknowledged",
        {"breached": False},
    )
    assert (entry.author, entry.at) == (responder, T0 + timedelta(minutes=5))


def test_ack_twice_is_refused(clock, owner, responder, outsider):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=5))
    services.acknowledge_incident(incident, by=responder)
    clock.shift(timedelta(minutes=5))

    with pytest.raises(IncidentError) as refused:
        services.acknowledge_incident(incident, by=outsider)

    assert str(refused.value) == (
        "INC-20260310-001 was already acknowledged by Rita Responder at 2026-03-10 14:05 UTC."
    )
    incident.refresh_from_db()
    assert (incident.acknowledged_by, incident.acknowledged_at) == (
        responder,
        T0 + timedelta(minutes=5),
    )
    assert [kind for kind, _, _ in entries(incident)] == [Kind.DECLARED, Kind.ACKNOWLEDGED]


def test_ack_after_the_sla_is_marked_breached(clock, owner, responder):
    incident = declare(code="P0", by=owner)
    clock.shift(timedelta(minutes=20))

    services.acknowledge_incident(incident, by=responder)

    incident.refresh_from_db()
    assert incident.time_to_acknowledge == timedelta(minutes=20)
    assert incident.is_ack_breached() is True
    entry = last_entry(incident)
    assert (entry.body, entry.data) == (
        "Rita Responder acknowledged (after the SLA)",
        {"breached": True},
    )


def test_ack_exactly_at_the_deadline_is_in_time(clock, owner, responder):
    incident = declare(code="P0", by=owner)
    clock.shift(timedelta(minutes=15))

    services.acknowledge_incident(incident, by=responder)

    incident.refresh_from_db()
    assert incident.is_ack_breached() is False
    assert last_entry(incident).data == {"breached": False}


def test_ack_of_a_resolved_incident_is_refused(clock, owner, responder):
    incident = declare(by=owner)
    services.resolve_incident(incident, by=owner)

    with pytest.raises(IncidentError, match="is resolved"):
        services.acknowledge_incident(incident, by=responder)

    incident.refresh_from_db()
    assert incident.acknowledged_at is None


# --- status --------------------------------------------------------------------------------

REACH = {
    Status.INVESTIGATING: (),
    Status.IDENTIFIED: (Status.IDENTIFIED,),
    Status.FIXING: (Status.FIXING,),
    Status.MONITORING: (Status.MONITORING,),
    Status.RESOLVED: (Status.RESOLVED,),
    Status.CLOSED: (Status.RESOLVED, Status.CLOSED),
}
OPEN = {Status.INVESTIGATING, Status.IDENTIFIED, Status.FIXING, Status.MONITORING}
ALLOWED = {
    **{status: OPEN - {status} | {Status.RESOLVED} for status in OPEN},
    Status.RESOLVED: {Status.INVESTIGATING, Status.CLOSED},
    Status.CLOSED: set(),
}


@pytest.mark.parametrize(
    ("old", "new"),
    list(itertools.product(Status, Status)),
    ids=lambda status: status.value,
)
def test_it_allows_only_the_documented_transitions(clock, owner, old, new):
    incident = declare(by=owner)
    walk(incident, *REACH[old], by=owner)
    before = len(entries(incident))
    clock.shift(timedelta(minutes=10))

    if new in ALLOWED[old]:
        services.change_status(incident, new, by=owner)
        incident.refresh_from_db()
        assert incident.status == new
        assert len(entries(incident)) == before + 1
        assert last_entry(incident).data["from"] == old.value
        assert last_entry(incident).data["to"] == new.value
    else:
        with pytest.raises(IncidentError) as refused:
            services.change_status(incident, new, by=owner)
        assert refused.value.field == "status"
        assert str(refused.value) == f"INC-20260310-001 cannot go from {old.label} to {new.label}."
        incident.refresh_from_db()
        assert incident.status == old
        assert len(entries(incident)) == before


@pytest.mark.parametrize(
    ("new", "start", "expected"),
    [
        (Status.INVESTIGATING, Status.IDENTIFIED, ["investigation_started"]),
        (Status.IDENTIFIED, Status.INVESTIGATING, ["root_cause_identified"]),
        (Status.FIXING, Status.INVESTIGATING, []),
        (Status.MONITORING, Status.FIXING, ["fix_applied"]),
        (Status.RESOLVED, Status.MONITORING, ["service_restored", "verification_completed"]),
        (Status.CLOSED, Status.RESOLVED, []),
    ],
    ids=lambda value: value.value if isinstance(value, Status) else None,
)
def test_it_sets_the_milestones_a_status_means(clock, owner, new, start, expected):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=1))
    walk(incident, *REACH[start], by=owner)
    # Cleared so that entering INVESTIGATING has a milestone to set.
    services.correct_milestone(incident, "investigation_started", None, by=owner, reason="test")
    incident.refresh_from_db()
    before = milestones(incident)
    clock.shift(timedelta(minutes=10))
    now = T0 + timedelta(minutes=11)

    services.change_status(incident, new, by=owner, note="moving on")

    incident.refresh_from_db()
    assert incident.status == new
    assert milestones(incident) == {**before, **{f"{name}_at": now for name in expected}}
    assert services.STATUS_MILESTONES[new] == tuple(expected)
    entry = last_entry(incident)
    assert (entry.kind, entry.author, entry.at) == (Kind.STATUS_CHANGED, owner, now)
    assert entry.body == f"Olivia Owner changed status from {start.label} to {new.label}: moving on"
    assert entry.data == {"from": start.value, "to": new.value, "milestones": expected}


def test_resolving_stores_when_and_the_time_to_resolve_from_detection(clock, owner):
    incident = declare(by=owner, detected_at=T0 - timedelta(minutes=30))
    clock.shift(timedelta(minutes=90))

    services.resolve_incident(incident, by=owner, note="rolled back")

    incident.refresh_from_db()
    resolved = T0 + timedelta(minutes=90)
    assert incident.status == Status.RESOLVED
    assert incident.resolved_at == resolved
    assert incident.time_to_resolve == timedelta(hours=2)
    assert (incident.service_restored_at, incident.verification_completed_at) == (
        resolved,
        resolved,
    )
    assert incident.closed_at is None
    assert incident.is_resolution_breached() is False
    assert last_entry(incident).body == (
        "Olivia Owner changed status from Investigating to Resolved: rolled back"
    )


def test_reopening_clears_the_resolution(clock, owner):
    incident = declare(by=owner, detected_at=T0 - timedelta(minutes=30))
    clock.shift(timedelta(minutes=90))
    services.resolve_incident(incident, by=owner)
    clock.shift(timedelta(minutes=10))

    services.change_status(incident, Status.INVESTIGATING, by=owner, note="errors are back")

    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert (incident.resolved_at, incident.time_to_resolve) == (None, None)
    assert incident.verification_completed_at is None
    assert incident.service_restored_at == T0 + timedelta(minutes=90)
    assert incident.investigation_started_at == T0
    assert last_entry(incident).data == {
        "from": "resolved",
        "to": "investigating",
        "milestones": [],
    }

    clock.shift(timedelta(minutes=80))
    services.resolve_incident(incident, by=owner)

    incident.refresh_from_db()
    assert incident.resolved_at == T0 + timedelta(hours=3)
    assert incident.time_to_resolve == timedelta(hours=3, minutes=30)
    assert incident.verification_completed_at == T0 + timedelta(hours=3)


def test_closing_stamps_closed_at_and_is_final(clock, owner):
    incident = declare(by=owner)
    clock.shift(timedelta(hours=1))
    services.resolve_incident(incident, by=owner)
    clock.shift(timedelta(hours=1))

    services.change_status(incident, Status.CLOSED, by=owner)

    incident.refresh_from_db()
    assert (incident.status, incident.closed_at) == (Status.CLOSED, T0 + timedelta(hours=2))
    assert incident.resolved_at == T0 + timedelta(hours=1)
    for status in Status:
        with pytest.raises(IncidentError):
            services.change_status(incident, status, by=owner)


def test_a_milestone_already_set_is_not_overwritten(clock, owner):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=30))
    services.correct_milestone(
        incident,
        "root_cause_identified",
        T0 + timedelta(minutes=10),
        by=owner,
        reason="found it in the logs earlier",
    )
    clock.shift(timedelta(minutes=5))

    services.change_status(incident, Status.IDENTIFIED, by=owner)

    incident.refresh_from_db()
    assert incident.root_cause_identified_at == T0 + timedelta(minutes=10)
    assert last_entry(incident).data["milestones"] == []


def test_going_back_and_forth_keeps_the_first_time_of_each_milestone(clock, owner):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=10))
    services.change_status(incident, Status.MONITORING, by=owner)
    clock.shift(timedelta(minutes=10))
    services.change_status(incident, Status.INVESTIGATING, by=owner, note="fix did not hold")
    clock.shift(timedelta(minutes=10))
    services.change_status(incident, Status.MONITORING, by=owner)

    incident.refresh_from_db()
    assert incident.fix_applied_at == T0 + timedelta(minutes=10)
    assert incident.investigation_started_at == T0


# --- severity ------------------------------------------------------------------------------


def test_changing_severity_recomputes_both_deadlines_from_the_declaration(clock, owner):
    incident = declare(code="P2", by=owner)
    clock.shift(timedelta(hours=1))

    services.change_severity(incident, severity("P0"), by=owner, reason="all customers hit")

    incident.refresh_from_db()
    assert incident.severity.code == "P0"
    assert incident.ack_due_at == T0 + timedelta(minutes=15)
    assert incident.resolution_due_at == T0 + timedelta(hours=2)
    entry = last_entry(incident)
    assert (entry.kind, entry.author, entry.at) == (
        Kind.SEVERITY_CHANGED,
        owner,
        T0 + timedelta(hours=1),
    )
    assert entry.body == (
        "Olivia Owner changed severity from P2 to P0; acknowledgement due 2026-03-10 14:15, "
        "resolution due 2026-03-10 16:00 UTC: all customers hit"
    )
    assert entry.data == {
        "from": "P2",
        "to": "P0",
        "ack_due_at": ["2026-03-10T18:00:00+00:00", "2026-03-10T14:15:00+00:00"],
        "resolution_due_at": ["2026-03-12T14:00:00+00:00", "2026-03-10T16:00:00+00:00"],
    }


def test_changing_to_p3_counts_the_business_day_from_the_declaration(owner):
    friday = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)
    with time_machine.travel(friday, tick=False) as clock:
        incident = declare(code="P0", by=owner)
        clock.shift(timedelta(hours=3))

        services.change_severity(incident, severity("P3"), by=owner)

    incident.refresh_from_db()
    assert incident.ack_due_at == datetime(2026, 3, 16, 15, 0, tzinfo=UTC)
    assert incident.resolution_due_at == datetime(2026, 3, 20, 15, 0, tzinfo=UTC)


def test_changing_to_the_same_severity_is_refused(clock, owner):
    incident = declare(code="P1", by=owner)

    with pytest.raises(IncidentError) as refused:
        services.change_severity(incident, severity("P1"), by=owner)

    assert (refused.value.field, str(refused.value)) == (
        "severity",
        "INC-20260310-001 is already P1.",
    )
    assert len(entries(incident)) == 1


def test_changing_to_an_inactive_severity_is_refused(clock, owner):
    incident = declare(code="P1", by=owner)
    SeverityLevel.objects.filter(code="P0").update(is_active=False)

    with pytest.raises(IncidentError) as refused:
        services.change_severity(incident, severity("P0"), by=owner)

    assert refused.value.field == "severity"
    incident.refresh_from_db()
    assert (incident.severity.code, incident.ack_due_at) == ("P1", T0 + timedelta(hours=1))


# --- type and flags ------------------------------------------------------------------------


def test_changing_the_type_replaces_unticked_items_and_keeps_ticked_ones(clock, owner, responder):
    outage = incident_type("complete-outage")
    breach = incident_type("security-breach")
    incident = declare(code="P0", by=owner, incident_type=outage)
    items = list(incident.checklist.all())
    for item in (items[3], items[5]):
        services.set_checklist_item(item, done=True, by=responder)
    clock.shift(timedelta(minutes=10))

    services.set_incident_type(incident, breach, by=owner)

    incident.refresh_from_db()
    assert incident.incident_type == breach
    kept = [(items[3].text, outage.pk, True), (items[5].text, outage.pk, True)]
    added = [(text, breach.pk, False) for text in breach.checklist.values_list("text", flat=True)]
    assert [
        (item.text, item.source_type_id, item.done_at is not None)
        for item in incident.checklist.all()
    ] == kept + added
    assert [kind for kind, _, _ in entries(incident)][-2:] == [
        Kind.TYPE_CHANGED,
        Kind.FLAGS_CHANGED,
    ]
    type_entry = incident.timeline.get(kind=Kind.TYPE_CHANGED)
    assert (
        type_entry.body == "Olivia Owner set the type to Security Breach; 14 checklist items added"
    )
    assert type_entry.data == {"from": "complete-outage", "to": "security-breach"}
    # The new type implies the security flag.
    assert incident.is_security is True
    assert incident.timeline.get(kind=Kind.FLAGS_CHANGED).data == {"security": True}


def test_clearing_the_type_drops_its_unticked_items(clock, owner, responder):
    incident = declare(code="P0", by=owner, incident_type=incident_type("complete-outage"))
    ticked = incident.checklist.all()[2]
    services.set_checklist_item(ticked, done=True, by=responder)

    services.set_incident_type(incident, None, by=owner)

    incident.refresh_from_db()
    assert incident.incident_type is None
    assert list(incident.checklist.values_list("pk", flat=True)) == [ticked.pk]
    assert entries(incident)[-1] == (
        Kind.TYPE_CHANGED,
        "Olivia Owner set the type to none",
        {"from": "complete-outage", "to": None},
    )


def test_setting_the_same_type_changes_nothing(clock, owner):
    outage = incident_type("complete-outage")
    incident = declare(code="P0", by=owner, incident_type=outage)

    services.set_incident_type(incident, outage, by=owner)

    assert incident.checklist.count() == 14
    assert len(entries(incident)) == 1


def test_set_flags_sets_and_clears_and_records_the_change(clock, owner):
    incident = declare(by=owner)

    services.set_flags(incident, is_security=True, is_data_loss=True, by=owner)
    incident.refresh_from_db()
    assert (incident.is_security, incident.is_data_loss) == (True, True)
    assert entries(incident)[-1] == (
        Kind.FLAGS_CHANGED,
        "Olivia Owner set security and set data loss",
        {"security": True, "data_loss": True},
    )

    services.set_flags(incident, is_data_loss=False, by=owner)
    incident.refresh_from_db()
    assert (incident.is_security, incident.is_data_loss) == (True, False)
    assert entries(incident)[-1] == (
        Kind.FLAGS_CHANGED,
        "Olivia Owner cleared data loss",
        {"data_loss": False},
    )

    services.set_flags(incident, is_security=True, by=owner)
    assert len(entries(incident)) == 3


# --- details -------------------------------------------------------------------------------


def test_update_details_edits_the_fields_and_records_which(clock, owner):
    api = Service.objects.create(name="API")
    incident = declare(by=owner)

    services.update_details(
        incident,
        by=owner,
        title="Checkout fails for EU cards",
        users_affected=1200,
        affected_services=[api],
        summary="",
    )

    incident.refresh_from_db()
    assert (incident.title, incident.users_affected, incident.summary) == (
        "Checkout fails for EU cards",
        1200,
        "",
    )
    assert list(incident.affected_services.all()) == [api]
    assert entries(incident)[-1] == (
        Kind.DETAILS_CHANGED,
        "Olivia Owner edited title, users affected, affected services",
        {"fields": ["title", "users_affected", "affected_services"], "services_changed": True},
    )


def test_update_details_without_a_change_writes_nothing(clock, owner):
    incident = declare("Checkout is down", by=owner)

    services.update_details(incident, by=owner, title="Checkout is down", affected_services=[])

    assert len(entries(incident)) == 1


@pytest.mark.parametrize(
    ("details", "field", "message"),
    [
        ({"title": " "}, "title", "Give the incident a title."),
        ({"severity": None}, None, "Not editable here: severity."),
        ({"status": "closed", "declared_at": T0}, None, "Not editable here: declared_at, status."),
    ],
)
def test_update_details_refuses_a_blank_title_and_other_fields(
    clock, owner, details, field, message
):
    incident = declare("Checkout is down", by=owner)

    with pytest.raises(IncidentError) as refused:
        services.update_details(incident, by=owner, **details)

    assert (refused.value.field, str(refused.value)) == (field, message)
    incident.refresh_from_db()
    assert (incident.title, incident.status) == ("Checkout is down", Status.INVESTIGATING)


# --- roles ---------------------------------------------------------------------------------


def test_a_single_holder_role_passes_from_the_previous_holder(clock, owner, responder):
    incident = declare(by=owner)
    first = services.assign_role(incident, Role.COMMANDER, owner, by=owner)
    clock.shift(timedelta(minutes=30))

    second = services.assign_role(incident, Role.COMMANDER, responder, by=owner)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.user, first.assigned_at, first.unassigned_at) == (
        owner,
        T0,
        T0 + timedelta(minutes=30),
    )
    assert (second.user, second.assigned_by, second.assigned_at, second.unassigned_at) == (
        responder,
        owner,
        T0 + timedelta(minutes=30),
        None,
    )
    assert list(incident.roles.filter(unassigned_at__isnull=True).values_list("role", "user")) == [
        (Role.COMMANDER, responder.pk)
    ]
    assert entries(incident)[-2:] == [
        (
            Kind.ROLE_ASSIGNED,
            "Olivia Owner made Olivia Owner incident commander",
            {"role": "commander", "user": "olivia", "previous": None},
        ),
        (
            Kind.ROLE_ASSIGNED,
            "Olivia Owner made Rita Responder incident commander (was Olivia Owner)",
            {"role": "commander", "user": "rita", "previous": "olivia"},
        ),
    ]


def test_an_incident_can_have_several_responders(clock, owner, responder, outsider):
    incident = declare(by=owner)

    services.assign_role(incident, Role.RESPONDER, responder, by=owner)
    services.assign_role(incident, Role.RESPONDER, outsider, by=owner)

    assert sorted(
        incident.roles.filter(role=Role.RESPONDER, unassigned_at__isnull=True).values_list(
            "user__username", flat=True
        )
    ) == ["otto", "rita"]


@pytest.mark.parametrize("role", [Role.COMMANDER, Role.RESPONDER])
def test_assigning_the_same_person_twice_is_refused(clock, owner, responder, role):
    incident = declare(by=owner)
    services.assign_role(incident, role, responder, by=owner)

    with pytest.raises(IncidentError) as refused:
        services.assign_role(incident, role, responder, by=owner)

    assert refused.value.field == "user"
    assert str(refused.value) == f"Rita Responder is already {role.label.lower()}."
    assert incident.roles.count() == 1
    assert [kind for kind, _, _ in entries(incident)] == [Kind.DECLARED, Kind.ROLE_ASSIGNED]


def test_a_person_may_hold_two_different_roles(clock, owner, responder):
    incident = declare(by=owner)

    services.assign_role(incident, Role.COMMANDER, responder, by=owner)
    services.assign_role(incident, Role.SCRIBE, responder, by=owner)

    assert sorted(incident.roles.values_list("role", flat=True)) == ["commander", "scribe"]


def test_roles_cannot_be_assigned_on_a_closed_incident(clock, owner, responder):
    incident = declare(by=owner)
    walk(incident, Status.RESOLVED, Status.CLOSED, by=owner)

    with pytest.raises(IncidentError, match="is closed"):
        services.assign_role(incident, Role.SCRIBE, responder, by=owner)

    assert incident.roles.count() == 0


def test_unassigning_a_role_records_it(clock, owner, responder):
    incident = declare(by=owner)
    assignment = services.assign_role(incident, Role.SCRIBE, responder, by=owner)
    clock.shift(timedelta(minutes=5))

    services.unassign_role(assignment, by=owner)

    assignment.refresh_from_db()
    assert assignment.unassigned_at == T0 + timedelta(minutes=5)
    assert entries(incident)[-1] == (
        Kind.ROLE_UNASSIGNED,
        "Olivia Owner removed Rita Responder as scribe",
        {"role": "scribe", "user": "rita"},
    )
    with pytest.raises(IncidentError):
        services.unassign_role(assignment, by=owner)


# --- checklist -----------------------------------------------------------------------------


def test_ticking_a_checklist_item_records_who_and_when(clock, owner, responder):
    incident = declare(code="P0", by=owner, incident_type=incident_type("complete-outage"))
    item = incident.checklist.first()
    clock.shift(timedelta(minutes=3))

    services.set_checklist_item(item, done=True, by=responder)

    item.refresh_from_db()
    assert (item.done_at, item.done_by) == (T0 + timedelta(minutes=3), responder)
    entry = last_entry(incident)
    assert (entry.kind, entry.author, entry.at) == (
        Kind.CHECKLIST_DONE,
        responder,
        T0 + timedelta(minutes=3),
    )
    assert (entry.body, entry.data) == (f"Rita Responder ticked: {item.text}", {"item": item.pk})


def test_unticking_a_checklist_item_clears_it_and_records_it(clock, owner, responder):
    incident = declare(code="P0", by=owner, incident_type=incident_type("complete-outage"))
    item = incident.checklist.first()
    services.set_checklist_item(item, done=True, by=responder)
    clock.shift(timedelta(minutes=3))

    services.set_checklist_item(item, done=False, by=owner)

    item.refresh_from_db()
    assert (item.done_at, item.done_by) == (None, None)
    assert entries(incident)[-1] == (
        Kind.CHECKLIST_UNDONE,
        f"Olivia Owner reopened: {item.text}",
        {"item": item.pk},
    )


def test_ticking_a_ticked_item_again_changes_nothing(clock, owner, responder):
    incident = declare(code="P0", by=owner, incident_type=incident_type("complete-outage"))
    item = incident.checklist.first()
    services.set_checklist_item(item, done=True, by=responder)
    clock.shift(timedelta(minutes=3))

    services.set_checklist_item(item, done=True, by=owner)

    item.refresh_from_db()
    assert (item.done_at, item.done_by) == (T0, responder)
    assert len(entries(incident)) == 2


# --- notes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("note_kind", list(TimelineEntry.NoteKind))
def test_a_note_of_each_kind_is_added_to_the_timeline(clock, owner, responder, note_kind):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=7))

    note = services.add_note(incident, "  Restarted the web pods  ", by=responder, kind=note_kind)

    note.refresh_from_db()
    assert (note.incident, note.kind, note.note_kind, note.body) == (
        incident,
        Kind.NOTE,
        note_kind,
        "Restarted the web pods",
    )
    assert (note.author, note.at, note.data, note.is_manual) == (
        responder,
        T0 + timedelta(minutes=7),
        {},
        True,
    )


def test_a_note_is_an_update_unless_told_otherwise(clock, owner):
    incident = declare(by=owner)

    note = services.add_note(incident, "Looking into it", by=owner)

    assert note.note_kind == TimelineEntry.NoteKind.UPDATE


@pytest.mark.parametrize("body", ["", "   ", None])
def test_an_empty_note_is_refused(clock, owner, body):
    incident = declare(by=owner)

    with pytest.raises(IncidentError) as refused:
        services.add_note(incident, body, by=owner)

    assert refused.value.field == "body"
    assert len(entries(incident)) == 1


# --- milestone corrections -----------------------------------------------------------------


def test_correcting_a_milestone_records_old_new_and_why(clock, owner):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=30))

    services.correct_milestone(
        incident, "detected", T0 - timedelta(hours=1), by=owner, reason="first alert at 13:00"
    )

    incident.refresh_from_db()
    assert incident.detected_at == T0 - timedelta(hours=1)
    entry = last_entry(incident)
    assert (entry.kind, entry.author, entry.at) == (
        Kind.MILESTONE_CORRECTED,
        owner,
        T0 + timedelta(minutes=30),
    )
    assert (
        entry.body
        == "Olivia Owner corrected detected to 2026-03-10 13:00 UTC: first alert at 13:00"
    )
    assert entry.data == {
        "milestone": "detected",
        "from": "2026-03-10T14:00:00+00:00",
        "to": "2026-03-10T13:00:00+00:00",
    }


def test_a_milestone_cannot_be_corrected_into_the_future(clock, owner):
    incident = declare(by=owner)

    with pytest.raises(IncidentError) as refused:
        services.correct_milestone(
            incident, "fix_applied", T0 + timedelta(seconds=1), by=owner, reason="typo"
        )

    assert refused.value.field == "at"
    incident.refresh_from_db()
    assert incident.fix_applied_at is None
    assert len(entries(incident)) == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_milestone_correction_needs_a_reason(clock, owner, reason):
    incident = declare(by=owner)

    with pytest.raises(IncidentError) as refused:
        services.correct_milestone(
            incident, "detected", T0 - timedelta(hours=1), by=owner, reason=reason
        )

    assert refused.value.field == "reason"
    incident.refresh_from_db()
    assert incident.detected_at == T0


def test_detection_cannot_be_cleared(clock, owner):
    incident = declare(by=owner)

    with pytest.raises(IncidentError) as refused:
        services.correct_milestone(incident, "detected", None, by=owner, reason="unknown")

    assert refused.value.field == "at"


def test_correcting_the_acknowledgement_recomputes_time_to_acknowledge(clock, owner, responder):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=40))
    services.acknowledge_incident(incident, by=responder)
    clock.shift(timedelta(minutes=20))

    services.correct_milestone(
        incident, "acknowledged", T0 + timedelta(minutes=8), by=owner, reason="acked on the phone"
    )

    incident.refresh_from_db()
    assert incident.acknowledged_at == T0 + timedelta(minutes=8)
    assert incident.time_to_acknowledge == timedelta(minutes=8)
    assert incident.acknowledged_by == responder


def test_clearing_the_acknowledgement_clears_who_and_how_long(clock, owner, responder):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=10))
    services.acknowledge_incident(incident, by=responder)

    services.correct_milestone(incident, "acknowledged", None, by=owner, reason="misclick")

    incident.refresh_from_db()
    assert (incident.acknowledged_at, incident.acknowledged_by, incident.time_to_acknowledge) == (
        None,
        None,
        None,
    )
    assert last_entry(incident).body == "Olivia Owner corrected acknowledged to not set: misclick"


def test_correcting_detection_after_resolution_recomputes_time_to_resolve(clock, owner):
    incident = declare(by=owner)
    clock.shift(timedelta(hours=1))
    services.resolve_incident(incident, by=owner)

    services.correct_milestone(
        incident, "detected", T0 - timedelta(hours=1), by=owner, reason="alert fired earlier"
    )

    incident.refresh_from_db()
    assert incident.time_to_resolve == timedelta(hours=2)


# --- querysets -----------------------------------------------------------------------------


def test_breached_lists_incidents_that_missed_a_deadline(clock, owner, responder):
    unacked = declare("Unacked P0", code="P0", by=owner)
    acked_late = declare("Acked late", code="P0", by=owner)
    in_time = declare("In time", code="P1", by=owner)
    resolved_late = declare("Resolved late", code="P0", by=owner)
    resolved_in_time = declare("Resolved in time", code="P0", by=owner)
    waiting = declare("Waiting P2", code="P2", by=owner)
    clock.shift(timedelta(minutes=10))
    for incident in (in_time, resolved_late, resolved_in_time):
        services.acknowledge_incident(incident, by=responder)
    clock.shift(timedelta(minutes=10))
    services.acknowledge_incident(acked_late, by=responder)
    clock.shift(timedelta(minutes=40))
    services.resolve_incident(resolved_in_time, by=owner)
    clock.shift(timedelta(minutes=90))
    services.resolve_incident(resolved_late, by=owner)
    now = T0 + timedelta(hours=2, minutes=30)

    def breached(at):
        return set(Incident.objects.breached(at).values_list("title", flat=True))

    assert breached(now) == {"Unacked P0", "Acked late", "Resolved late"}
    assert breached(T0 + timedelta(hours=4, minutes=1)) == {
        "Unacked P0",
        "Acked late",
        "Resolved late",
        "Waiting P2",
    }
    assert breached(T0 + timedelta(minutes=15)) == {"Acked late", "Resolved late"}
    assert in_time.pk not in Incident.objects.breached(now).values_list("pk", flat=True)
    assert waiting.is_ack_breached(now) is False
    assert unacked.is_ack_breached(now) is True


@pytest.fixture
def security_incident(clock, owner):
    declare("Ordinary outage", by=owner)
    return declare(
        "Leaked keys", code="P0", by=owner, incident_type=incident_type("security-breach")
    )


def visible_titles(user) -> set[str]:
    return set(Incident.objects.visible_to(user).values_list("title", flat=True))


def test_a_security_incident_is_hidden_from_an_outsider(security_incident, outsider):
    assert visible_titles(outsider) == {"Ordinary outage"}
    assert visible_titles(AnonymousUser()) == set()


def test_a_security_incident_is_visible_to_the_security_team(security_incident, outsider):
    outsider.groups.add(Group.objects.get(name="Security Team"))

    assert visible_titles(outsider) == {"Ordinary outage", "Leaked keys"}


def test_a_security_incident_is_visible_to_its_declarer(security_incident, owner):
    assert visible_titles(owner) == {"Ordinary outage", "Leaked keys"}


def test_a_security_incident_is_visible_while_someone_holds_a_role_on_it(
    security_incident, owner, responder
):
    assignment = services.assign_role(security_incident, Role.RESPONDER, responder, by=owner)

    assert visible_titles(responder) == {"Ordinary outage", "Leaked keys"}

    services.unassign_role(assignment, by=owner)

    assert visible_titles(responder) == {"Ordinary outage"}


def test_a_security_incident_is_visible_to_a_superuser(security_incident):
    admin = UserFactory(username="root", is_superuser=True)

    assert visible_titles(admin) == {"Ordinary outage", "Leaked keys"}


def test_other_groups_do_not_see_security_incidents(security_incident, outsider):
    outsider.groups.add(Group.objects.get(name="Incident Commander"))

    assert visible_titles(outsider) == {"Ordinary outage"}


def test_open_lists_incidents_not_resolved_or_closed(clock, owner):
    declare("Open one", by=owner)
    resolved = declare("Resolved one", by=owner)
    services.resolve_incident(resolved, by=owner)

    assert list(Incident.objects.open().values_list("title", flat=True)) == ["Open one"]


# --- history -------------------------------------------------------------------------------


def test_history_keeps_a_row_per_change_with_the_acting_user(clock, owner, responder):
    incident = declare(by=owner)
    clock.shift(timedelta(minutes=5))
    services.acknowledge_incident(incident, by=responder)
    clock.shift(timedelta(minutes=5))
    services.change_status(incident, Status.IDENTIFIED, by=owner)
    clock.shift(timedelta(minutes=5))
    services.change_severity(incident, severity("P0"), by=responder)

    rows = list(
        incident.history.order_by("history_id").values_list(
            "history_type",
            "history_user__username",
            "history_change_reason",
            "history_date",
            "status",
            "acknowledged_at",
            "severity__code",
        )
    )
    assert rows == [
        ("+", "olivia", "declared", T0, "investigating", None, "P1"),
        (
            "~",
            "rita",
            "acknowledged",
            T0 + timedelta(minutes=5),
            "investigating",
            T0 + timedelta(minutes=5),
            "P1",
        ),
        (
            "~",
            "olivia",
            "status investigating -> identified",
            T0 + timedelta(minutes=10),
            "identified",
            T0 + timedelta(minutes=5),
            "P1",
        ),
        (
            "~",
            "rita",
            "severity P1 -> P0",
            T0 + timedelta(minutes=15),
            "identified",
            T0 + timedelta(minutes=5),
            "P0",
        ),
    ]
