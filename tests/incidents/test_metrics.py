"""The metrics dashboard: figures computed by the database, its filters, charts, CSV and access."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents import metrics, reviews, services
from incidents.metrics import Period
from incidents.models import ActionItem, Incident, Review, Service
from ops.groups import VIEWER

from .factories import UserFactory, declare, incident_type, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def incident_at(declared_at, code, *, ack_after=None, resolve_after=None, **kwargs):
    """Declare at ``declared_at`` and acknowledge / resolve that long after, as people would."""
    responder = UserFactory()
    with time_machine.travel(declared_at, tick=False):
        incident = declare(kwargs.pop("title", f"{code} incident"), code=code, **kwargs)
    if ack_after is not None:
        with time_machine.travel(declared_at + ack_after, tick=False):
            incident = services.acknowledge_incident(incident, by=responder)
    if resolve_after is not None:
        with time_machine.travel(declared_at + resolve_after, tick=False):
            incident = services.resolve_incident(incident, by=responder)
    return incident


def complete(review: Review, at: datetime) -> None:
    for name in reviews.REQUIRED_SECTIONS:
        setattr(review, name, "Written.")
    review.save()
    with time_machine.travel(at, tick=False):
        reviews.complete_review(review, by=UserFactory())


def action(review: Review, due: date, status=ActionItem.State.OPEN) -> ActionItem:
    item = reviews.add_action_item(review, action="Fix it", owner=UserFactory(), due_date=due)
    return reviews.set_action_status(item, status) if status != ActionItem.State.OPEN else item


@pytest.fixture
def world():
    """Five incidents in March 2026, worked out by hand (minutes from declaration):

    ====  ====  ========  ====  =======  ===========  ====================  ========
    name  sev   ack       ok?   resolve  ok?          type / services        review
    ====  ====  ========  ====  =======  ===========  ====================  ========
    A     P1    10        yes   120      yes (480)    outage / API          none
    B     P1    90        no    600      no (480)     errors / API, Web     overdue
    C     P0    5         yes   60       yes (120)    outage / Web          on time
    D     P2    never     no    never    no (2,880)   - / -                 none
    E     P1    20 (sec)  yes   30       yes          outage / API          late
    ====  ====  ========  ====  =======  ===========  ====================  ========
    """
    api, web = Service.objects.create(name="API"), Service.objects.create(name="Web")
    outage, errors = incident_type("complete-outage"), incident_type("high-error-rate")
    found = {
        "A": incident_at(
            T0, "P1", ack_after=minutes(10), resolve_after=minutes(120), title="Alpha",
            incident_type=outage, affected_services=[api],
        ),
        "B": incident_at(
            T0 + timedelta(days=1), "P1", ack_after=minutes(90), resolve_after=minutes(600),
            title="Bravo", incident_type=errors, affected_services=[api, web],
        ),
        "C": incident_at(
            T0 + timedelta(days=2), "P0", ack_after=minutes(5), resolve_after=minutes(60),
            title="Charlie", incident_type=outage, affected_services=[web],
        ),
        "D": incident_at(T0 + timedelta(days=3), "P2", title="Delta"),
        "E": incident_at(
            T0 + timedelta(days=4), "P1", ack_after=minutes(20), resolve_after=minutes(30),
            title="Echo", incident_type=outage, affected_services=[api], is_security=True,
        ),
    }  # fmt: skip
    b, c, e = (Review.objects.get(incident=found[name]) for name in "BCE")
    action(b, date(2026, 3, 20))  # open, overdue on April 1st
    action(b, date(2026, 4, 10), ActionItem.State.IN_PROGRESS)  # open, not yet due
    action(c, date(2026, 3, 20), ActionItem.State.DONE)
    action(c, date(2026, 3, 20), ActionItem.State.WONT_DO)
    action(e, date(2026, 3, 25))  # open, overdue: only the Security Team may count it
    complete(c, c.due_at - timedelta(hours=1))
    complete(e, e.due_at + timedelta(hours=6))
    return found


def viewer():
    return UserFactory(username="vera", groups=[VIEWER])


def superuser():
    return UserFactory(username="root", is_superuser=True)


def test_the_figures_of_a_hand_computed_month(world):
    figures = metrics.dashboard(Incident.objects.all(), MARCH, now=NOW)

    assert (figures.count, figures.open, figures.breached) == (5, 1, 2)
    # Acknowledged: 10, 90, 5, 20 minutes; resolved (from detection = declaration): 120, 600,
    # 60, 30 minutes. Medians of an even count are the mean of the middle two.
    assert figures.to_acknowledge == metrics.Timing(4, minutes(31.25), minutes(15))
    assert figures.to_resolve == metrics.Timing(4, minutes(202.5), minutes(90))
    assert figures.acknowledge == metrics.Compliance(met=3, missed=2, pending=0)
    assert figures.resolution == metrics.Compliance(met=3, missed=2, pending=0)
    assert figures.acknowledge.share == 0.6 and figures.acknowledge.percent == "60.0 %"

    assert [(b.public_id, b.ack_late, b.resolution_late) for b in figures.breaches] == [
        (world["D"].public_id, NOW - world["D"].ack_due_at, NOW - world["D"].resolution_due_at),
        (world["B"].public_id, minutes(30), minutes(120)),
    ]
    assert figures.by_type == [
        metrics.Group("Complete Application Outage", 3, 0),
        metrics.Group("High Error Rate", 1, 1),
        metrics.Group("No type", 1, 1),
    ]
    assert figures.by_service == [
        metrics.Group("API", 3, 1),
        metrics.Group("Web", 2, 1),
        metrics.Group("No service", 1, 1),
    ]
    assert [(m.key, m.count, m.breached) for m in figures.months] == [(date(2026, 3, 1), 5, 2)]
    p0, p1, p2 = figures.severities
    assert (p0.code, p0.count, p0.breached, p0.acknowledge.percent) == ("P0", 1, 0, "100.0 %")
    assert (p1.code, p1.count, p1.breached) == ("P1", 3, 1)
    assert (p1.acknowledge.met, p1.acknowledge.missed, p1.acknowledge.percent) == (2, 1, "66.7 %")
    assert (p1.mean_to_acknowledge, p1.mean_to_resolve) == (minutes(40), minutes(250))
    assert (p2.code, p2.resolution.share, p2.mean_to_acknowledge) == ("P2", 0.0, None)

    assert figures.reviews == metrics.ReviewFigures(
        count=3, completed=2, on_time=1, overdue=1, pending=0
    )
    assert (figures.reviews.late, figures.reviews.percent_on_time) == (1, "33.3 %")
    assert figures.action_items == metrics.ActionItemFigures(
        count=5, open=3, overdue=2, done=1, wont_do=1
    )


def test_an_incident_still_inside_its_window_is_neither_met_nor_missed():
    incident = incident_at(T0, "P1", title="Fresh")
    just_after = T0 + minutes(30)

    figures = metrics.dashboard(Incident.objects.all(), MARCH, now=just_after)

    assert figures.acknowledge == metrics.Compliance(met=0, missed=0, pending=1)
    assert figures.acknowledge.percent == "-" and figures.breached == 0
    later = metrics.dashboard(Incident.objects.all(), MARCH, now=incident.ack_due_at + minutes(1))
    assert later.acknowledge == metrics.Compliance(met=0, missed=1, pending=0)


def test_security_incidents_are_left_out_for_someone_outside_the_security_team(world):
    figures = metrics.dashboard(Incident.objects.visible_to(viewer()), MARCH, now=NOW)

    assert (figures.count, figures.breached) == (4, 2)
    assert figures.to_acknowledge == metrics.Timing(3, minutes(35), minutes(10))
    assert figures.by_service[0] == metrics.Group("API", 2, 1)
    assert figures.reviews == metrics.ReviewFigures(
        count=2, completed=1, on_time=1, overdue=1, pending=0
    )
    assert figures.action_items == metrics.ActionItemFigures(
        count=4, open=2, overdue=1, done=1, wont_do=1
    )


def test_severity_and_period_filters(world):
    everything = Incident.objects.all()
    p1 = metrics.dashboard(everything, MARCH, severity("P1"), now=NOW)
    assert (p1.count, [level.code for level in p1.severities]) == (3, ["P1"])
    assert p1.to_resolve == metrics.Timing(3, minutes(250), minutes(120))

    # Whole UTC days, both ends included: B was declared on the 11th at 14:00.
    only_11th = metrics.dashboard(everything, Period(date(2026, 3, 11), date(2026, 3, 11)), now=NOW)
    assert [b.public_id for b in only_11th.breaches] == [world["B"].public_id]
    assert only_11th.count == 1
    from_12th = metrics.dashboard(everything, Period(date(2026, 3, 12), date(2026, 4, 30)), now=NOW)
    assert from_12th.count == 3
    assert [(m.key, m.count) for m in from_12th.months] == [
        (date(2026, 3, 1), 3),
        (date(2026, 4, 1), 0),
    ]

    empty = metrics.dashboard(everything, Period(date(2025, 1, 1), date(2025, 2, 28)), now=NOW)
    assert (empty.count, empty.to_acknowledge, empty.acknowledge.share) == (
        0,
        metrics.Timing(0, None, None),
        None,
    )
    assert (empty.by_type, empty.severities, len(empty.months)) == ([], [], 2)


@pytest.mark.parametrize("values", [[7], [7, 3], [9, 1, 4], [5, 2, 8, 1]])
def test_the_offset_median_sqlite_uses_agrees_with_postgresql(values):
    for index, value in enumerate(values):
        incident_at(T0 + timedelta(hours=index), "P2", ack_after=minutes(value))
    chosen = Incident.objects.all()
    database = chosen.aggregate(median=metrics.Median("time_to_acknowledge"))["median"]

    assert metrics.median_by_offset(chosen, "time_to_acknowledge", len(values)) == database
    assert metrics.median_by_offset(chosen.none(), "time_to_acknowledge", 0) is None


def test_the_dashboard_page_shows_figures_charts_and_links(client, world):
    client.force_login(superuser())
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("metrics"), {"start": "2026-02-01", "end": "2026-03-31"})
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["dashboard"].count == 5
    assert '<svg class="chart"' in page
    # One bar per month (February, March) and per severity (P0, P1, P2).
    assert len(response.context["month_chart"].bars) == 2
    assert [bar.label for bar in response.context["severity_chart"].bars] == ["P0", "P1", "P2"]
    assert page.count('<rect class="bar"') == 5
    assert "<script" not in page.split('id="content-main"')[1]
    change = reverse("admin:incidents_incident_change", args=[world["B"].pk])
    assert f'href="{change}"' in page
    assert "/admin/metrics/export.csv?start=2026-02-01&amp;end=2026-03-31" in page
    assert "60.0 %" in page and "31m" in page


def test_the_page_defaults_to_the_last_90_days_and_shows_form_errors(client, world):
    client.force_login(superuser())
    with time_machine.travel(NOW, tick=False):
        default = client.get(reverse("metrics"))
        backwards = client.get(reverse("metrics"), {"start": "2026-03-31", "end": "2026-03-01"})
    assert default.context["dashboard"].period == Period(date(2026, 1, 2), date(2026, 4, 1))
    assert default.context["dashboard"].count == 5
    assert backwards.status_code == 200
    assert "The period must end on or after its start." in backwards.content.decode()
    assert backwards.context["dashboard"].period == Period(date(2026, 1, 2), date(2026, 4, 1))


def test_the_page_filters_by_severity_and_hides_security_incidents(client, world):
    client.force_login(viewer())
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("metrics"), {"severity": "P1"})
    figures = response.context["dashboard"]
    assert (figures.severity.code, figures.count) == ("P1", 2)
    assert "Echo" not in response.content.decode()


def test_csv_export_has_one_line_per_incident_with_the_filters_applied(client, world):
    world["A"].title = "=HYPERLINK(evil)"
    world["A"].save(update_fields=["title"])
    client.force_login(superuser())
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse("metrics-export"), {"start": "2026-03-01"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == (
        'attachment; filename="incidents-2026-03-01-to-2026-04-01.csv"'
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == metrics.CSV_HEADER
    assert [row[0] for row in rows[1:]] == [world[name].public_id for name in "ABCDE"]
    assert rows[1][1] == "'=HYPERLINK(evil)"
    assert rows[2] == [
        world["B"].public_id,
        "Bravo",
        "P1",
        "High Error Rate",
        "API, Web",
        "2026-03-11 14:00:00",
        "2026-03-11 15:30:00",
        "2026-03-12 00:00:00",
        "90.0",
        "600.0",
        "yes",
        "yes",
        "draft",
    ]
    assert rows[4][4:] == ["", "2026-03-13 14:00:00", "", "", "", "", "yes", "yes", ""]
    assert rows[5][-3:] == ["no", "no", "complete"]

    client.force_login(viewer())
    with time_machine.travel(NOW, tick=False):
        p1 = client.get(reverse("metrics-export"), {"start": "2026-03-01", "severity": "P1"})
        bad = client.get(reverse("metrics-export"), {"severity": "P9"})
    assert p1["Content-Disposition"].endswith('-to-2026-04-01-p1.csv"')
    lines = list(csv.reader(io.StringIO(b"".join(p1.streaming_content).decode())))
    assert [row[0] for row in lines[1:]] == [world["A"].public_id, world["B"].public_id]
    assert bad.status_code == 400


def test_a_user_without_view_permission_gets_403_and_no_link(client):
    client.force_login(UserFactory(username="nobody"))
    assert client.get(reverse("metrics")).status_code == 403
    assert client.get(reverse("metrics-export")).status_code == 403
    client.logout()
    anonymous = client.get(reverse("metrics"))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]

    client.force_login(viewer())
    assert f'href="{reverse("metrics")}"' in client.get(reverse("admin:index")).content.decode()


def clone(template: Incident, count: int, start: int) -> None:
    """Bulk copies of a worked incident, each an hour apart, about a third of them breached."""
    fields = [
        f.attname
        for f in Incident._meta.concrete_fields
        if f.attname not in ("id", "public_id", "day", "sequence")
    ]
    copies = []
    for n in range(start, start + count):
        values = {name: getattr(template, name) for name in fields}
        shift = timedelta(hours=n)
        for name in ("declared_at", "detected_at", "ack_due_at", "resolution_due_at"):
            values[name] -= shift
        late = timedelta(hours=3) if n % 3 == 0 else timedelta(0)
        for name in ("acknowledged_at", "resolved_at"):
            values[name] = values[name] - shift + late
        values["time_to_acknowledge"] += late
        values["time_to_resolve"] += late
        copies.append(
            Incident(public_id=f"INC-BULK-{n:05d}", day=template.day, sequence=1000 + n, **values)
        )
    Incident.objects.bulk_create(copies)
    links = Incident.affected_services.through
    service_ids = list(template.affected_services.values_list("pk", flat=True))
    links.objects.bulk_create(
        links(incident_id=copy.pk, service_id=service_id)
        for copy in copies
        for service_id in service_ids
    )


@pytest.mark.parametrize("who", ["superuser", "viewer"])
def test_the_query_count_is_the_same_for_20_and_2000_incidents(
    client, django_assert_num_queries, who
):
    api = Service.objects.create(name="API")
    template = incident_at(
        NOW - timedelta(days=2), "P1", ack_after=minutes(10), resolve_after=minutes(100),
        incident_type=incident_type("complete-outage"), affected_services=[api],
    )  # fmt: skip
    user = superuser() if who == "superuser" else viewer()
    client.force_login(user)
    period = {"start": "2026-01-01", "end": "2026-04-01"}
    clone(template, 19, 1)

    def measure():
        with CaptureQueriesContext(connection) as page:
            assert client.get(reverse("metrics"), period).status_code == 200
        with CaptureQueriesContext(connection) as function:
            figures = metrics.dashboard(
                Incident.objects.visible_to(user), Period(date(2026, 1, 1), NOW.date()), now=NOW
            )
        return len(page), len(function), figures

    with time_machine.travel(NOW, tick=False):
        page_20, function_20, figures = measure()
        assert figures.count == 20 and figures.breached > 0
        clone(template, 1980, 20)
        with django_assert_num_queries(page_20):
            client.get(reverse("metrics"), period)
        page_2000, function_2000, figures = measure()
    assert figures.count == 2000 and len(figures.breaches) == metrics.BREACHES_SHOWN
    assert (page_2000, function_2000) == (page_20, function_20)
    assert function_20 == (8 if who == "superuser" else 9)
