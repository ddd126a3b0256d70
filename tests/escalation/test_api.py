"""REST API v1 for on call: the same answers, rules and permissions as the admin.

The clock is frozen on Wednesday 11 March 2026, 12:00 UTC. "Primary" is weekly from Monday
5 January 2026 with olive then otto: otto has the week of 9 March, olive the week of 16 March.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from escalation import services
from escalation.models import EscalationPolicy, Override, Rotation
from integrations.services import create_api_key
from tests.incidents.factories import severity

from .factories import UserFactory, rotation_with

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # a Wednesday, otto's week


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def client_for(*groups: str, username: str) -> APIClient:
    user = UserFactory(username=username, groups=list(groups))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_key(username, user=user).key}")
    return client


@pytest.fixture
def people():
    return {
        name: UserFactory(username=name, first_name=name.title(), last_name="Oncall")
        for name in ("olive", "otto", "bea")
    }


@pytest.fixture
def primary(people) -> Rotation:
    return rotation_with(people["olive"], people["otto"], name="Primary")


@pytest.fixture
def viewer():
    return client_for("Viewer", username="vic")


@pytest.fixture
def responder():
    return client_for("Responder", username="rita")


@pytest.fixture
def admin():
    return client_for("Admin", username="ada")


def who(answer: dict) -> str | None:
    return answer["user"]["username"] if answer["user"] else None


# --- Who is on call ---------------------------------------------------------------------------


def test_who_is_on_call_now_across_a_handoff_and_in_a_gap(viewer, primary):
    Rotation.objects.create(name="Empty", starts_on=primary.starts_on)

    now = viewer.get("/api/v1/on-call/")
    assert now.status_code == 200, now.json()
    body = now.json()
    assert body["at"] == "2026-03-11T12:00:00Z"
    by_name = {row["rotation_name"]: row for row in body["results"]}
    assert by_name["Primary"]["user"] == {
        "username": "otto",
        "name": "Otto Oncall",
        "email": "otto@example.com",
    }
    assert (by_name["Primary"]["start"], by_name["Primary"]["end"]) == (
        "2026-03-09T00:00:00Z",
        "2026-03-16T00:00:00Z",
    )
    assert by_name["Primary"]["is_gap"] is False and by_name["Primary"]["is_override"] is False
    # Nobody on the roster: a gap, reported as such, never an invented person.
    assert by_name["Empty"]["user"] is None and by_name["Empty"]["is_gap"] is True

    url = f"/api/v1/rotations/{primary.pk}/on-call/"
    before = viewer.get(url, {"at": "2026-03-15T23:59:59Z"}).json()
    after = viewer.get(url, {"at": "2026-03-16T00:00:00Z"}).json()
    assert (who(before), who(after)) == ("otto", "olive")
    assert after["start"] == "2026-03-16T00:00:00Z" and after["end"] == "2026-03-23T00:00:00Z"
    # An offset is read as the instant it names: 01:00+01:00 is midnight UTC, olive's.
    assert who(viewer.get(url, {"at": "2026-03-16T01:00:00+01:00"}).json()) == "olive"


def test_an_override_made_through_the_api_puts_someone_on_call_for_its_span(
    responder, primary, people
):
    created = responder.post(
        "/api/v1/overrides/",
        {
            "rotation": primary.pk,
            "user": "bea",
            "starts_at": "2026-03-12T08:00:00Z",
            "ends_at": "2026-03-12T20:00:00Z",
            "reason": "otto at the dentist",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["user"]["username"] == "bea" and body["created_by"] == "rita"
    assert body["rotation_name"] == "Primary" and body["reason"] == "otto at the dentist"
    # The service the admin uses made it.
    assert Override.objects.get(pk=body["id"]).created_by.username == "rita"

    url = f"/api/v1/rotations/{primary.pk}/on-call/"
    covered = responder.get(url, {"at": "2026-03-12T12:00:00Z"}).json()
    assert who(covered) == "bea" and covered["is_override"] is True
    assert (covered["start"], covered["end"]) == ("2026-03-12T08:00:00Z", "2026-03-12T20:00:00Z")
    # Around it, otto's shift is cut at the override's edges.
    later = responder.get(url, {"at": "2026-03-12T21:00:00Z"}).json()
    assert who(later) == "otto" and later["start"] == "2026-03-12T20:00:00Z"

    deleted = responder.delete(f"/api/v1/overrides/{body['id']}/")
    assert deleted.status_code == 204
    assert who(responder.get(url, {"at": "2026-03-12T12:00:00Z"}).json()) == "otto"
    assert not Override.objects.exists()


# --- Rosters ----------------------------------------------------------------------------------


def admin_form(rotation: Rotation, users) -> dict:
    """The admin's rotation form resubmitted with the roster inline replaced by ``users``."""
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
        "members-TOTAL_FORMS": str(len(current) + len(users)),
        "members-INITIAL_FORMS": str(len(current)),
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    for index, member in enumerate(current):
        form.update(
            {
                f"members-{index}-id": member.pk,
                f"members-{index}-rotation": rotation.pk,
                f"members-{index}-position": member.position,
                f"members-{index}-user": member.user_id,
                f"members-{index}-DELETE": "on",
            }
        )
    for offset, user in enumerate(users):
        index = len(current) + offset
        form.update(
            {
                f"members-{index}-rotation": rotation.pk,
                f"members-{index}-position": offset,
                f"members-{index}-user": user.pk,
            }
        )
    return form


