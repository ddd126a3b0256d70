"""The public status page, its Atom feed and its JSON summary: what the public sees, and what it
never sees."""

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from comms import status_page
from comms.demo import seed_status_page
from comms.models import (
    Audience,
    CommsSettings,
    Communication,
    IncidentComms,
    IncidentUpdate,
    Maintenance,
    Notification,
    ServiceState,
    StatusPageService,
)
from incidents import services
from incidents.models import IncidentRole, Review, Service, Status
from tests.incidents.factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
PAGE, FEED, SUMMARY = "/status/", "/status/feed.atom", "/status/summary.json"
ATOM = "{http://www.w3.org/2005/Atom}"


def public(incident, *, title: str = "", impact: str = "", is_public: bool = True, **fields):
    """Set the incident's public face (its communications row may already exist: declaring
    creates one)."""
    IncidentComms.objects.update_or_create(
        incident=incident,
        defaults={"is_public": is_public, "public_title": title, "public_impact": impact, **fields},
    )
    return incident


def post(incident, text: str, *, at: datetime, status: str = Status.INVESTIGATING, **internal):
    return IncidentUpdate.objects.create(
        incident=incident, posted_at=at, status=status, public_text=text, **internal
    )


def listed(name: str, *inner: Service, **fields) -> StatusPageService:
    service = StatusPageService.objects.create(name=name, **fields)
    service.services.set(inner)
    return service


def maintenance(title: str, starts_at: datetime, hours: float, *on: StatusPageService):
    window = Maintenance.objects.create(
        title=title, starts_at=starts_at, ends_at=starts_at + timedelta(hours=hours)
    )
    window.services.set(on)
    return window


def build(now: datetime = T0) -> status_page.StatusPage:
    return status_page.build(now)


def state_of(page: status_page.StatusPage, name: str) -> ServiceState:
    return next(row.state for row in page.services if row.name == name)


@pytest.fixture
def api():
    return Service.objects.create(name="orders-api")


@pytest.fixture
def checkout(api):
    return listed("Checkout", api, position=1)


# --- Pure rules -------------------------------------------------------------------------------


def test_worst_follows_the_declaration_order_best_first():
    assert status_page.worst([]) == ServiceState.OPERATIONAL
    assert (
        status_page.worst(["under_maintenance", "degraded_performance"]) == "degraded_performance"
    )
    assert status_page.worst(["major_outage", "partial_outage"]) == ServiceState.MAJOR


def test_the_severity_rank_gives_the_impact_when_the_commander_did_not():
    assert [status_page.severity_impact(rank) for rank in range(4)] == [
        ServiceState.MAJOR,
        ServiceState.PARTIAL,
        ServiceState.DEGRADED,
        ServiceState.DEGRADED,
    ]


def test_a_maintenance_window_is_upcoming_then_ongoing_then_past():
    starts, ends = T0, T0 + timedelta(hours=2)
    assert [
        status_page.maintenance_phase(starts, ends, now)
        for now in (T0 - timedelta(seconds=1), T0, ends - timedelta(seconds=1), ends)
    ] == ["upcoming", "ongoing", "ongoing", "past"]


def test_a_state_set_by_hand_wins_over_incidents_and_maintenance():
    assert status_page.service_state("operational", ["major_outage"], True) == "operational"
    assert status_page.service_state("", ["degraded_performance"], True) == "degraded_performance"
    assert status_page.service_state("", [], True) == ServiceState.MAINTENANCE


# --- Service states -----------------------------------------------------------------------------


def test_a_service_shows_the_worst_open_public_incident_behind_it(api, checkout):
    listed("Search", Service.objects.create(name="search-cluster"), position=2)
    public(declare("Disk slow", code="P2", affected_services=[api], now=T0 - timedelta(hours=2)))
    public(declare("Orders fail", code="P0", affected_services=[api], now=T0 - timedelta(hours=1)))

    page = build()

    assert state_of(page, "Checkout") == ServiceState.MAJOR
    assert state_of(page, "Search") == ServiceState.OPERATIONAL
    assert (page.state, page.banner) == (ServiceState.MAJOR, "Major outage")


