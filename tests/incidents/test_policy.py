"""Loading the severity scales and the runbooks' incident types (incidents.policy)."""

from datetime import time, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from incidents.models import BusinessCalendar, ChecklistTemplateItem, IncidentType, SeverityLevel
from incidents.playbooks import INCIDENT_TYPES
from incidents.policy import PolicyLoad, UnknownPreset, load_playbooks, load_policy

pytestmark = pytest.mark.django_db

SLA_FIELDS = (
    "name",
    "rank",
    "response_time",
    "response_in_business_days",
    "resolution_target",
    "resolution_in_business_days",
    "internal_update_every",
    "external_update_every",
    "war_room_required",
    "status_page_within",
    "stakeholder_email_within",
    "review_required",
    "review_required_if_longer_than",
)

# incident-escalation-flow.md, written out by hand: "Escalation Matrix > Response Time SLAs",
# "Severity Definitions > Pn > Response Actions / Communication", "War Room Protocol > When to
# Create War Room" and "Post-Incident Review > Required For".
RUNBOOK_DEFAULT_POLICY = {
    "P0": {
        "name": "Critical",
        "rank": 0,
        "response_time": timedelta(minutes=15),
        "response_in_business_days": False,
        "resolution_target": timedelta(hours=2),
        "resolution_in_business_days": False,
        "internal_update_every": timedelta(minutes=30),  # "status updates every 30 minutes"
        "external_update_every": None,
        "war_room_required": True,  # "All P0 incidents (immediately)"
        "status_page_within": timedelta(minutes=15),  # "Status page update within 15 minutes"
        "stakeholder_email_within": timedelta(minutes=30),  # "Email within 30 minutes"
        "review_required": True,  # "All P0 incidents"
        "review_required_if_longer_than": None,
    },
    "P1": {
        "name": "High",
        "rank": 1,
        "response_time": timedelta(hours=1),
        "response_in_business_days": False,
        "resolution_target": timedelta(hours=8),
        "resolution_in_business_days": False,
        "internal_update_every": timedelta(hours=1),  # "status updates every hour"
        "external_update_every": None,
        "war_room_required": False,  # only "if escalated to manager"
        "status_page_within": timedelta(hours=2),  # "Status page update if >2 hours"
        "stakeholder_email_within": timedelta(hours=4),  # "Email if >4 hours"
        "review_required": False,
        "review_required_if_longer_than": timedelta(hours=4),  # "P1 incidents lasting >4 hours"
    },
    "P2": {
        "name": "Medium",
        "rank": 2,
        "response_time": timedelta(hours=4),
        "response_in_business_days": False,
        "resolution_target": timedelta(hours=48),
        "resolution_in_business_days": False,
        "internal_update_every": None,
        "external_update_every": None,
        "war_room_required": False,
        "status_page_within": None,  # "Not required unless prolonged"
        # "Stakeholders: Update if escalated"; the escalation trigger is "After 24 hours".
        "stakeholder_email_within": timedelta(hours=24),
        "review_required": False,
        "review_required_if_longer_than": None,
    },
    "P3": {
        "name": "Low",
        "rank": 3,
        "response_time": timedelta(days=1),  # "1 business day"
        "response_in_business_days": True,
        "resolution_target": timedelta(weeks=1),
        "resolution_in_business_days": False,
        "internal_update_every": None,
        "external_update_every": None,
        "war_room_required": False,
        "status_page_within": None,  # "External: Not required"
        "stakeholder_email_within": None,  # "Stakeholders: Not required"
        "review_required": False,
        "review_required_if_longer_than": None,
    },
}

RUNBOOK_TYPES = [
    "complete-outage",
    "authentication-failure",
    "database-degradation",
    "deployment-failure",
    "data-corruption",
    "security-breach",
    "memory-disk-full",
    "integration-failure",
    "high-error-rate",
    "performance-degradation",
]


def levels() -> dict[str, dict]:
    return {
        level.code: {name: getattr(level, name) for name in SLA_FIELDS}
        for level in SeverityLevel.objects.all()
    }