def holders(rotation: Rotation, start: datetime, days: int) -> list[tuple]:
    return [
        (s.start, s.user.username if s.user else None)
        for s in services.shifts(rotation.pk, start, start + timedelta(days=days))
    ]


def test_a_roster_set_through_the_api_takes_effect_as_one_saved_in_the_admin(admin, client, people):
    olive, otto, bea = people["olive"], people["otto"], people["bea"]
    by_api = rotation_with(olive, otto, name="By API")
    by_admin = rotation_with(olive, otto, name="By admin")
    past = holders(by_api, utc(2026, 1, 5), 65)

    changed = admin.put(
        f"/api/v1/rotations/{by_api.pk}/members/", {"members": ["bea", "olive"]}, format="json"
    )
    client.force_login(UserFactory(username="boss", is_superuser=True))
    saved = client.post(
        f"/admin/escalation/rotation/{by_admin.pk}/change/", admin_form(by_admin, [bea, olive])
    )

    assert changed.status_code == 200, changed.json()
    assert saved.status_code == 302
    roster = changed.json()
    assert [m["username"] for m in roster["members"]] == ["bea", "olive"]
    assert roster["effective_at"] == "2026-03-11T12:00:00Z"
    # otto finishes his week; the new roster rules from the next handoff.
    assert roster["applies_from"] == "2026-03-16T00:00:00Z"
    assert [m["username"] for m in roster["current"]] == ["bea", "olive"]
    assert holders(by_api, utc(2026, 1, 5), 65) == past
    assert holders(by_api, utc(2026, 3, 9), 35) == holders(by_admin, utc(2026, 3, 9), 35)
    assert holders(by_api, utc(2026, 3, 9), 14)[0][1] == "otto"
    assert bea.username in {user for _, user in holders(by_api, utc(2026, 3, 16), 14)}
    assert admin.get(f"/api/v1/rotations/{by_api.pk}/").json()["members"] == ["bea", "olive"]


def test_a_roster_change_can_be_scheduled_but_never_rewrite_the_past(admin, primary, viewer):
    url = f"/api/v1/rotations/{primary.pk}/members/"
    later = admin.put(
        url, {"members": ["bea"], "effective_at": "2026-03-25T09:00:00Z"}, format="json"
    )
    assert later.status_code == 200, later.json()
    roster = later.json()
    assert [m["username"] for m in roster["members"]] == ["bea"]
    assert roster["members"][0]["since"] == "2026-03-25T09:00:00Z"
    assert roster["applies_from"] == "2026-03-30T00:00:00Z"
    assert [m["username"] for m in roster["current"]] == ["olive", "otto"]
    assert viewer.get(url).json() == roster

    past = admin.put(
        url, {"members": ["bea"], "effective_at": "2026-03-01T00:00:00Z"}, format="json"
    )
    assert past.status_code == 400 and "effective_at" in past.json()["errors"]
    twice = admin.put(url, {"members": ["bea", "bea"]}, format="json")
    assert twice.status_code == 400
    assert twice.json()["errors"] == {"members": ["A person can be in a rotation only once."]}
    unknown = admin.put(url, {"members": ["bea", "nobody"]}, format="json")
    assert unknown.status_code == 400 and "nobody" in unknown.json()["errors"]["members"][0]
    not_a_list = admin.put(url, {"members": "bea"}, format="json")
    assert not_a_list.status_code == 400 and "members" in not_a_list.json()["errors"]
    nul = admin.put(url, {"members": ["b\x00ea"]}, format="json")
    assert nul.status_code == 400 and "members" in nul.json()["errors"]
    # Refused changes changed nothing.
    assert viewer.get(url).json() == roster


