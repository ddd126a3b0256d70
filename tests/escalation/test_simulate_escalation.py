"""simulate_escalation: the runbook matrix replayed against the real roster, sending nothing."""

import json
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from escalation.models import OrgRole

pytestmark = pytest.mark.django_db

DECLARED = "2026-03-11T12:00:00Z"


def simulate(*args: str) -> list[dict]:
    out = StringIO()
    call_command("simulate_escalation", *args, "--at", DECLARED, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_a_p0_security_incident_acknowledged_late_and_resolved_after_five_hours(organisation):
    rows = simulate("--severity", "P0", "--security", "--ack-after", "20m", "--resolve-after", "5h")

    # Weekly from Monday 5 January: the week of 9 March is the tenth shift, otto's (olive first).
    on_call = "otto@example.com"
    assert [(r["offset_seconds"], r["recipients"]) for r in rows] == [
        (0, sorted(["back@example.com", "dev@example.com", on_call])),
        (0, ["sec@example.com"]),
        (900, ["bea@example.com"]),
        (7200, ["em@example.com"]),
        (14400, ["cto@example.com"]),
    ]
    assert rows[0]["targets"] == ["On-Call Engineer", "DevOps Lead", "Backend Lead"]
    assert rows[2]["targets"] == ["Backup on call (Backup)"]
    assert {r["channel"] for r in rows} == {"email"}
    assert set(rows[0]) == {"offset_seconds", "step", "targets", "recipients", "channel"}
    assert mail.outbox == []


def test_it_follows_the_policy_as_edited_in_the_admin_and_shows_webhooks(organisation):
    from comms.models import Webhook
    from escalation.models import EscalationStep

    EscalationStep.objects.filter(key="p0-cto").update(targets=["email:board@example.com"])
    Webhook.objects.create(name="Ops chat", url="http://127.0.0.1:9/hook")

    rows = simulate("--severity", "P0", "--resolve-after", "5h")

    assert ("email", ["board@example.com"]) in [(r["channel"], r["recipients"]) for r in rows]
    assert [r["recipients"] for r in rows if r["channel"] == "webhook"][0] == ["Ops chat"]


def test_acknowledging_in_time_stops_the_backup_page(organisation):
    rows = simulate("--severity", "P0", "--ack-after", "10m", "--resolve-after", "90m")

    assert [r["offset_seconds"] for r in rows] == [0]


def test_p3_escalates_to_nobody_and_says_so(organisation):
    out = StringIO()
    call_command("simulate_escalation", "--severity", "P3", "--at", DECLARED, stdout=out)

    assert out.getvalue().strip() == "Nothing would fire."


def test_a_role_nobody_holds_is_reported_not_skipped(organisation):
    OrgRole.objects.get(slug="cto").holders.clear()
    out = StringIO()

    call_command("simulate_escalation", "--severity", "P0", "--at", DECLARED, stdout=out)

    cto_line = next(line for line in out.getvalue().splitlines() if "CTO" in line)
    assert "NOBODY" in cto_line and "nobody holds: CTO" in cto_line


@pytest.mark.parametrize(
    "args",
    [
        ("--severity", "P9"),
        ("--severity", "P0", "--ack-after", "soon"),
        ("--severity", "P0", "--at", "2026-03-11T12:00:00"),
    ],
)
def test_bad_input_is_a_clear_command_error(organisation, args):
    with pytest.raises(CommandError):
        call_command("simulate_escalation", *args, stdout=StringIO())


def test_a_p2_resolved_within_a_day_never_reaches_the_team_lead(organisation):
    assert [r["offset_seconds"] for r in simulate("--severity", "P2", "--resolve-after", "2h")] == [
        0
    ]
    unresolved = simulate("--severity", "P2")
    assert [(r["offset_seconds"], r["recipients"]) for r in unresolved] == [
        (0, ["otto@example.com"]),
        (86400, ["back@example.com", "dev@example.com"]),
    ]