def active_codes() -> list[str]:
    return list(SeverityLevel.objects.filter(is_active=True).values_list("code", flat=True))


def all_codes() -> list[str]:
    return sorted(SeverityLevel.objects.values_list("code", flat=True))


def test_it_loads_the_default_policy_with_the_runbooks_sla_table():
    result = load_policy("default")

    assert result == PolicyLoad("default", ["P0", "P1", "P2", "P3"], [], [])
    assert levels() == RUNBOOK_DEFAULT_POLICY
    assert active_codes() == ["P0", "P1", "P2", "P3"]
    assert set(SeverityLevel.objects.values_list("preset", flat=True)) == {"default"}


@pytest.mark.parametrize("code", ["P0", "P1", "P2", "P3"])
def test_it_loads_each_default_level_as_the_runbook_states_it(code):
    load_policy("default")

    level = SeverityLevel.objects.get(code=code)

    assert {name: getattr(level, name) for name in SLA_FIELDS} == RUNBOOK_DEFAULT_POLICY[code]
    assert level.is_active
    assert level.definition
    assert level.example_list


def test_it_creates_the_default_business_calendar_with_the_policy():
    load_policy("default")

    calendar = BusinessCalendar.objects.get()
    assert (calendar.name, calendar.timezone, calendar.workdays) == (
        "Default",
        "UTC",
        [0, 1, 2, 3, 4],
    )
    assert (calendar.day_starts_at, calendar.day_ends_at, calendar.holidays) == (
        time(9),
        time(17),
        [],
    )


def test_it_keeps_an_existing_business_calendar():
    calendar = BusinessCalendar.objects.create(
        name="London", timezone="Europe/London", workdays=[0, 1, 2, 3]
    )

    load_policy("default")

    assert list(BusinessCalendar.objects.values_list("pk", "timezone")) == [
        (calendar.pk, "Europe/London")
    ]


def test_loading_the_same_policy_twice_gives_the_same_rows():
    load_policy("default")
    first = dict(SeverityLevel.objects.values_list("code", "pk"))

    result = load_policy("default")

    assert result == PolicyLoad("default", [], ["P0", "P1", "P2", "P3"], [])
    assert dict(SeverityLevel.objects.values_list("code", "pk")) == first
    assert SeverityLevel.objects.count() == 4
    assert BusinessCalendar.objects.count() == 1
    assert levels() == RUNBOOK_DEFAULT_POLICY


def test_loading_a_policy_again_resets_an_operators_edit_of_a_level():
    load_policy("default")
    SeverityLevel.objects.filter(code="P1").update(response_time=timedelta(hours=3))

    load_policy("default")

    assert SeverityLevel.objects.get(code="P1").response_time == timedelta(hours=1)


def test_loading_the_playbook_scale_activates_it_and_deactivates_the_rest_without_deleting():
    load_policy("default")
    p0 = SeverityLevel.objects.get(code="P0")

    result = load_policy("playbook")

    assert result == PolicyLoad("playbook", ["P4"], ["P1", "P2", "P3"], ["P0"])
    assert active_codes() == ["P1", "P2", "P3", "P4"]
    assert all_codes() == ["P0", "P1", "P2", "P3", "P4"]
    p0.refresh_from_db()
    assert (p0.is_active, p0.preset) == (False, "default")
    # Codes shared with the default scale take the playbook's meaning (P1 = Critical, 15 min).
    p1 = SeverityLevel.objects.get(code="P1")
    assert (p1.name, p1.preset, p1.response_time) == ("Critical", "playbook", timedelta(minutes=15))


def test_loading_the_sev_scale_activates_it_and_deactivates_the_rest_without_deleting():
    load_policy("default")

    result = load_policy("sev")

    assert result == PolicyLoad(
        "sev", ["SEV-1", "SEV-2", "SEV-3", "SEV-4"], [], ["P0", "P1", "P2", "P3"]
    )
    assert active_codes() == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    assert SeverityLevel.objects.count() == 8
    assert set(SeverityLevel.objects.filter(is_active=False).values_list("code", flat=True)) == {
        "P0",
        "P1",
        "P2",
        "P3",
    }