def test_the_commander_s_public_impact_replaces_the_severity_s(api, checkout):
    incident = declare("Orders fail", code="P0", affected_services=[api], now=T0)
    public(incident, impact=ServiceState.DEGRADED)

    assert state_of(build(), "Checkout") == ServiceState.DEGRADED


def test_private_security_and_resolved_incidents_leave_a_service_operational(api, checkout):
    public(declare("Private", code="P0", affected_services=[api], now=T0), is_public=False)
    breach = declare("Breach", code="P0", affected_services=[api], is_security=True, now=T0)
    public(breach)
    IncidentComms.objects.filter(incident=breach).update(is_public=True)  # however it got set
    fixed = public(
        declare("Fixed", code="P0", affected_services=[api], now=T0 - timedelta(hours=3))
    )
    services.resolve_incident(fixed, by=UserFactory(), now=T0 - timedelta(hours=1))
    uncommunicated = declare("No comms row", code="P0", affected_services=[api], now=T0)
    IncidentComms.objects.filter(incident=uncommunicated).delete()

    page = build()

    assert state_of(page, "Checkout") == ServiceState.OPERATIONAL
    assert page.banner == "All systems operational"
    assert [incident.title for incident in page.active] == []
    assert [incident.title for incident in page.recently_resolved] == [
        "Service disruption: Checkout"
    ]


def test_a_state_set_by_hand_overrides_the_derived_one(api, checkout):
    public(declare("Orders fail", code="P0", affected_services=[api], now=T0))
    StatusPageService.objects.filter(pk=checkout.pk).update(state_override="partial_outage")
    listed("Reports", state_override=ServiceState.MAINTENANCE)

    page = build()

    assert state_of(page, "Checkout") == ServiceState.PARTIAL
    assert state_of(page, "Reports") == ServiceState.MAINTENANCE
    assert page.state == ServiceState.PARTIAL


def test_ongoing_maintenance_shows_unless_an_incident_is_worse(api, checkout):
    search = listed("Search", Service.objects.create(name="search-cluster"))
    maintenance("Index rebuild", T0 - timedelta(hours=1), 2, checkout, search)
    maintenance("Next week", T0 + timedelta(days=7), 2, search)
    public(declare("Orders slow", code="P2", affected_services=[api], now=T0))

    page = build()

    assert state_of(page, "Search") == ServiceState.MAINTENANCE
    assert state_of(page, "Checkout") == ServiceState.DEGRADED
    assert [m.title for m in page.ongoing_maintenance] == ["Index rebuild"]
    assert [m.title for m in page.upcoming_maintenance] == ["Next week"]
    assert state_of(build(T0 + timedelta(hours=2)), "Search") == ServiceState.OPERATIONAL


def test_an_open_incident_of_no_listed_service_still_sets_the_banner(checkout):
    public(declare("Everything slow", code="P1", now=T0), title="Slow responses")

    page = build()

    assert state_of(page, "Checkout") == ServiceState.OPERATIONAL
    assert (page.state, [i.title for i in page.active]) == (
        ServiceState.PARTIAL,
        ["Slow responses"],
    )


# --- 90 days ------------------------------------------------------------------------------------


