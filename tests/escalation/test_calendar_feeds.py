"""iCalendar feeds of on-call shifts: what they say, who can read them, what they cost."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from icalendar import Calendar

from escalation import rotations as pure
from escalation import services
from escalation.calendar import feed_window, person_feed, regenerate_token, rotation_feed
from escalation.models import ContactProfile, Rotation, RotationMember
from tests.incidents.factories import UserFactory

pytestmark = pytest.mark.django_db

LONDON = "Europe/London"
ROSTER_FROM = datetime(2026, 1, 1, tzinfo=UTC)
# "now" for each daylight-saving change: the feed's window (30 days back, 90 ahead) covers it.
SPRING_NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)  # clocks went forward Sun 29 March 01:00Z
AUTUMN_NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)  # clocks go back Sun 25 October 01:00Z


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def person(username: str, first: str, last: str):
    return UserFactory(username=username, first_name=first, last_name=last)


def make_rotation(name: str, members, starts_on=date(2026, 1, 5), **fields) -> Rotation:
    """Weekly, handing over Monday 09:00 London time, roster set through the service."""
    fields = {
        "timezone": LONDON,
        "handoff_time": time(9, 0),
        "handoff_weekday": Rotation.Weekday.MONDAY,
        **fields,
    }
    rotation = Rotation.objects.create(name=name, starts_on=starts_on, **fields)
    services.set_rotation_members(rotation, list(members), effective_at=ROSTER_FROM)
    return rotation


def events(feed: bytes) -> list:
    calendar = Calendar.from_ical(feed)
    return sorted(calendar.walk("VEVENT"), key=lambda event: event.decoded("dtstart"))


def span(event) -> tuple[datetime, datetime]:
    return event.decoded("dtstart"), event.decoded("dtend")


def event_at(found: list, instant: datetime):
    matches = [e for e in found if span(e)[0] <= instant < span(e)[1]]
    assert len(matches) == 1, f"{len(matches)} events at {instant}"
    return matches[0]


def resolver_inputs(rotation: Rotation):
    members = [
        pure.Membership(m.user_id, m.position, m.since, m.until)
        for m in RotationMember.objects.filter(rotation=rotation)
    ]
    covers = [
        pure.Cover(o.user_id, o.starts_at, o.ends_at, order=o.pk) for o in rotation.overrides.all()
    ]
    return services.rules_for(rotation), members, covers


@pytest.fixture
def team():
    return {
        "alice": person("alice", "Alice", "Able"),
        "bob": person("bob", "Bob", "Baker"),
        "carol": person("carol", "Carol", "Cole"),
        "dave": person("dave", "Dave", "Dunn"),
    }


@pytest.fixture
def primary(team):
    return make_rotation("Primary", [team["alice"], team["bob"], team["carol"]])


# Instants on both sides of each handoff and of the clock change itself.
SPRING_INSTANTS = [
    utc(2026, 3, 23, 8, 59),  # Mon 23 Mar 08:59 GMT: the old shift still
    utc(2026, 3, 23, 9, 0),  # 09:00 GMT: handoff
    utc(2026, 3, 28, 19, 0),  # inside Dave's override
    utc(2026, 3, 29, 0, 59),  # 00:59 GMT, a minute before the clocks go forward
    utc(2026, 3, 29, 1, 0),  # 02:00 BST
    utc(2026, 3, 30, 7, 59),  # Mon 30 Mar 08:59 BST: the 167-hour shift's last minute
    utc(2026, 3, 30, 8, 0),  # 09:00 BST: handoff
    utc(2026, 3, 30, 9, 0),  # 10:00 BST: where a UTC-only handoff would have been
]
AUTUMN_INSTANTS = [
    utc(2026, 10, 19, 7, 59),  # Mon 19 Oct 08:59 BST
    utc(2026, 10, 19, 8, 0),  # 09:00 BST: handoff
    utc(2026, 10, 24, 19, 0),  # inside Dave's override
    utc(2026, 10, 25, 0, 59),  # 01:59 BST, a minute before the clocks go back
    utc(2026, 10, 25, 1, 0),  # 01:00 GMT, the repeated hour
    utc(2026, 10, 26, 8, 0),  # Mon 26 Oct 08:00 GMT: the 169-hour shift goes on
    utc(2026, 10, 26, 8, 59),
    utc(2026, 10, 26, 9, 0),  # 09:00 GMT: handoff
]


@pytest.mark.parametrize(
    ("now", "instants", "long_shift", "hours"),
    [
        (SPRING_NOW, SPRING_INSTANTS, (utc(2026, 3, 23, 9), utc(2026, 3, 30, 8)), 167),
        (AUTUMN_NOW, AUTUMN_INSTANTS, (utc(2026, 10, 19, 8), utc(2026, 10, 26, 9)), 169),
    ],
    ids=["spring", "autumn"],
)
def test_rotation_feed_agrees_with_the_resolver_across_dst(
    primary, team, now, instants, long_shift, hours
):
    # Dave covers an evening and night spanning the clock change.
    change_day = instants[4]
    services.create_override(
        primary, team["dave"], change_day - timedelta(hours=7), change_day + timedelta(hours=5)
    )
    rules, members, covers = resolver_inputs(primary)
    names = {user.pk: user.get_full_name() for user in team.values()}

    found = events(rotation_feed(primary, now))

    for instant in instants:
        expected = pure.on_call_at(rules, members, covers, instant)
        event = event_at(found, instant)
        suffix = " — override" if expected.is_override else ""
        assert str(event["summary"]) == f"On call: Primary ({names[expected.user]}){suffix}"
        assert span(event) == (expected.start, expected.end)
    # Literal expectations, so a resolver bug cannot hide behind agreement with itself: the
    # shift spanning the change is 167 h (spring) or 169 h (autumn), split by Dave's override.
    pieces = [e for e in found if long_shift[0] <= span(e)[0] < long_shift[1]]
    assert span(pieces[0])[0] == long_shift[0]
    assert span(pieces[-1])[1] == long_shift[1]
    assert long_shift[1] - long_shift[0] == timedelta(hours=hours)
    assert [str(e["summary"]).endswith("override") for e in pieces] == [False, True, False]


def test_rotation_feed_tiles_its_window_in_utc(primary):
    found = events(rotation_feed(primary, SPRING_NOW))

    start, end = feed_window(SPRING_NOW)
    assert start == utc(2026, 3, 11) and end == utc(2026, 7, 10)
    assert span(found[0])[0] == start
    assert span(found[-1])[1] == end
    for earlier, later in zip(found, found[1:], strict=False):
        assert span(earlier)[1] == span(later)[0]
    for event in found:
        assert event.decoded("dtstart").utcoffset() == timedelta(0)
        assert event["dtstart"].to_ical().endswith(b"Z")
        assert event.decoded("dtstamp") == SPRING_NOW


def test_feed_has_calendar_name_prodid_and_stable_uids(primary, settings):
    settings.SITE_URL = "https://oncall.example.com:8443"

    first = Calendar.from_ical(rotation_feed(primary, SPRING_NOW))
    later = Calendar.from_ical(rotation_feed(primary, SPRING_NOW + timedelta(hours=5)))

    assert str(first["x-wr-calname"]) == "On call: Primary"
    assert str(first["prodid"]) == "-//Incident portal//On-call calendar//EN"
    assert str(first["version"]) == "2.0"
    assert first["x-published-ttl"].to_ical() == b"PT1H"
    assert first.decoded("refresh-interval") == timedelta(hours=1)
    uids = [str(e["uid"]) for e in first.walk("VEVENT")]
    assert len(set(uids)) == len(uids)
    alice = RotationMember.objects.get(rotation=primary, user__username="alice").user_id
    # Mon 30 Mar 09:00 BST: Alice's shift.
    assert f"rotation-{primary.pk}-20260330T080000Z-{alice}@oncall.example.com" in uids
    assert uids == [str(e["uid"]) for e in later.walk("VEVENT")]


def test_description_names_the_handoff_and_the_backup(team):
    erin = person("erin", "Erin", "Ely")
    # The backup hands over on Thursdays, in the middle of the primary's shifts.
    backup = make_rotation(
        "Backup", [team["dave"], erin], handoff_weekday=Rotation.Weekday.THURSDAY
    )
    primary = make_rotation("Primary", [team["alice"], team["bob"]], backup=backup)

    found = events(rotation_feed(primary, SPRING_NOW))

    event = event_at(found, utc(2026, 3, 31, 12))  # Alice: shift 12 of a two-person roster
    assert str(event["description"]).splitlines() == [
        "Rotation: Primary",
        "On call: Alice Able",
        "From Mon 30 Mar 2026 09:00 BST to Mon 06 Apr 2026 09:00 BST (Europe/London)",
        "Takes over from: Bob Baker",
        "Hands over to: Bob Baker at Mon 06 Apr 2026 09:00 BST",
        "Backup: Backup (Erin Ely, then Dave Dunn)",
    ]


def test_override_appears_with_its_person_in_both_feeds(primary, team):
    services.create_override(primary, team["dave"], utc(2026, 4, 15, 10), utc(2026, 4, 17, 10))

    found = events(rotation_feed(primary, SPRING_NOW))
    dave_found = events(person_feed(team["dave"], SPRING_NOW))

    week = [e for e in found if utc(2026, 4, 13, 8) <= span(e)[0] < utc(2026, 4, 20, 8)]
    assert [(str(e["summary"]), *span(e)) for e in week] == [
        ("On call: Primary (Carol Cole)", utc(2026, 4, 13, 8), utc(2026, 4, 15, 10)),
        ("On call: Primary (Dave Dunn) — override", utc(2026, 4, 15, 10), utc(2026, 4, 17, 10)),
        ("On call: Primary (Carol Cole)", utc(2026, 4, 17, 10), utc(2026, 4, 20, 8)),
    ]
    assert "On call: Dave Dunn (override)" in str(week[1]["description"])
    assert [(str(e["summary"]), *span(e)) for e in dave_found] == [
        ("On call: Primary (Dave Dunn) — override", utc(2026, 4, 15, 10), utc(2026, 4, 17, 10))
    ]


def test_gaps_appear_in_the_rotation_feed_only(team):
    # Starts Monday 20 April (inside the window), and its roster empties from 1 May.
    late = make_rotation("Late", [team["alice"]], starts_on=date(2026, 4, 20))
    services.set_rotation_members(late, [], effective_at=utc(2026, 5, 1))

    rotation_events = events(rotation_feed(late, SPRING_NOW))
    person_events = events(person_feed(team["alice"], SPRING_NOW))

    gaps = [e for e in rotation_events if str(e["summary"]).startswith("GAP")]
    assert [(str(e["summary"]), *span(e)) for e in gaps] == [
        ("GAP: nobody on call in Late", utc(2026, 3, 11), utc(2026, 4, 20, 8)),
        ("GAP: nobody on call in Late", utc(2026, 5, 4, 8), utc(2026, 7, 10)),
    ]
    assert [(str(e["summary"]), *span(e)) for e in person_events] == [
        ("On call: Late (Alice Able)", utc(2026, 4, 20, 8), utc(2026, 4, 27, 8)),
        ("On call: Late (Alice Able)", utc(2026, 4, 27, 8), utc(2026, 5, 4, 8)),
    ]


def test_person_feed_holds_only_that_persons_spans_across_rotations(primary, team):
    erin, frank = person("erin", "Erin", "Ely"), person("frank", "Frank", "Fox")
    secondary = make_rotation("Secondary", [erin, frank])
    make_rotation("Elsewhere", [team["bob"], frank])
    # Alice is no member of Secondary; she covers one night of it.
    services.create_override(secondary, team["alice"], utc(2026, 5, 2, 20), utc(2026, 5, 3, 8))

    found = events(person_feed(team["alice"], SPRING_NOW))

    start, end = feed_window(SPRING_NOW)
    expected = sorted(
        (s.start, s.end, f"On call: {rotation.name} (Alice Able){' — override' * s.is_override}")
        for rotation in (primary, secondary)
        for s in services.shifts(rotation.pk, start, end)
        if s.user == team["alice"]
    )
    assert sorted((*span(e), str(e["summary"])) for e in found) == expected
    assert any("Secondary" in summary for *_, summary in expected)
    assert len(expected) > 5


@pytest.mark.parametrize("size", [2, 6])
def test_person_feed_costs_the_same_queries_for_any_number_of_rotations(
    client, django_assert_num_queries, team, size
):
    alice = team["alice"]
    profile = ContactProfile.objects.create(user=alice)
    made = []
    for number in range(size):
        rotation = make_rotation(
            f"R{number}",
            [alice, team["bob"]],
            backup=made[-1] if made else None,
        )
        services.create_override(rotation, team["carol"], utc(2026, 4, 14), utc(2026, 4, 15))
        services.create_override(rotation, alice, utc(2026, 4, 21), utc(2026, 4, 22))
        made.append(rotation)
    url = reverse("person-calendar", args=[profile.calendar_token])

    # Contact by token, rotations, members, overrides, people.
    with time_machine.travel(SPRING_NOW, tick=False), django_assert_num_queries(5):
        response = client.get(url)

    assert response.status_code == 200
    summaries = {str(e["summary"]) for e in events(response.content)}
    assert {f"On call: R{n} (Alice Able)" for n in range(size)} <= summaries


@pytest.mark.parametrize("size", [2, 6])
def test_rotation_feed_costs_the_same_queries_whatever_the_history(
    client, django_assert_num_queries, team, size
):
    backup = make_rotation("Backup", [team["dave"]])
    rotation = make_rotation("Primary", [team["alice"], team["bob"]], backup=backup)
    for week in range(size):
        monday = utc(2026, 3, 16) + timedelta(weeks=week)
        services.create_override(rotation, team["carol"], monday, monday + timedelta(hours=4))
    url = reverse("rotation-calendar", args=[rotation.calendar_token])

    # Rotation by token, rotation and backup, members, overrides, people.
    with time_machine.travel(SPRING_NOW, tick=False), django_assert_num_queries(5):
        response = client.get(url)

    assert response.status_code == 200


def test_feeds_are_served_as_inline_calendars_without_login(client, primary, team):
    profile = ContactProfile.objects.create(user=team["alice"])

    with time_machine.travel(SPRING_NOW, tick=False):
        by_rotation = client.get(reverse("rotation-calendar", args=[primary.calendar_token]))
        by_person = client.get(reverse("person-calendar", args=[profile.calendar_token]))

    assert by_rotation.status_code == 200
    assert by_rotation["Content-Type"] == "text/calendar; charset=utf-8"
    assert by_rotation["Content-Disposition"] == 'inline; filename="oncall-primary.ics"'
    assert "no-store" in by_rotation["Cache-Control"]
    assert by_person.status_code == 200
    assert by_person["Content-Type"] == "text/calendar; charset=utf-8"
    assert by_person["Content-Disposition"] == 'inline; filename="oncall-alice.ics"'
    assert str(Calendar.from_ical(by_person.content)["x-wr-calname"]) == "On call: Alice Able"


def test_unknown_and_crossed_tokens_are_not_found(client, primary, team):
    profile = ContactProfile.objects.create(user=team["alice"])

    assert client.get(reverse("rotation-calendar", args=["no-such-token"])).status_code == 404
    assert client.get(reverse("person-calendar", args=["no-such-token"])).status_code == 404
    # A rotation's secret does not open a person's feed, nor the reverse.
    assert client.get(reverse("person-calendar", args=[primary.calendar_token])).status_code == 404
    assert (
        client.get(reverse("rotation-calendar", args=[profile.calendar_token])).status_code == 404
    )


def test_a_deactivated_persons_feed_is_not_found(client, team):
    profile = ContactProfile.objects.create(user=team["alice"])
    team["alice"].is_active = False
    team["alice"].save(update_fields=["is_active"])

    assert client.get(reverse("person-calendar", args=[profile.calendar_token])).status_code == 404


def test_regenerated_token_revokes_the_old_url(client, primary, team):
    profile = ContactProfile.objects.create(user=team["alice"])
    old_rotation, old_person = primary.calendar_token, profile.calendar_token

    new_rotation = regenerate_token(primary)
    new_person = regenerate_token(profile)

    primary.refresh_from_db()
    profile.refresh_from_db()
    assert primary.calendar_token == new_rotation != old_rotation
    assert profile.calendar_token == new_person != old_person
    assert client.get(reverse("rotation-calendar", args=[old_rotation])).status_code == 404
    assert client.get(reverse("person-calendar", args=[old_person])).status_code == 404
    assert client.get(reverse("rotation-calendar", args=[new_rotation])).status_code == 200
    assert client.get(reverse("person-calendar", args=[new_person])).status_code == 200


def test_a_get_changes_nothing(client, primary, team):
    services.create_override(primary, team["dave"], utc(2026, 4, 15, 10), utc(2026, 4, 17, 10))
    profile = ContactProfile.objects.create(user=team["alice"])
    urls = [
        reverse("rotation-calendar", args=[primary.calendar_token]),
        reverse("person-calendar", args=[profile.calendar_token]),
    ]
    before = (primary.calendar_token, profile.calendar_token, RotationMember.objects.count())

    with time_machine.travel(SPRING_NOW, tick=False), CaptureQueriesContext(connection) as seen:
        first = [client.get(url).content for url in urls]
        again = [client.get(url).content for url in urls]

    primary.refresh_from_db()
    profile.refresh_from_db()
    assert (primary.calendar_token, profile.calendar_token, RotationMember.objects.count()) == (
        before
    )
    assert all(
        query["sql"].lstrip().upper().startswith("SELECT") for query in seen.captured_queries
    )
    assert first == again


def test_feeds_refuse_anything_but_get(client, primary):
    url = reverse("rotation-calendar", args=[primary.calendar_token])

    assert client.post(url).status_code == 405