def test_loading_the_default_again_reactivates_it():
    load_policy("default")
    load_policy("sev")

    result = load_policy("default")

    assert result == PolicyLoad(
        "default", [], ["P0", "P1", "P2", "P3"], ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    )
    assert active_codes() == ["P0", "P1", "P2", "P3"]
    assert SeverityLevel.objects.count() == 8


def test_only_if_empty_loads_an_empty_database():
    result = load_policy("default", only_if_empty=True)

    assert result == PolicyLoad("default", ["P0", "P1", "P2", "P3"], [], [])
    assert active_codes() == ["P0", "P1", "P2", "P3"]


def test_only_if_empty_does_nothing_when_levels_exist():
    load_policy("sev")
    SeverityLevel.objects.filter(code="SEV-1").update(name="Edited")

    result = load_policy("default", only_if_empty=True)

    assert result == PolicyLoad("default", [], [], [], skipped=True)
    assert all_codes() == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    assert active_codes() == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    assert SeverityLevel.objects.get(code="SEV-1").name == "Edited"


def test_an_unknown_policy_name_is_refused_and_nothing_is_loaded():
    with pytest.raises(UnknownPreset) as refused:
        load_policy("nope")

    assert str(refused.value) == "Unknown policy 'nope'; choose one of: default, playbook, sev."
    assert SeverityLevel.objects.count() == 0
    assert BusinessCalendar.objects.count() == 0


def test_load_playbooks_creates_the_ten_runbook_types_with_their_checklists():
    load_policy("default")

    created = load_playbooks()

    assert created == RUNBOOK_TYPES
    assert sorted(IncidentType.objects.values_list("slug", flat=True)) == sorted(RUNBOOK_TYPES)
    for preset in INCIDENT_TYPES:
        incident_type = IncidentType.objects.get(slug=preset.slug)
        assert (incident_type.name, incident_type.description) == (preset.name, preset.description)
        assert list(incident_type.checklist.values_list("position", "phase", "text")) == [
            (index, item.phase, item.text) for index, item in enumerate(preset.checklist)
        ]
    assert {
        incident_type.slug: incident_type.checklist.count()
        for incident_type in IncidentType.objects.all()
    } == {
        "complete-outage": 14,
        "authentication-failure": 7,
        "database-degradation": 12,
        "deployment-failure": 14,
        "data-corruption": 15,
        "security-breach": 14,
        "memory-disk-full": 10,
        "integration-failure": 6,
        "high-error-rate": 8,
        "performance-degradation": 7,
    }


def test_load_playbooks_sets_the_flags_and_default_severities_the_runbooks_suggest():
    load_policy("default")

    load_playbooks()

    rows = IncidentType.objects.values_list(
        "slug", "default_severity__code", "implies_security", "implies_data_loss"
    )
    assert sorted(rows) == [
        ("authentication-failure", "P0", False, False),
        ("complete-outage", "P0", False, False),
        ("data-corruption", "P0", False, True),
        ("database-degradation", "P1", False, False),
        ("deployment-failure", None, False, False),
        ("high-error-rate", None, False, False),
        ("integration-failure", "P1", False, False),
        ("memory-disk-full", None, False, False),
        ("performance-degradation", "P2", False, False),
        ("security-breach", "P0", True, False),
    ]


def test_types_loaded_before_the_policy_get_their_default_severity_when_it_loads():
    load_playbooks()
    assert not IncidentType.objects.filter(default_severity__isnull=False).exists()

    load_policy("default")

    assert IncidentType.objects.get(slug="security-breach").default_severity.code == "P0"
    assert IncidentType.objects.get(slug="performance-degradation").default_severity.code == "P2"