def test_ninety_days_mark_each_day_an_incident_or_maintenance_touched(api, checkout):
    by = UserFactory()
    night = public(
        declare(
            "Night", code="P1", affected_services=[api], now=datetime(2026, 3, 8, 23, tzinfo=UTC)
        ),
        title="Checkout errors overnight",
    )
    services.resolve_incident(night, by=by, now=datetime(2026, 3, 9, 1, tzinfo=UTC))
    old = public(declare("Old", code="P0", affected_services=[api], now=T0 - timedelta(days=100)))
    services.resolve_incident(old, by=by, now=T0 - timedelta(days=99))
    maintenance("Upgrade", datetime(2026, 3, 1, 2, tzinfo=UTC), 2, checkout)
    maintenance("Tonight", datetime(2026, 3, 11, 22, tzinfo=UTC), 2, checkout)

    row = build().services[0]

    assert len(row.days) == 90
    assert (row.days[0].day, row.days[-1].day) == (T0.date() - timedelta(days=89), T0.date())
    marked = {day.day.isoformat(): day for day in row.days if day.state != "operational"}
    assert {day: marked[day].state for day in marked} == {
        "2026-03-01": ServiceState.MAINTENANCE,
        "2026-03-08": ServiceState.PARTIAL,
        "2026-03-09": ServiceState.PARTIAL,
    }
    assert marked["2026-03-08"].label == "08 Mar 2026: Partial outage (Checkout errors overnight)"
    assert marked["2026-03-01"].label == "01 Mar 2026: Under maintenance (maintenance: Upgrade)"
    assert row.days[-1].label == "11 Mar 2026: no incidents"
    assert row.incident_days == 2


def test_an_open_incident_colours_every_day_since_it_began(api, checkout):
    public(declare("Long", code="P2", affected_services=[api], now=T0 - timedelta(days=2)))

    row = build().services[0]

    assert [day.state for day in row.days[-4:]] == ["operational"] + ["degraded_performance"] * 3


# --- The views ----------------------------------------------------------------------------------


@pytest.fixture
def scene(api, checkout):
    """An open public incident with two public updates, a resolved one, upcoming maintenance."""
    by = UserFactory()
    open_ = public(
        declare("Orders fail", code="P1", affected_services=[api], now=T0 - timedelta(hours=2)),
        title="Some orders fail at checkout",
    )
    post(open_, "We are looking into failed orders.", at=T0 - timedelta(hours=2))
    post(open_, "A fix is being rolled out.", at=T0 - timedelta(hours=1), status=Status.FIXING)
    fixed = public(
        declare("Slow", code="P2", affected_services=[api], now=T0 - timedelta(days=2)),
        title="Checkout was slow",
    )
    # The commander's resolution notice, written before resolving: the resolve uses it.
    post(
        fixed,
        "Checkout is fast again.",
        at=T0 - timedelta(days=1),
        status=Status.RESOLVED,
        kind=IncidentUpdate.Kind.RESOLUTION,
        audiences=[Audience.PUBLIC],
    )
    services.resolve_incident(fixed, by=by, now=T0 - timedelta(days=1))
    maintenance("Database upgrade", T0 + timedelta(days=2), 2, checkout)
    CommsSettings.objects.filter(pk=CommsSettings.load().pk).update(status_page_title="Acme status")
    return open_, fixed


def get(client, url, **headers):
    with time_machine.travel(T0, tick=False):
        return client.get(url, headers=headers)


def test_the_page_needs_no_login_and_shows_the_public_picture(client, scene):
    open_, fixed = scene

    response = get(client, PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Acme status</title>" in html
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Acme status" '
        'href="/status/feed.atom">' in html
    )
    assert 'href="/status/summary.json"' in html
    assert "Partial outage" in html  # the banner: P1 without a public impact
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Active incidents Some orders fail at checkout Partial outage Affects Checkout" in text
    # Newest update first.
    assert text.index("A fix is being rolled out.") < text.index("We are looking into failed")
    assert "Fixing" in text
    assert "Scheduled maintenance Database upgrade Scheduled Affects Checkout" in text
    assert "Resolved in the last 7 days Checkout was slow Resolved" in text
    assert "Checkout is fast again." in text
    assert "3 days with incidents" in text
    assert html.count('<li class="bg-') == 90


def test_everything_is_cacheable_and_a_reload_is_a_304(client, scene):
    open_, _ = scene
    for url in (PAGE, FEED, SUMMARY):
        first = get(client, url)
        assert first.status_code == 200, url
        assert set(first["Cache-Control"].split(", ")) == {"public", "max-age=30"}
        assert "Cookie" not in first.get("Vary", "")
        assert not first.cookies
        etag = first["ETag"]

        again = get(client, url, if_none_match=etag)

        assert (again.status_code, again.content) == (304, b""), url
        assert again["ETag"] == etag
        assert "max-age=30" in again["Cache-Control"]

    etags = {url: get(client, url)["ETag"] for url in (PAGE, FEED, SUMMARY)}
    post(open_, "Orders work again for most customers.", at=T0 - timedelta(minutes=5))
    for url, etag in etags.items():
        assert get(client, url, if_none_match=etag).status_code == 200, url


