"""The on-call admin as its users meet it: coverage, roster edits, who-is-on-call, contacts."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command

from escalation import services
from escalation.models import ContactProfile, OrgRole, Rotation, RotationMember

from .factories import UserFactory, rotation_with

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin_user():
    return UserFactory(username="boss", is_superuser=True)


@pytest.fixture
def people():
    return [
        UserFactory(username=name, first_name=name.title(), last_name="Oncall")
        for name in ("alice", "bob", "carol")
    ]


def test_the_rotation_page_lists_the_next_shifts_and_highlights_gaps(client, admin_user, people):
    rotation = rotation_with(*people)
    # Nobody from Monday 23 March: the roster empties, a gap the page must show.
    services.set_rotation_members(rotation, [], effective_at=datetime(2026, 3, 20, tzinfo=UTC))
    client.force_login(admin_user)

    page = client.get(f"/admin/escalation/rotation/{rotation.pk}/change/").content.decode()

    assert page.count('<tr class="gap-row">') == 1  # one merged gap from 23 March on
    assert "Mon 2026-03-09 00:00" in page  # the current shift
    holders = [s.user for s in services.shifts(rotation.pk, NOW, NOW + timedelta(days=8))]
    assert holders[0].get_full_name() in page and holders[1].get_full_name() in page
    assert "Gaps in the next 30 days" in page
    assert "Mon 2026-03-23 00:00 to" in page
    assert "nobody on call" in page


def test_saving_the_roster_inline_keeps_past_shifts_and_reorders_from_the_next_handoff(
    client, admin_user, people
):
    alice, bob, carol = people
    rotation = rotation_with(alice, bob, carol)
    before = [
        (s.start, s.user) for s in services.shifts(rotation.pk, NOW - timedelta(days=28), NOW)
    ]
    current = list(rotation.members.filter(until__isnull=True).order_by("position"))
    form = {
        "name": rotation.name,
        "description": "",
        "owner": "",
        "backup": "",
        "shift_unit": "weeks",
        "shift_length": "1",
        "handoff_weekday": "0",
        "handoff_time": "00:00",
        "timezone": "UTC",
        "starts_on": "2026-01-05",
        "maintenance_notes": "",
        "known_issues": "",
        "handoff_reminder_before": "01:00:00",
        "handoff_ack_within": "04:00:00",
        "members-TOTAL_FORMS": "3",
        "members-INITIAL_FORMS": "3",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    # New order: carol, alice; bob removed.
    for index, (member, position, delete) in enumerate(
        zip(current, ("1", "2", "0"), ("", "on", ""), strict=True)
    ):
        form.update(
            {
                f"members-{index}-id": member.pk,
                f"members-{index}-rotation": rotation.pk,
                f"members-{index}-position": position,
                f"members-{index}-user": member.user_id,
                f"members-{index}-DELETE": delete,
            }
        )
    client.force_login(admin_user)

    response = client.post(f"/admin/escalation/rotation/{rotation.pk}/change/", form)

    assert response.status_code == 302
    after = [(s.start, s.user) for s in services.shifts(rotation.pk, NOW - timedelta(days=28), NOW)]
    assert after == before
    roster = RotationMember.objects.filter(rotation=rotation, until__isnull=True).order_by(
        "position"
    )
    assert [m.user.username for m in roster] == ["carol", "alice"]
    assert RotationMember.objects.filter(rotation=rotation, user=bob, until=NOW).exists()
    next_monday = datetime(2026, 3, 16, tzinfo=UTC)
    future = services.shifts(rotation.pk, next_monday, next_monday + timedelta(days=28))
    assert bob not in {s.user for s in future}


def test_the_rotation_list_answers_who_is_on_call_at_a_chosen_time(client, admin_user, people):
    rotation_with(*people, name="Primary")
    client.force_login(admin_user)

    now_page = client.get("/admin/escalation/rotation/").content.decode()
    later_page = client.get("/admin/escalation/rotation/?at=2026-03-17+10:00").content.decode()

    expected_now = services.on_call(Rotation.objects.filter(name="Primary"), NOW)[0].user
    expected_later = services.on_call(
        Rotation.objects.filter(name="Primary"), datetime(2026, 3, 17, 10, tzinfo=UTC)
    )[0].user
    assert expected_now != expected_later
    assert expected_now.get_full_name() in now_page
    assert expected_later.get_full_name() in later_page
    assert "2026-03-17 10:00" in later_page


def test_emergency_contacts_list_every_role_with_its_holder_now_and_how_to_reach_them(
    client, admin_user, people
):
    alice, bob, _ = people
    rotation = rotation_with(alice, bob, name="Primary")
    ContactProfile.objects.create(user=bob, phone="+44 20 1234", chat_handle="@bob")
    ContactProfile.objects.create(user=alice, phone="+44 20 9999", chat_handle="@alice")
    devops = OrgRole.objects.get(slug="devops-lead")
    devops.rotation = rotation
    devops.save()
    OrgRole.objects.get(slug="cto").holders.set([bob])
    holder_now = services.on_call(Rotation.objects.filter(pk=rotation.pk), NOW)[0].user
    client.force_login(admin_user)

    page = client.get("/admin/escalation/orgrole/contacts/").content.decode()

    for name in ("DevOps Lead", "Backend Lead", "Security Team", "Engineering Manager", "CTO"):
        assert name in page
    assert holder_now.contact.phone in page
    assert "+44 20 1234" in page and "@bob" in page
    assert "Nobody holds this role" in page  # Backend Lead has nobody yet


def test_the_admin_home_shows_who_is_on_call_now_and_upcoming_gaps(client, admin_user, people):
    rotation = rotation_with(*people, name="Primary")
    services.set_rotation_members(rotation, [], effective_at=datetime(2026, 3, 12, tzinfo=UTC))
    holder = services.on_call(Rotation.objects.filter(pk=rotation.pk), NOW)[0].user
    client.force_login(admin_user)

    page = client.get("/admin/").content.decode()

    assert "On call now" in page
    assert holder.get_full_name() in page
    assert "gap Mon 16 Mar 00:00" in page


def test_a_viewer_sees_rotations_but_cannot_change_them(client, people):
    viewer = UserFactory(username="viewer")
    viewer.groups.add(Group.objects.get(name="Viewer"))
    rotation = rotation_with(*people)
    client.force_login(viewer)

    assert client.get("/admin/escalation/rotation/").status_code == 200
    page = client.get(f"/admin/escalation/rotation/{rotation.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    response = client.post(f"/admin/escalation/rotation/{rotation.pk}/change/", {"name": "X"})
    assert response.status_code == 403
    assert client.get("/admin/escalation/rotation/add/").status_code == 403


def test_seed_demo_gives_a_primary_and_backup_rotation_and_role_holders(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115

    primary = Rotation.objects.get(name="Primary on-call")
    assert primary.backup.name == "Backup on-call"
    assert Rotation.objects.count() == 2
    assert primary.members.filter(until__isnull=True).count() == 4
    answer = services.on_call(Rotation.objects.filter(pk=primary.pk))[0]
    assert not answer.is_gap
    assert OrgRole.objects.get(slug="security-team").holders.count() == 2
    assert ContactProfile.objects.filter(user__username__startswith="demo.").count() >= 10


def test_the_rotation_page_lists_eight_shifts_when_fully_covered(client, admin_user, people):
    rotation = rotation_with(*people)
    client.force_login(admin_user)

    page = client.get(f"/admin/escalation/rotation/{rotation.pk}/change/").content.decode()

    coverage = page[page.index("Next shifts") : page.index("Gaps in the next")]
    assert coverage.count("<tr class=") == 8
    assert "Mon 2026-03-09 00:00" in coverage and "Mon 2026-05-04 00:00" in coverage
    assert "every hour of the next 30 days is covered" in page


def test_the_admin_home_lists_handoffs_nobody_acknowledged_in_time(client, admin_user, people):
    from escalation import handoffs
    from escalation.models import Handoff

    rotation = rotation_with(*people, name="Primary")
    handoffs.run_handoffs(datetime(2026, 3, 8, 23, 30, tzinfo=UTC))  # before Monday 9 March
    handoff = Handoff.objects.get(rotation=rotation)
    client.force_login(admin_user)

    page = client.get("/admin/").content.decode()  # Wednesday: long past the 4-hour window

    assert "Handoffs not acknowledged" in page
    assert f"/admin/escalation/handoff/{handoff.pk}/change/" in page
    handoffs.acknowledge_handoff(handoff, by=handoff.incoming)
    assert "Handoffs not acknowledged" not in client.get("/admin/").content.decode()