def test_load_playbooks_again_keeps_an_operators_edits():
    load_policy("default")
    load_playbooks()
    outage = IncidentType.objects.get(slug="complete-outage")
    outage.name = "Total outage"
    outage.implies_data_loss = True
    outage.default_severity = None
    outage.save()
    first, second, *_ = outage.checklist.all()
    first.text = "Ping the status page first"
    first.save()
    second.delete()
    ChecklistTemplateItem.objects.create(
        incident_type=outage, position=99, phase="remediation", text="Call the vendor"
    )
    breach = IncidentType.objects.get(slug="security-breach")
    breach.default_severity = SeverityLevel.objects.get(code="P1")
    breach.save()
    checklist_before = list(outage.checklist.values_list("pk", "position", "phase", "text"))

    created = load_playbooks()

    assert created == []
    assert IncidentType.objects.count() == 10
    outage.refresh_from_db()
    assert (outage.name, outage.implies_data_loss, outage.default_severity) == (
        "Total outage",
        True,
        None,
    )
    assert list(outage.checklist.values_list("pk", "position", "phase", "text")) == (
        checklist_before
    )
    assert outage.checklist.count() == 14
    assert outage.checklist.first().text == "Ping the status page first"
    breach.refresh_from_db()
    assert breach.default_severity.code == "P1"


def test_load_playbooks_recreates_a_type_that_was_deleted():
    load_policy("default")
    load_playbooks()
    IncidentType.objects.filter(slug="memory-disk-full").delete()

    created = load_playbooks()

    assert created == ["memory-disk-full"]
    assert IncidentType.objects.get(slug="memory-disk-full").checklist.count() == 10


def run_load_policy(*args: str) -> list[str]:
    out = StringIO()
    call_command("load_policy", *args, stdout=out)
    return out.getvalue().splitlines()


ADDED_TYPES_LINE = "Added incident types: " + ", ".join(RUNBOOK_TYPES) + "."


def test_the_load_policy_command_loads_the_scale_and_the_types():
    lines = run_load_policy("default")

    assert lines == [
        "Loaded policy default: created ['P0', 'P1', 'P2', 'P3'], updated none, deactivated none.",
        ADDED_TYPES_LINE,
    ]
    assert levels() == RUNBOOK_DEFAULT_POLICY
    assert IncidentType.objects.count() == 10


def test_the_load_policy_command_run_again_reports_updates_and_no_new_types():
    run_load_policy("default")

    lines = run_load_policy("sev")

    assert lines == [
        "Loaded policy sev: created ['SEV-1', 'SEV-2', 'SEV-3', 'SEV-4'], updated none, "
        "deactivated ['P0', 'P1', 'P2', 'P3']."
    ]


def test_the_load_policy_command_if_empty_leaves_an_existing_scale():
    run_load_policy("default")

    lines = run_load_policy("sev", "--if-empty")

    assert lines == ["Severity scale exists; left as it is."]
    assert active_codes() == ["P0", "P1", "P2", "P3"]
    assert SeverityLevel.objects.count() == 4


def test_the_load_policy_command_refuses_an_unknown_name():
    with pytest.raises(CommandError) as refused:
        run_load_policy("nope")

    assert str(refused.value) == "Unknown policy 'nope'; choose one of: default, playbook, sev."
    assert SeverityLevel.objects.count() == 0
    assert IncidentType.objects.count() == 0


def test_bootstrap_loads_the_default_policy_on_an_empty_database():
    assert SeverityLevel.objects.count() == 0
    out = StringIO()

    call_command("bootstrap", "--password", "bootstrap-pw-123", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[:2] == [
        "Loaded policy default: created ['P0', 'P1', 'P2', 'P3'], updated none, deactivated none.",
        ADDED_TYPES_LINE,
    ]
    assert levels() == RUNBOOK_DEFAULT_POLICY
    assert active_codes() == ["P0", "P1", "P2", "P3"]
    assert IncidentType.objects.count() == 10
    assert BusinessCalendar.objects.count() == 1


def test_bootstrap_run_again_leaves_the_policy_as_it_is():
    call_command("bootstrap", "--password", "bootstrap-pw-123", stdout=StringIO())
    SeverityLevel.objects.filter(code="P2").update(response_time=timedelta(hours=6))
    out = StringIO()

    call_command("bootstrap", stdout=out)

    assert out.getvalue().splitlines()[0] == "Severity scale exists; left as it is."
    assert SeverityLevel.objects.get(code="P2").response_time == timedelta(hours=6)
    assert SeverityLevel.objects.count() == 4