def test_only_get_and_head_are_answered(client, scene):
    assert client.post(PAGE).status_code == 405
    assert client.put(SUMMARY).status_code == 405
    head = client.head(FEED)
    assert (head.status_code, head.content) == (200, b"")


def test_the_feed_is_atom_with_an_entry_per_public_update_and_maintenance(client, scene):
    open_, fixed = scene
    post(open_, "", at=T0 - timedelta(minutes=30), progress="internal only")
    ancient = public(declare("Ancient", code="P2", now=T0 - timedelta(days=200)), title="Ancient")
    post(ancient, "Still looking, a long time later.", at=T0 - timedelta(days=120))

    response = get(client, FEED)

    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert "Last-Modified" not in response
    feed = ET.fromstring(response.content)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "Acme status"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "Scheduled maintenance: Database upgrade",
        "Some orders fail at checkout: Fixing",
        "Some orders fail at checkout: Investigating",
        "Checkout was slow: Resolved",
    ]
    for entry in entries:
        assert entry.findtext(f"{ATOM}id").startswith("urn:uuid:")
        assert entry.findtext(f"{ATOM}updated")
        assert entry.find(f"{ATOM}link").get("href").startswith("http://testserver/status/#")
    assert entries[1].findtext(f"{ATOM}summary") == "<p>A fix is being rolled out.</p>"
    assert "From 13 Mar 2026 12:00 to 13 Mar 2026 14:00 UTC." in entries[0].findtext(
        f"{ATOM}summary"
    )
    ids = [entry.findtext(f"{ATOM}id") for entry in entries]
    assert len(set(ids)) == 4
    # Stable: a new post adds an entry and leaves the others' ids alone.
    post(open_, "Recovered.", at=T0 - timedelta(minutes=1), status=Status.MONITORING)
    again = ET.fromstring(get(client, FEED).content).findall(f"{ATOM}entry")
    again_ids = [entry.findtext(f"{ATOM}id") for entry in again]
    assert again_ids[0] == ids[0] and again_ids[2:] == ids[1:]
    assert again_ids[1] not in ids


def test_a_feed_entry_links_to_its_card_only_while_the_page_shows_it(client, scene):
    open_, fixed = scene
    old = public(declare("Old", code="P2", now=T0 - timedelta(days=30)), title="Old outage")
    post(old, "Fixed long ago.", at=T0 - timedelta(days=29))
    services.resolve_incident(old, by=UserFactory(), now=T0 - timedelta(days=29))
    maintenance("Last month", T0 - timedelta(days=20), 1)

    entries = ET.fromstring(get(client, FEED).content).findall(f"{ATOM}entry")
    links = {e.findtext(f"{ATOM}title"): e.find(f"{ATOM}link").get("href") for e in entries}
    page = get(client, PAGE).content.decode()

    assert links["Checkout was slow: Resolved"] == f"http://testserver/status/#incident-{fixed.pk}"
    assert f'id="incident-{fixed.pk}"' in page
    # Resolved a month ago and over last month: not on the page, so no anchor to miss.
    assert links["Old outage: Investigating"] == "http://testserver/status/"
    assert links["Scheduled maintenance: Last month"] == "http://testserver/status/"
    assert f'id="incident-{old.pk}"' not in page