# --- Shifts -----------------------------------------------------------------------------------


def test_the_shifts_of_a_range_include_overrides_and_gaps(viewer, primary, people):
    services.create_override(
        primary, people["bea"], utc(2026, 3, 12, 8), utc(2026, 3, 12, 20), reason="swap"
    )
    services.set_rotation_members(primary, [], effective_at=utc(2026, 3, 20))

    response = viewer.get(
        f"/api/v1/rotations/{primary.pk}/shifts/",
        {"start": "2026-03-09T00:00:00Z", "end": "2026-04-06T00:00:00Z"},
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["start"], body["end"]) == ("2026-03-09T00:00:00Z", "2026-04-06T00:00:00Z")
    spans = [
        (s["start"][:13], s["end"][:13], who(s), s["is_override"], s["is_gap"])
        for s in body["results"]
    ]
    assert spans == [
        ("2026-03-09T00", "2026-03-12T08", "otto", False, False),
        ("2026-03-12T08", "2026-03-12T20", "bea", True, False),
        ("2026-03-12T20", "2026-03-16T00", "otto", False, False),
        ("2026-03-16T00", "2026-03-23T00", "olive", False, False),
        # The roster empties from 20 March: a gap from the next handoff.
        ("2026-03-23T00", "2026-04-06T00", None, False, True),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "start"),
        ({"start": "2026-03-09T00:00:00Z"}, "end"),
        ({"start": "2026-03-09T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "end"),
        ({"start": "2026-03-09T00:00:00Z", "end": "2027-03-11T00:00:00Z"}, "end"),
        ({"start": "yesterday", "end": "2026-03-10T00:00:00Z"}, "start"),
        ({"start": "0001-01-01T00:00:00+05:00", "end": "0001-01-02T00:00:00Z"}, "start"),
        ({"start": "9999-12-30T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "start"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_parameter(viewer, primary, query, field):
    response = viewer.get(f"/api/v1/rotations/{primary.pk}/shifts/", query)
    assert response.status_code == 400
    assert field in response.json()["errors"]


# --- Rotations --------------------------------------------------------------------------------


def test_an_admin_creates_and_changes_a_rotation_with_the_models_rules(admin, people, primary):
    created = admin.post(
        "/api/v1/rotations/",
        {
            "name": "Database",
            "timezone": "Europe/London",
            "shift_unit": "days",
            "shift_length": 2,
            "handoff_time": "09:30",
            "starts_on": "2026-03-02",
            "owner": "bea",
            "backup": primary.pk,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["owner"] == "bea" and body["backup"] == primary.pk
    assert body["members"] == [] and body["handoff_ack_within"] == "P0DT04H00M00S"
    url = f"/api/v1/rotations/{body['id']}/"

    changed = admin.patch(url, {"name": "Databases", "handoff_weekday": 2}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["name"], changed.json()["timezone"]) == ("Databases", "Europe/London")

    refused = {
        "timezone": {"timezone": "Mars/Olympus_Mons"},
        "backup": {"backup": body["id"]},  # its own backup (Rotation.clean)
        "name": {"name": "Primary"},
        "shift_length": {"shift_length": 0},
        "starts_on": {"starts_on": "0001-01-01"},
        "owner": {"owner": "nobody"},
        "handoff_time": {"handoff_time": "25:00"},
        "shift_unit": {"shift_unit": "fortnights"},
    }
    for field, data in refused.items():
        response = admin.patch(url, data, format="json")
        assert response.status_code == 400, (field, response.json())
        assert field in response.json()["errors"], (field, response.json())
    nul = admin.patch(url, {"owner": "b\x00ea"}, format="json")
    assert nul.status_code == 400 and "owner" in nul.json()["errors"]
    assert Rotation.objects.get(pk=body["id"]).timezone == "Europe/London"
    # No PUT of the whole rotation: a field left out would silently reset.
    assert admin.put(url, {"name": "X"}, format="json").status_code == 405


def test_a_new_rotation_needs_its_required_fields(admin):
    response = admin.post("/api/v1/rotations/", {"timezone": "Nowhere/Else"}, format="json")
    assert response.status_code == 400
    assert {"name", "starts_on"} <= set(response.json()["errors"])


def test_rotations_list_with_their_roster_now(viewer, primary):
    body = viewer.get("/api/v1/rotations/").json()
    assert [(r["name"], r["members"]) for r in body["results"]] == [("Primary", ["olive", "otto"])]
    assert viewer.get("/api/v1/rotations/?search=prim").json()["count"] == 1


# --- Permissions ------------------------------------------------------------------------------


def test_permissions_follow_the_admin_groups(viewer, responder, admin, primary):
    rotation_url = f"/api/v1/rotations/{primary.pk}/"
    override = {
        "rotation": primary.pk,
        "user": "bea",
        "starts_at": "2026-03-12T08:00:00Z",
        "ends_at": "2026-03-12T20:00:00Z",
    }
    # Viewers read everything and change nothing.
    for url in ("/api/v1/on-call/", rotation_url, rotation_url + "members/", "/api/v1/overrides/"):
        assert viewer.get(url).status_code == 200, url
    assert viewer.post("/api/v1/overrides/", override, format="json").status_code == 403
    assert viewer.patch(rotation_url, {"name": "Mine"}, format="json").status_code == 403
    members = {"members": ["olive"]}
    assert viewer.put(rotation_url + "members/", members, format="json").status_code == 403
    made = responder.post("/api/v1/overrides/", override, format="json")
    assert made.status_code == 201
    assert viewer.delete(f"/api/v1/overrides/{made.json()['id']}/").status_code == 403
    # Responders cover for each other (overrides) but configure no rotation.
    assert responder.patch(rotation_url, {"name": "Mine"}, format="json").status_code == 403
    assert responder.put(rotation_url + "members/", members, format="json").status_code == 403
    rotation = {"name": "New", "starts_on": "2026-03-02"}
    assert responder.post("/api/v1/rotations/", rotation, format="json").status_code == 403
    assert responder.delete(f"/api/v1/overrides/{made.json()['id']}/").status_code == 204
    # Admins configure.
    assert admin.post("/api/v1/rotations/", rotation, format="json").status_code == 201
    assert admin.put(rotation_url + "members/", members, format="json").status_code == 200
    # Without a key, nothing.
    assert APIClient().get("/api/v1/on-call/").status_code == 401


# --- Overrides --------------------------------------------------------------------------------


def test_overrides_are_listed_by_rotation_person_and_time_range(viewer, primary, people):
    other = rotation_with(people["bea"], name="Other")
    early = services.create_override(
        primary, people["bea"], utc(2026, 3, 12, 8), utc(2026, 3, 12, 20)
    )
    late = services.create_override(primary, people["olive"], utc(2026, 4, 1), utc(2026, 4, 2))
    elsewhere = services.create_override(other, people["otto"], utc(2026, 3, 12), utc(2026, 3, 13))

    def ids(query: dict) -> list[int]:
        response = viewer.get("/api/v1/overrides/", query)
        assert response.status_code == 200, response.json()
        return [o["id"] for o in response.json()["results"]]

    assert ids({}) == [elsewhere.pk, early.pk, late.pk]
    assert ids({"rotation": primary.pk}) == [early.pk, late.pk]
    assert ids({"user": "otto"}) == [elsewhere.pk]
    # Overlapping [13 March, 2 April): the late one only (the others end by the 13th).
    assert ids({"ends_after": "2026-03-13T00:00:00Z", "starts_before": "2026-04-02T00:00:00Z"}) == [
        late.pk
    ]
    assert viewer.get(f"/api/v1/overrides/{early.pk}/").json()["user"]["username"] == "bea"
    # An offset PostgreSQL has no zone for is still an instant: read in UTC.
    assert ids({"ends_after": "2026-04-01T20:19:38+17:34"}) == [late.pk]
    for bad in (
        {"rotation": "abc"},
        {"rotation": "99999999999999"},
        {"ends_after": "soon"},
        {"starts_before": "0001-01-01T00:00:00+05:00"},
    ):
        response = viewer.get("/api/v1/overrides/", bad)
        assert response.status_code == 400, bad
        assert set(response.json()["errors"]) == set(bad)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user": "nobody"}, "user"),
        ({"user": "b\x00ea"}, "user"),  # PostgreSQL cannot compare a NUL byte
        ({"ends_at": "2026-03-12T07:00:00Z"}, "ends_at"),  # before it starts
        ({"ends_at": "2026-03-12T08:00:00Z"}, "ends_at"),  # a span of nothing
        ({"starts_at": "12/03/2026"}, "starts_at"),
        ({"starts_at": "2026-03-12T25:00:00Z"}, "starts_at"),
        ({"rotation": 999999}, "rotation"),
        ({"rotation": "99999999999999999999"}, "rotation"),
        ({"rotation": None}, "rotation"),
        ({"reason": "x" * 201}, "reason"),
        ({"ends_at": "9999-12-31T23:59:59Z"}, "ends_at"),
    ],
)
def test_a_bad_override_is_a_400_naming_the_field(responder, primary, change, field):
    override = {
        "rotation": primary.pk,
        "user": "bea",
        "starts_at": "2026-03-12T08:00:00Z",
        "ends_at": "2026-03-12T20:00:00Z",
        **change,
    }
    UserFactory(username="bea")
    response = responder.post("/api/v1/overrides/", override, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not Override.objects.exists()


# --- Escalation policies ------------------------------------------------------------------------


def test_policies_are_readable_with_their_steps_and_a_preview(viewer, responder):
    severity("P1")  # the default scale and its escalation policies
    policies = viewer.get("/api/v1/escalation-policies/").json()["results"]
    assert policies, "the default scale ships policies"
    p1 = next(p for p in policies if p["severity"] == "P1")
    stored = EscalationPolicy.objects.get(pk=p1["id"])
    steps = list(stored.steps.all())
    assert [s["key"] for s in p1["steps"]] == [s.key for s in steps]
    first = p1["steps"][0]
    assert first["delay_seconds"] == steps[0].delay.total_seconds()
    assert first["delay"].startswith("P") and first["targets"] == steps[0].targets
    assert first["condition"] == steps[0].condition and first["channels"] == steps[0].channels
    assert p1["preview"] is None
    flagged = [p for p in policies if p["flag"]]
    assert all(p["severity"] is None for p in flagged)

    url = f"/api/v1/escalation-policies/{p1['id']}/"
    previewed = responder.get(url, {"preview": "true"}).json()
    assert previewed["steps"] == p1["steps"]
    rows = previewed["preview"]
    assert rows and rows[0]["offset_seconds"] == min(s.delay for s in steps).total_seconds()
    assert {"step", "targets", "recipients", "channel", "gaps", "offset"} <= set(rows[0])
    assert responder.get(url, {"preview": "maybe"}).status_code == 400
    # Read only: nobody writes policies through the API.
    assert responder.patch(url, {"name": "Mine"}, format="json").status_code in (403, 405)
    assert viewer.get("/api/v1/escalation-policies/99999999/").status_code == 404


# --- Bad input anywhere ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/on-call/?at=tomorrow",
        "/api/v1/on-call/?at=2026-13-01T00:00:00Z",
        "/api/v1/on-call/?at=0001-01-01T00:00:00%2B05:00",
        "/api/v1/on-call/?at=9999-12-31T23:59:59Z",
        "/api/v1/rotations/{id}/on-call/?at=noon",
        "/api/v1/rotations/{id}/shifts/?start=&end=",
    ],
)
def test_a_bad_instant_is_a_400_never_a_500(viewer, primary, path):
    response = viewer.get(path.format(id=primary.pk))
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/rotations/9999999999/",
        "/api/v1/rotations/9999999999/on-call/",
        "/api/v1/rotations/abc/",
        "/api/v1/overrides/9999999999/",
        "/api/v1/escalation-policies/9999999999/",
    ],
)
def test_an_unknown_id_is_a_404(viewer, path):
    response = viewer.get(path)
    assert response.status_code == 404
    assert response.json()["detail"]


def test_every_endpoint_is_in_the_schema(viewer):
    schema = viewer.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in (
        "/api/v1/on-call/",
        "/api/v1/rotations/",
        "/api/v1/rotations/{id}/",
        "/api/v1/rotations/{id}/on-call/",
        "/api/v1/rotations/{id}/shifts/",
        "/api/v1/rotations/{id}/members/",
        "/api/v1/overrides/",
        "/api/v1/overrides/{id}/",
        "/api/v1/escalation-policies/",
        "/api/v1/escalation-policies/{id}/",
    ):
        assert path in schema["paths"], path
        for operation in schema["paths"][path].values():
            assert {"400", "401", "403", "404"} <= set(operation["responses"]), path
