"""Escalation policies in the admin: editable steps, validation, and the preview."""

import pytest
from django.contrib.auth.models import Group

from comms.models import Notification
from escalation.models import EscalationPolicy, OrgRole
from tests.incidents.factories import UserFactory, severity

pytestmark = pytest.mark.django_db


def step_form(index: int, **fields) -> dict:
    values = {
        "position": "1",
        "key": "",
        "label": "",
        "delay": "0:00:00",
        "condition": "not_acknowledged",
        "repeat_every": "",
        "repeat_times": "0",
        "emails": "",
        **fields,
    }
    return {f"steps-{index}-{name}": value for name, value in values.items()}


def policy_form(name: str, *steps: dict, **fields) -> dict:
    data = {
        "name": name,
        "description": "",
        "severity": "",
        "flag": "",
        "repeat_from": "",
        "repeat_cycles": "0",
        "repeat_gap": "0:15:00",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for step in steps:
        data.update(step)
    return data


@pytest.fixture
def admin_member():
    return UserFactory(username="ada", groups=["Admin"])


def test_an_admin_builds_a_policy_with_roles_people_and_addresses(
    client, admin_member, organisation
):
    client.force_login(admin_member)
    p2 = severity("P2")
    EscalationPolicy.objects.filter(severity=p2).delete()
    data = policy_form(
        "P2 night shift",
        step_form(
            0,
            label="Page the DevOps Lead",
            target_list=["role:devops-lead", f"user:{organisation['em'].pk}"],
            emails="noc@example.com",
            channel_list=["email"],
        ),
        step_form(
            1,
            position="2",
            label="Then the backup, every 10 minutes",
            delay="0:30:00",
            target_list=[f"rotation-backup:{organisation['primary'].pk}"],
            channel_list=["email", "webhook"],
            repeat_every="0:10:00",
            repeat_times="3",
        ),
        severity=str(p2.pk),
    )

    response = client.post("/admin/escalation/escalationpolicy/add/", data)

    assert response.status_code == 302, response.content.decode()[:3000]
    policy = EscalationPolicy.objects.get(name="P2 night shift")
    first, second = policy.steps.all()
    assert first.key == "page-the-devops-lead"
    assert first.targets == [
        "role:devops-lead",
        f"user:{organisation['em'].pk}",
        "email:noc@example.com",
    ]
    assert (second.repeat_times, second.channels) == (3, ["email", "webhook"])

    page = client.get(f"/admin/escalation/escalationpolicy/{policy.pk}/change/").content.decode()
    # The preview: the DevOps Lead, the manager and the address at once, then the backup.
    assert "dev@example.com, em@example.com, noc@example.com" in page
    assert "bea@example.com" in page
    assert Notification.objects.count() == 0  # previewing sends nothing


def test_a_step_without_targets_or_with_a_bad_address_is_refused(
    client, admin_member, organisation
):
    client.force_login(admin_member)
    data = policy_form(
        "Broken",
        step_form(0, label="Nobody", channel_list=["email"]),
        step_form(1, position="2", label="Bad", emails="not-an-address", channel_list=["email"]),
    )

    response = client.post("/admin/escalation/escalationpolicy/add/", data)

    assert response.status_code == 200
    body = response.content.decode()
    assert "Choose at least one target or give an address." in body
    assert "is not an email address" in body
    assert not EscalationPolicy.objects.filter(name="Broken").exists()


def test_a_policy_for_a_severity_and_a_flag_at_once_is_refused(client, admin_member, organisation):
    client.force_login(admin_member)
    EscalationPolicy.objects.filter(flag="security").delete()
    data = policy_form(
        "Both",
        step_form(0, label="x", target_list=["role:cto"], channel_list=["email"]),
        severity=str(severity("P3").pk),
        flag="security",
    )
    response = client.post("/admin/escalation/escalationpolicy/add/", data)
    assert response.status_code == 200
    assert "not both" in response.content.decode()


def test_the_shipped_policies_encode_the_runbook_matrix(client, organisation):
    policies = {p.name: p for p in EscalationPolicy.objects.prefetch_related("steps")}
    p0 = policies["P0 Critical"]
    assert [(s.key, s.delay.total_seconds(), s.condition) for s in p0.steps.all()] == [
        ("p0-immediate", 0, "not_resolved"),
        ("p0-backup", 900, "not_acknowledged"),
        ("p0-manager", 7200, "not_resolved"),
        ("p0-cto", 14400, "not_resolved"),
    ]
    assert [s.targets for s in policies["Security incident"].steps.all()] == [
        ["role:security-team"]
    ]
    assert [s.targets for s in policies["Data loss"].steps.all()] == [
        ["role:backend-lead", "role:engineering-manager"]
    ]
    assert [s.delay.total_seconds() for s in policies["P2 Medium"].steps.all()] == [0, 86400]
    assert list(policies["P3 Low"].steps.all()) == []


def test_loading_the_playbook_scale_gives_its_fifteen_minute_chain(organisation):
    from incidents.policy import load_policy

    load_policy("playbook")

    p1 = EscalationPolicy.objects.get(severity__code="P1", severity__is_active=True)
    assert [s.delay.total_seconds() / 60 for s in p1.steps.all()] == [0, 15, 30, 60]


def test_viewers_read_policies_but_cannot_change_them(client, organisation):
    viewer = UserFactory(username="vic", groups=["Viewer"])
    client.force_login(viewer)
    policy = EscalationPolicy.objects.get(name="P0 Critical")
    assert client.get(f"/admin/escalation/escalationpolicy/{policy.pk}/change/").status_code == 200
    response = client.post(
        f"/admin/escalation/escalationpolicy/{policy.pk}/change/", {"name": "Hacked"}
    )
    assert response.status_code == 403
    assert (
        Group.objects.get(name="Admin")
        .permissions.filter(codename="change_escalationpolicy")
        .exists()
    )


def test_org_roles_exist_for_every_target_of_the_shipped_matrix(organisation):
    slugs = set(OrgRole.objects.values_list("slug", flat=True))
    targets = {
        target.split(":", 1)[1]
        for policy in EscalationPolicy.objects.prefetch_related("steps")
        for step in policy.steps.all()
        for target in step.targets
    }
    assert targets <= slugs