def test_the_summary_is_json_for_other_tools(client, scene):
    open_, fixed = scene
    listed("Search", position=2)

    response = get(client, SUMMARY)

    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    data = json.loads(response.content)
    assert data == {
        "title": "Acme status",
        "url": "http://testserver/status/",
        "updated_at": "2026-03-11T11:00:00Z",
        "state": "partial_outage",
        "description": "Partial outage",
        "services": [
            {"name": "Checkout", "state": "partial_outage", "incident_days_90": 3},
            {"name": "Search", "state": "operational", "incident_days_90": 0},
        ],
        "incidents": [
            {
                "id": open_.pk,
                "title": "Some orders fail at checkout",
                "status": "investigating",
                "impact": "partial_outage",
                "services": ["Checkout"],
                "started_at": "2026-03-11T10:00:00Z",
                "resolved_at": None,
                "updates": [
                    {
                        "at": "2026-03-11T11:00:00Z",
                        "status": "fixing",
                        "text": "A fix is being rolled out.",
                    },
                    {
                        "at": "2026-03-11T10:00:00Z",
                        "status": "investigating",
                        "text": "We are looking into failed orders.",
                    },
                ],
            },
            {
                "id": fixed.pk,
                "title": "Checkout was slow",
                "status": "resolved",
                "impact": "degraded_performance",
                "services": ["Checkout"],
                "started_at": "2026-03-09T12:00:00Z",
                "resolved_at": "2026-03-10T12:00:00Z",
                "updates": [
                    {
                        "at": "2026-03-10T12:00:00Z",
                        "status": "resolved",
                        "text": "Checkout is fast again.",
                    }
                ],
            },
        ],
        "maintenance": [
            {
                "id": Maintenance.objects.get().pk,
                "title": "Database upgrade",
                "description": "",
                "phase": "upcoming",
                "starts_at": "2026-03-13T12:00:00Z",
                "ends_at": "2026-03-13T14:00:00Z",
                "services": ["Checkout"],
            }
        ],
    }


def test_typed_markup_is_shown_as_text(client, scene):
    open_, _ = scene
    post(open_, "<script>alert('x')</script> & <b>more</b>", at=T0 - timedelta(minutes=1))
    StatusPageService.objects.update(name="<i>Checkout</i>")

    html = get(client, PAGE).content.decode()
    feed = get(client, FEED).content

    assert "<script>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt;" in html
    entry = ET.fromstring(feed).findall(f"{ATOM}entry")[1]
    # Atom's summary is HTML: once parsed it is still escaped, so a reader shows the text.
    assert entry.findtext(f"{ATOM}summary").startswith("<p>&lt;script&gt;")


# --- Queries --------------------------------------------------------------------------------


def history(size: int) -> None:
    """``size`` public incidents over the 90 days, each on two services with three updates,
    half resolved; ``size`` maintenance windows; ``size // 2`` listed services."""
    by = UserFactory()
    inner = [Service.objects.create(name=f"inner-{size}-{n}") for n in range(size)]
    shown = [listed(f"Public {size}-{n}", *inner[n * 2 : n * 2 + 2]) for n in range(size // 2)]
    for n in range(size):
        start = T0 - timedelta(days=85 * n / size + 1)
        incident = public(
            declare(f"I{n}", code=f"P{n % 3}", affected_services=inner[n : n + 2], by=by, now=start)
        )
        for minutes in (1, 20, 40):
            post(incident, f"Update {minutes}", at=start + timedelta(minutes=minutes))
        if n % 2:
            services.resolve_incident(incident, by=by, now=start + timedelta(hours=1))
        maintenance(f"M{n}", start, 1, *shown[:2])


@pytest.mark.parametrize("url", [PAGE, FEED, SUMMARY])
def test_a_page_costs_the_same_queries_whatever_the_history(
    client, url, django_assert_max_num_queries
):
    CommsSettings.load()
    counts = []
    for size in (4, 40):
        history(size)
        with django_assert_max_num_queries(8) as queries:
            assert get(client, url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


# --- Nothing internal --------------------------------------------------------------------------

SECRET = "zq7x-internal"


def secret(field: str) -> str:
    return f"{SECRET}-{field}"


def test_nothing_internal_reaches_the_page_the_feed_or_the_summary(client):
    """Every internal field of every kind of incident holds the secret; the public face of the
    public ones does not. None of the three documents may contain it."""
    inner = Service.objects.create(name=secret("service-name"), description=secret("service-desc"))
    other = Service.objects.create(name=secret("service-2"), description=secret("service-2-desc"))
    listed("Checkout", inner, description="Ordering and paying.")
    listed("Sign-in", other)
    declarer = UserFactory(
        username=secret("declarer"), first_name=secret("declarer-first"), last_name=secret("dl")
    )
    responder = UserFactory(
        username=secret("responder"),
        first_name=secret("responder-first"),
        last_name=secret("responder-last"),
        email="responder@example.com",
    )

    def incident(kind: str, code: str = "P1", **kwargs):
        made = declare(
            secret(f"{kind}-title"),
            code=code,
            by=declarer,
            summary=secret(f"{kind}-summary"),
            impact_scope=secret(f"{kind}-impact-scope"),
            now=T0 - timedelta(hours=3),
            **kwargs,
        )
        services.add_note(made, secret(f"{kind}-note"), by=responder, now=T0 - timedelta(hours=2))
        services.assign_role(
            made, IncidentRole.Role.COMMANDER, responder, by=declarer, now=T0 - timedelta(hours=2)
        )
        Communication.objects.create(
            incident=made,
            at=T0 - timedelta(hours=2),
            author=responder,
            audience=Audience.INTERNAL,
            channel=Communication.Channel.EMAIL,
            recipients=[secret(f"{kind}-recipient")],
            subject=secret(f"{kind}-communication-subject"),
            body=secret(f"{kind}-communication-body"),
        )
        Notification.objects.create(
            reason=secret(f"{kind}-reason"),
            channel="email",
            recipient="responder@example.com",
            incident=made,
            subject=secret(f"{kind}-notification-subject"),
            body_text=secret(f"{kind}-notification-body"),
            message_id=secret(f"{kind}-message-id"),
            created_at=T0,
            next_attempt_at=T0,
        )
        return made

    def internal_update(made, public_text: str, kind: str, at: datetime):
        return post(
            made,
            public_text,
            at=at,
            author=responder,
            progress=secret(f"{kind}-progress"),
            next_steps=secret(f"{kind}-next-steps"),
            eta=secret(f"{kind}-eta"),
            impact=secret(f"{kind}-update-impact"),
        )

    shown = public(
        incident("public", affected_services=[inner]),
        title="Payments are failing for some customers",
        war_room_url=secret("war-room-url"),
        war_room_reason=secret("war-room-reason"),
    )
    internal_update(
        shown, "We are investigating failed payments.", "public", T0 - timedelta(hours=2)
    )
    internal_update(shown, "", "public-internal-only", T0 - timedelta(hours=1))

    resolved = public(incident("resolved", code="P0", affected_services=[other]))
    internal_update(resolved, "Sign-in works again.", "resolved", T0 - timedelta(hours=1))
    services.resolve_incident(
        resolved, by=responder, note=secret("resolve-note"), now=T0 - timedelta(minutes=30)
    )
    Review.objects.filter(incident=resolved).update(
        summary=secret("review-summary"), primary_cause=secret("review-cause")
    )

    hidden = public(
        incident("private", affected_services=[inner]),
        is_public=False,
        title=secret("private-public-title"),
    )
    internal_update(hidden, secret("private-public-text"), "private", T0 - timedelta(hours=1))

    breach = incident("security", code="P0", is_security=True, affected_services=[inner])
    public(breach, title=secret("security-public-title"), impact=ServiceState.MAJOR)
    IncidentComms.objects.filter(incident=breach).update(is_public=True)
    internal_update(breach, secret("security-public-text"), "security", T0 - timedelta(hours=1))

    bare = incident("no-comms", affected_services=[inner])
    IncidentComms.objects.filter(incident=bare).delete()
    internal_update(bare, secret("no-comms-public-text"), "no-comms", T0 - timedelta(hours=1))

    documents = {url: get(client, url).content.decode() for url in (PAGE, FEED, SUMMARY)}

    for url, body in documents.items():
        leaked = sorted(set(re.findall(rf"{SECRET}-[\w-]+", body)))
        assert leaked == [], f"{url} shows internal text: {leaked}"
        for made in (shown, resolved, hidden, breach, bare):
            assert made.public_id not in body, url
        # The public face is there, so the test would see a leak if there were one.
        assert "Payments are failing for some customers" in body, url
        assert "We are investigating failed payments." in body, url
        assert "Sign-in works again." in body, url
        assert "Service disruption: Sign-in" in body, url
    page = build(T0)
    assert [i.title for i in page.active] == ["Payments are failing for some customers"]
    assert page.state == ServiceState.PARTIAL  # the security P0 marked major does not count


# --- Admin --------------------------------------------------------------------------------------


def test_maintenance_added_in_the_admin_records_its_author_and_filters_by_when(client, checkout):
    author = UserFactory(username="ada", is_superuser=True)
    client.force_login(author)
    maintenance("Last week", T0 - timedelta(days=7), 1, checkout)
    form = {
        "title": "Database upgrade",
        "description": "Checkout may pause.",
        "services": [checkout.pk],
        "starts_at_0": "2026-03-12",
        "starts_at_1": "02:00:00",
        "ends_at_0": "2026-03-12",
        "ends_at_1": "01:00:00",
    }

    refused = client.post("/admin/comms/maintenance/add/", form)
    added = client.post("/admin/comms/maintenance/add/", {**form, "ends_at_1": "04:00:00"})

    assert "Maintenance must end after it starts." in refused.content.decode()
    assert added.status_code == 302
    window = Maintenance.objects.get(title="Database upgrade")
    assert (window.created_by, list(window.services.all())) == (author, [checkout])
    with time_machine.travel(T0, tick=False):
        upcoming = client.get("/admin/comms/maintenance/?when=upcoming").content.decode()
        past = client.get("/admin/comms/maintenance/?when=past").content.decode()
    assert "Database upgrade" in upcoming and "Last week" not in upcoming
    assert "Last week" in past and "Database upgrade" not in past


def test_public_services_are_ordered_and_set_by_hand_from_their_list(client, checkout):
    search = listed("Search", position=2)
    client.force_login(UserFactory(username="ada", is_superuser=True))
    changelist = "/admin/comms/statuspageservice/"

    page = client.get(changelist).content.decode()
    response = client.post(
        changelist,
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-0-id": checkout.pk,
            "form-0-position": "3",
            "form-0-state_override": "",
            "form-1-id": search.pk,
            "form-1-position": "1",
            "form-1-state_override": "major_outage",
            "_save": "Save",
        },
    )

    assert "orders-api" in page  # the internal services behind it, for the operator
    assert response.status_code == 302
    assert [(s.name, s.state_override) for s in StatusPageService.objects.all()] == [
        ("Search", "major_outage"),
        ("Checkout", ""),
    ]
    assert state_of(build(), "Search") == ServiceState.MAJOR


# --- Demo ---------------------------------------------------------------------------------------


def test_the_demo_seed_maps_public_services_and_plans_maintenance_once():
    for name in ("Web app", "Checkout API", "Payments gateway", "Identity", "Search"):
        Service.objects.create(name=name)

    assert seed_status_page(T0) == [
        "Website",
        "Checkout and payments",
        "Sign-in",
        "Search",
        "Database upgrade",
    ]
    assert seed_status_page(T0 + timedelta(hours=1)) == []

    mapped = {
        service.name: sorted(inner.name for inner in service.services.all())
        for service in StatusPageService.objects.all()
    }
    assert mapped == {
        "Website": ["Web app"],
        "Checkout and payments": ["Checkout API", "Payments gateway"],
        "Sign-in": ["Identity"],
        "Search": ["Search"],
    }
    window = Maintenance.objects.get()
    assert (window.starts_at, window.ends_at) == (
        datetime(2026, 3, 13, 2, tzinfo=UTC),
        datetime(2026, 3, 13, 4, tzinfo=UTC),
    )
    assert build(T0).upcoming_maintenance[0].service_names == ["Website", "Checkout and payments"]
