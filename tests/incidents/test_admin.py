"""The incident admin as responders use it: declare, list, work an incident, and who sees what.

Every request goes through the real admin with users in the groups migration 0002 creates:
Viewer, Responder, Incident Commander, Admin and Security Team, plus an outsider (staff, no
group) and a superuser, so every permission test has someone to refuse.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from incidents import services
from incidents.models import (
    ChecklistItem,
    ChecklistPhase,
    DailySequence,
    Incident,
    IncidentRole,
    SeverityLevel,
    Status,
    TimelineEntry,
)

from .factories import UserFactory, declare, incident_type, severity

pytestmark = pytest.mark.django_db

# A Tuesday afternoon, inside the default calendar's working hours.
T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)

Kind = TimelineEntry.Kind
Role = IncidentRole.Role

CHANGELIST = "admin:incidents_incident_changelist"
DECLARE = "admin:incidents_incident_declare"
ACT_NAMES = (
    "acknowledge",
    "status",
    "severity",
    "take-command",
    "role",
    "unassign",
    "checklist",
    "note",
    "milestone",
)


@pytest.fixture(autouse=True)
def clock():
    # Every request runs at T0 or a shift of it: sessions expire relative to it, clocks read exact.
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def viewer():
    return UserFactory(username="vera", first_name="Vera", last_name="Viewer", groups=["Viewer"])


@pytest.fixture
def responder():
    return UserFactory(
        username="rita", first_name="Rita", last_name="Responder", groups=["Responder"]
    )


@pytest.fixture
def commander():
    return UserFactory(
        username="cora", first_name="Cora", last_name="Commander", groups=["Incident Commander"]
    )


@pytest.fixture
def admin_member():
    return UserFactory(username="adam", first_name="Adam", last_name="Admin", groups=["Admin"])


@pytest.fixture
def security_member():
    # Viewer for the permission to read, Security Team for the right to see security incidents.
    return UserFactory(
        username="sami",
        first_name="Sami",
        last_name="Security",
        groups=["Viewer", "Security Team"],
    )


@pytest.fixture
def outsider():
    return UserFactory(username="otto", first_name="Otto", last_name="Outsider")


@pytest.fixture
def superuser():
    return UserFactory(username="sue", first_name="Sue", last_name="Super", is_superuser=True)


# --- helpers -----------------------------------------------------------------------------------


def change_url(incident: Incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def act_url(incident: Incident, name: str) -> str:
    return reverse("admin:incidents_incident_act", args=[incident.pk, name])


def history_url(incident: Incident) -> str:
    return reverse("admin:incidents_incident_history", args=[incident.pk])


def delete_url(incident: Incident) -> str:
    return reverse("admin:incidents_incident_delete", args=[incident.pk])


def logged_in(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def listed(response) -> set[str]:
    """Public ids on the changelist page that was rendered."""
    return {incident.public_id for incident in response.context["cl"].result_list}


def home_panel(response) -> str:
    """The active-incidents panel of the admin home page."""
    page = text(response)
    start = page.index('id="active-incidents"')
    return page[start : page.index("</div>", start)]


def kinds(incident: Incident) -> list[str]:
    """The incident's timeline kinds, oldest first."""
    return list(incident.timeline.order_by("at", "pk").values_list("kind", flat=True))


def action_names(response) -> list[str]:
    form = response.context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


def bulk_incidents(
    count: int,
    *,
    day: date = date(2026, 3, 9),
    commanders=(),
    open_only: bool = False,
    every_nth_security: int = 7,
) -> list[Incident]:
    """``count`` valid incidents of one earlier UTC day in a few queries, for list sizes.

    The rows are what declare_incident would write (numbered, SLA clocks from the severity);
    every third gets a commander so the commander column has something to show.
    """
    severity()  # the shipped scale, loaded once
    levels = list(SeverityLevel.objects.filter(is_active=True).order_by("rank"))
    statuses = [Status.INVESTIGATING, Status.IDENTIFIED, Status.FIXING, Status.MONITORING]
    if not open_only:
        statuses.append(Status.RESOLVED)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = []
    for n in range(count):
        level = levels[n % len(levels)]
        status = statuses[n % len(statuses)]
        declared_at = start + timedelta(minutes=2 * n)
        resolved_at = declared_at + timedelta(hours=1) if status == Status.RESOLVED else None
        rows.append(
            Incident(
                public_id=f"INC-{day:%Y%m%d}-{n + 1:03d}",
                day=day,
                sequence=n + 1,
                title=f"Bulk incident {n + 1}",
                severity=level,
                status=status,
                is_security=n % every_nth_security == every_nth_security - 1,
                declared_at=declared_at,
                detected_at=declared_at,
                investigation_started_at=declared_at,
                acknowledged_at=declared_at + timedelta(minutes=5) if n % 2 else None,
                resolved_at=resolved_at,
                service_restored_at=resolved_at,
                ack_due_at=declared_at + level.response_time,
                resolution_due_at=declared_at + level.resolution_target,
            )
        )
    incidents = Incident.objects.bulk_create(rows)
    DailySequence.objects.update_or_create(day=day, defaults={"last": count})
    if commanders:
        IncidentRole.objects.bulk_create(
            IncidentRole(
                incident=incident,
                role=Role.COMMANDER,
                user=commanders[n % len(commanders)],
                assigned_at=incident.declared_at,
            )
            for n, incident in enumerate(incidents)
            if n % 3 == 0
        )
    return incidents


def grow(incident: Incident, *, items: int, entries: int, people) -> None:
    """Give the incident ``items`` checklist items, half ticked, and ``entries`` timeline rows."""
    ChecklistItem.objects.bulk_create(
        ChecklistItem(
            incident=incident,
            position=n,
            phase=ChecklistPhase.DIAGNOSIS if n % 2 else ChecklistPhase.REMEDIATION,
            text=f"Step {n}: run `check {n}`",
        )
        for n in range(items)
    )
    for n, item in enumerate(incident.checklist.all()[: items // 2]):
        services.set_checklist_item(item, done=True, by=people[n % len(people)])
    missing = entries - incident.timeline.count()
    for n in range(missing):
        services.add_note(incident, f"Update {n}", by=people[n % len(people)])
    assert incident.timeline.count() == entries


# --- declare -----------------------------------------------------------------------------------


def test_the_declare_page_asks_only_what_is_needed_at_3am(client, responder):
    severity("P1")

    response = logged_in(client, responder).get(reverse(DECLARE))

    assert response.status_code == 200
    assert list(response.context["form"].fields) == [
        "title",
        "severity",
        "incident_type",
        "summary",
        "is_security",
        "is_data_loss",
    ]
    page = text(response)
    for name in ("title", "severity", "incident_type", "summary", "is_security", "is_data_loss"):
        assert f'name="{name}"' in page
    for name in ("status", "detection_source", "users_affected", "impact_scope"):
        assert f'name="{name}"' not in page


def test_declaring_opens_the_incident_through_the_service(client, responder):
    outage = incident_type("complete-outage")

    response = logged_in(client, responder).post(
        reverse(DECLARE),
        {
            "title": "Checkout returns 500 errors",
            "severity": severity("P1").pk,
            "incident_type": outage.pk,
            "summary": "Since the 13:55 deploy",
        },
    )

    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response.url == change_url(incident)
    assert (incident.public_id, incident.title, incident.severity.code) == (
        "INC-20260310-001",
        "Checkout returns 500 errors",
        "P1",
    )
    assert (incident.status, incident.declared_by, incident.declared_at) == (
        Status.INVESTIGATING,
        responder,
        T0,
    )
    assert incident.ack_due_at == T0 + timedelta(hours=1)
    assert list(incident.timeline.values_list("kind", "author")) == [(Kind.DECLARED, responder.pk)]
    assert list(incident.checklist.values_list("phase", "text")) == list(
        outage.checklist.values_list("phase", "text")
    )
    assert incident.checklist.count() == 14


def test_an_invalid_declaration_shows_field_errors_and_creates_nothing(client, responder):
    severity("P1")

    response = logged_in(client, responder).post(
        reverse(DECLARE), {"title": "", "severity": "", "summary": "Something is off"}
    )

    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"title", "severity"}
    assert 'class="form-row errors field-title"' in text(response)
    assert 'class="form-row errors field-severity"' in text(response)
    assert not Incident.objects.exists()
    assert not TimelineEntry.objects.exists()


def test_a_viewer_may_not_declare(client, viewer):
    logged_in(client, viewer)

    assert client.get(reverse(DECLARE)).status_code == 403
    response = client.post(reverse(DECLARE), {"title": "Nope", "severity": severity("P1").pk})

    assert response.status_code == 403
    assert not Incident.objects.exists()


def test_the_admin_add_page_leads_to_the_declare_page(client, responder):
    response = logged_in(client, responder).get(reverse("admin:incidents_incident_add"))

    assert response.status_code == 302
    assert response.url == reverse(DECLARE)


# --- changelist --------------------------------------------------------------------------------


def test_the_list_shows_what_an_operator_scans(client, clock, responder, commander):
    incident = declare("Checkout is down", "P1", by=responder)
    services.assign_role(incident, Role.COMMANDER, commander, by=commander)
    clock.shift(timedelta(minutes=10))

    response = logged_in(client, responder).get(reverse(CHANGELIST))

    assert response.status_code == 200
    page = text(response)
    row = page[page.index(f'href="{change_url(incident)}"') :]
    row = row[: row.index("</tr>")]
    assert "INC-20260310-001" in row
    assert "Checkout is down" in row
    assert '<span class="sev-badge sev-rank-1" title="High">P1</span>' in row
    assert "Investigating" in row
    assert '<td class="field-commander">cora</td>' in row
    assert '<td class="field-age">10m</td>' in row
    assert "Ack due in 50m" in row
    assert 'class="sla-clock sla-ok"' in row


def test_the_list_clock_turns_overdue_once_the_deadline_passes(client, clock, responder):
    declare("Checkout is down", "P1", by=responder)
    clock.shift(timedelta(hours=1, minutes=5))

    page = text(logged_in(client, responder).get(reverse(CHANGELIST)))

    assert "Ack overdue 5m" in page
    assert 'class="sla-clock sla-overdue"' in page
    assert "Ack due in" not in page


@pytest.fixture
def board(clock, responder, commander):
    """Four incidents declared at T0, seen 30 minutes later.

    outage   P0 complete-outage, unacknowledged: its 15-minute ack SLA is breached
    slow_db  P2 database-degradation, acknowledged, identified
    login    P1 declared by the responder, resolved within its SLA
    leak     P1 security, the responder holds a role on it
    """
    outage = declare("Checkout is down", "P0", by=commander, incident_type=incident_type())
    slow_db = declare(
        "Search is slow",
        "P2",
        by=commander,
        incident_type=incident_type("database-degradation"),
    )
    services.acknowledge_incident(slow_db, by=commander)
    services.change_status(slow_db, Status.IDENTIFIED, by=commander)
    login = declare("Login fails", "P1", by=responder)
    services.change_status(login, Status.RESOLVED, by=responder)
    leak = declare("Leaked API keys", "P1", by=commander, is_security=True)
    services.assign_role(leak, Role.RESPONDER, responder, by=commander)
    clock.shift(timedelta(minutes=30))
    return {"outage": outage, "slow_db": slow_db, "login": login, "leak": leak}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (lambda b: {}, {"outage", "slow_db", "login", "leak"}),
        (lambda b: {"severity__id__exact": b["outage"].severity_id}, {"outage"}),
        (lambda b: {"status__exact": "identified"}, {"slow_db"}),
        (lambda b: {"incident_type__id__exact": b["slow_db"].incident_type_id}, {"slow_db"}),
        (lambda b: {"is_security__exact": "1"}, {"leak"}),
        (lambda b: {"sla": "breached"}, {"outage"}),
        (lambda b: {"sla": "within"}, {"slow_db", "login", "leak"}),
        (lambda b: {"mine": "yes"}, {"login", "leak"}),
        (lambda b: {"state": "open"}, {"outage", "slow_db", "leak"}),
        (lambda b: {"state": "done"}, {"login"}),
        (lambda b: {"q": b["slow_db"].public_id}, {"slow_db"}),
        (lambda b: {"q": "login"}, {"login"}),
    ],
    ids=[
        "all",
        "severity",
        "status",
        "type",
        "security",
        "breached",
        "within-sla",
        "mine",
        "open",
        "done",
        "search-id",
        "search-title",
    ],
)
def test_the_list_filters_and_searches(client, board, responder, query, expected):
    response = logged_in(client, responder).get(reverse(CHANGELIST), query(board))

    assert response.status_code == 200
    assert listed(response) == {board[name].public_id for name in expected}


def post_action(client, action: str, incidents, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [i.pk for i in incidents], **extra},
    )


def test_the_acknowledge_action_acknowledges_each_selected_incident(client, clock, responder):
    first, second = declare(by=responder), declare("Search is slow", by=responder)
    clock.shift(timedelta(minutes=7))

    response = post_action(logged_in(client, responder), "acknowledge_selected", [first, second])

    assert response.status_code == 302
    for incident in (first, second):
        incident.refresh_from_db()
        assert (incident.acknowledged_at, incident.acknowledged_by) == (
            T0 + timedelta(minutes=7),
            responder,
        )
        assert incident.time_to_acknowledge == timedelta(minutes=7)
        assert kinds(incident) == [Kind.DECLARED, Kind.ACKNOWLEDGED]


def test_the_assign_me_action_makes_the_user_commander(client, responder, commander):
    incident = declare(by=commander)
    services.assign_role(incident, Role.COMMANDER, commander, by=commander)

    post_action(logged_in(client, responder), "assign_me_commander", [incident])

    active = incident.roles.filter(role=Role.COMMANDER, unassigned_at__isnull=True)
    assert [assignment.user for assignment in active] == [responder]
    last = incident.timeline.order_by("-pk").first()
    assert (last.kind, last.author, last.data["previous"]) == (
        Kind.ROLE_ASSIGNED,
        responder,
        "cora",
    )


def test_the_change_status_action_moves_each_selected_incident(client, responder):
    first, second = declare(by=responder), declare("Search is slow", by=responder)

    post_action(
        logged_in(client, responder), "change_status_selected", [first, second], status="fixing"
    )

    for incident in (first, second):
        incident.refresh_from_db()
        assert incident.status == Status.FIXING
        last = incident.timeline.order_by("-pk").first()
        assert (last.kind, last.data["from"], last.data["to"]) == (
            Kind.STATUS_CHANGED,
            "investigating",
            "fixing",
        )


def test_the_change_status_action_cannot_close(client, responder):
    # Closing needs close_incident; the action's status choices stop at Resolved.
    incident = declare(by=responder)
    services.change_status(incident, Status.RESOLVED, by=responder)

    post_action(logged_in(client, responder), "change_status_selected", [incident], status="closed")

    incident.refresh_from_db()
    assert (incident.status, incident.closed_at) == (Status.RESOLVED, None)
    assert kinds(incident) == [Kind.DECLARED, Kind.STATUS_CHANGED]


def test_a_viewer_sees_no_actions_and_cannot_post_them(client, viewer, responder):
    incident = declare(by=responder)
    logged_in(client, viewer)

    response = client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert action_names(response) == []
    assert 'name="action"' not in text(response)
    for action in ("acknowledge_selected", "assign_me_commander", "change_status_selected"):
        # Without actions the POST is only a list request.
        assert post_action(client, action, [incident], status="fixing").status_code == 200
    incident.refresh_from_db()
    assert (incident.acknowledged_at, incident.status) == (None, Status.INVESTIGATING)
    assert not incident.roles.exists()
    assert kinds(incident) == [Kind.DECLARED]


def test_a_responder_is_offered_the_three_work_actions(client, responder):
    declare(by=responder)

    response = logged_in(client, responder).get(reverse(CHANGELIST))

    assert action_names(response) == [
        "acknowledge_selected",
        "assign_me_commander",
        "change_status_selected",
    ]


# --- query counts ------------------------------------------------------------------------------


# Measured on the admin as it is; a change here is a change in how the page reads the database.
# Each page starts with the session, the user, their user and group permissions and the
# Security Team check of visible_to. The changelist adds the severity and type filter choices,
# the count and the page of rows; the home page the open incidents, the rotations of the
# on-call panel (escalation's oncall_tags) and the recent actions.
CHANGELIST_QUERIES = 9
CHANGE_PAGE_QUERIES = 24  # + escalation panel (snapshot, fired steps, notifications), review,
# communications panel (its row, the log)
HOME_QUERIES = 16  # incidents panel, on-call panel (rotations, overdue handoffs), stalls (5),
# overdue communications (2)


def test_the_changelist_query_count_does_not_grow_with_incidents(
    client, django_assert_num_queries, responder, commander
):
    for n in range(20):
        incident = declare(f"Incident {n}", ("P0", "P1", "P2", "P3")[n % 4], by=commander)
        if n % 2:
            services.assign_role(incident, Role.COMMANDER, commander, by=commander)
    logged_in(client, responder)
    url = reverse(CHANGELIST)
    client.get(url)

    with django_assert_num_queries(CHANGELIST_QUERIES):
        small = client.get(url)
    bulk_incidents(480, commanders=[commander, responder])
    with django_assert_num_queries(CHANGELIST_QUERIES):
        large = client.get(url)

    assert len(listed(small)) == 20
    assert len(listed(large)) == 50
    assert Incident.objects.count() == 500


def test_the_change_page_query_count_does_not_grow_with_the_timeline(
    client, django_assert_num_queries, responder, commander, viewer
):
    people = [responder, commander, viewer]
    small = declare("Small incident", by=commander)
    big = declare("Big incident", by=commander)
    for incident in (small, big):
        services.assign_role(incident, Role.COMMANDER, commander, by=commander)
        services.assign_role(incident, Role.SCRIBE, responder, by=commander)
    grow(small, items=5, entries=5, people=people)
    grow(big, items=60, entries=60, people=people)
    logged_in(client, responder)
    client.get(change_url(small))

    with django_assert_num_queries(CHANGE_PAGE_QUERIES):
        client.get(change_url(small))
    with django_assert_num_queries(CHANGE_PAGE_QUERIES):
        response = client.get(change_url(big))

    assert len(response.context["timeline"]) == 60


def test_the_home_page_query_count_does_not_grow_with_open_incidents(
    client, django_assert_num_queries, responder, commander
):
    for code in ("P0", "P1", "P2"):
        declare(f"{code} incident", code, by=commander)
    logged_in(client, responder)
    url = reverse("admin:index")
    client.get(url)

    with django_assert_num_queries(HOME_QUERIES):
        small = client.get(url)
    bulk_incidents(57, open_only=True, every_nth_security=10_000)
    with django_assert_num_queries(HOME_QUERIES):
        large = client.get(url)

    assert "Active incidents (3)" in home_panel(small)
    assert "Active incidents (60)" in home_panel(large)


# --- change page -------------------------------------------------------------------------------


def test_the_change_page_shows_milestones_roles_checklist_and_timeline_newest_first(
    client, clock, responder, commander
):
    incident = declare("Checkout is down", by=commander, incident_type=incident_type())
    clock.shift(timedelta(minutes=2))
    services.assign_role(incident, Role.COMMANDER, commander, by=commander)
    clock.shift(timedelta(minutes=2))
    first_item = incident.checklist.first()
    services.set_checklist_item(first_item, done=True, by=responder)
    clock.shift(timedelta(minutes=2))
    services.add_note(incident, "Pods are crash-looping", by=responder)
    clock.shift(timedelta(minutes=2))

    response = logged_in(client, responder).get(change_url(incident))

    assert response.status_code == 200
    page = text(response)
    assert (
        '<tr class="milestone-detected"><th>Detected</th><td>2026-03-10 14:00:00 UTC</td></tr>'
    ) in page
    assert '<tr class="milestone-acknowledged"><th>Acknowledged</th><td>—</td></tr>' in page
    assert "<th>Incident commander</th><td>Cora Commander</td>" in page
    assert '<li class="done">' in page
    assert "Verify the outage: check from multiple sources" in page
    # Runbook commands in backticks render as code.
    assert "<code>docker ps -a | grep asset-registration</code>" in page
    assert [entry.kind for entry in response.context["timeline"]] == [
        Kind.NOTE,
        Kind.CHECKLIST_DONE,
        Kind.ROLE_ASSIGNED,
        Kind.DECLARED,
    ]
    timeline = page[page.index('id="timeline"') :]
    assert (
        timeline.index("Pods are crash-looping")
        < timeline.index("ticked: Verify the outage")
        < timeline.index("made Cora Commander incident commander")
        < timeline.index("declared P1 High")
    )


@pytest.fixture
def worked(clock, responder, commander):
    """An outage with its playbook and a scribe, five minutes after declaration."""
    incident = declare("Checkout is down", by=commander, incident_type=incident_type())
    scribe = UserFactory(username="sam", first_name="Sam", last_name="Scribe", groups=["Viewer"])
    services.assign_role(incident, Role.SCRIBE, scribe, by=commander)
    clock.shift(timedelta(minutes=5))
    return incident


def scribe_of(incident: Incident) -> IncidentRole:
    return incident.roles.get(role=Role.SCRIBE, unassigned_at__isnull=True)


# Each act: what the form posts, the timeline body it writes, and the state it leaves.
ACTS = [
    (
        "acknowledge",
        lambda incident, people: {},
        "Rita Responder acknowledged",
        lambda incident, people: incident.acknowledged_by == people["responder"],
    ),
    (
        "status",
        lambda incident, people: {"status": "identified", "note": "Bad deploy"},
        "Rita Responder changed status from Investigating to Identified: Bad deploy",
        lambda incident, people: incident.root_cause_identified_at == T0 + timedelta(minutes=5),
    ),
    (
        "take-command",
        lambda incident, people: {},
        "Rita Responder made Rita Responder incident commander",
        lambda incident, people: (
            incident.roles.get(role=Role.COMMANDER).user == people["responder"]
        ),
    ),
    (
        "role",
        lambda incident, people: {"role": "technical_lead", "user": people["commander"].pk},
        "Rita Responder made Cora Commander technical lead",
        lambda incident, people: (
            incident.roles.get(role=Role.TECHNICAL_LEAD).user == people["commander"]
        ),
    ),
    (
        "unassign",
        lambda incident, people: {"assignment": scribe_of(incident).pk, "anchor": "roles"},
        "Rita Responder removed Sam Scribe as scribe",
        lambda incident, people: not incident.roles.filter(unassigned_at__isnull=True).exists(),
    ),
    (
        "checklist",
        lambda incident, people: {
            "item": incident.checklist.first().pk,
            "done": "on",
            "anchor": "checklist",
        },
        "Rita Responder ticked: Verify the outage",
        lambda incident, people: incident.checklist.first().done_by == people["responder"],
    ),
    (
        "note",
        lambda incident, people: {"kind": "hypothesis", "body": "Pool exhausted"},
        "Pool exhausted",
        lambda incident, people: incident.timeline.filter(note_kind="hypothesis").exists(),
    ),
    (
        "milestone",
        lambda incident, people: {
            "milestone": "detected",
            "at": "2026-03-10 13:50",
            "reason": "The alert fired first",
            "anchor": "milestones",
        },
        "Rita Responder corrected detected to 2026-03-10 13:50 UTC: The alert fired first",
        lambda incident, people: incident.detected_at == T0 - timedelta(minutes=10),
    ),
]


@pytest.mark.parametrize(("name", "payload", "body", "done"), ACTS, ids=[a[0] for a in ACTS])
def test_a_responder_works_the_incident_with_the_act_buttons(
    client, worked, responder, commander, name, payload, body, done
):
    people = {"responder": responder, "commander": commander}
    before = set(worked.timeline.values_list("pk", flat=True))
    data = payload(worked, people)

    response = logged_in(client, responder).post(act_url(worked, name), data)

    assert response.status_code == 302
    anchor = data.get("anchor")
    assert response.url == change_url(worked) + (f"#{anchor}" if anchor else "")
    worked.refresh_from_db()
    assert done(worked, people)
    written = worked.timeline.exclude(pk__in=before)
    assert len(written) == 1
    assert written[0].author == responder
    assert written[0].body.startswith(body)


def test_changing_severity_needs_an_incident_commander(client, worked, responder, commander):
    p0 = severity("P0")

    refused = logged_in(client, responder).post(act_url(worked, "severity"), {"severity": p0.pk})

    assert refused.status_code == 403
    worked.refresh_from_db()
    assert worked.severity.code == "P1"
    assert not worked.timeline.filter(kind=Kind.SEVERITY_CHANGED).exists()

    allowed = logged_in(client, commander).post(
        act_url(worked, "severity"), {"severity": p0.pk, "reason": "All regions down"}
    )

    assert allowed.status_code == 302
    worked.refresh_from_db()
    assert worked.severity.code == "P0"
    assert (worked.ack_due_at, worked.resolution_due_at) == (
        T0 + timedelta(minutes=15),
        T0 + timedelta(hours=2),
    )
    entry = worked.timeline.get(kind=Kind.SEVERITY_CHANGED)
    assert (entry.author, entry.data["from"], entry.data["to"]) == (commander, "P1", "P0")


def test_only_an_incident_commander_may_close(client, worked, responder, commander):
    services.change_status(worked, Status.RESOLVED, by=commander)
    logged_in(client, responder)

    offered = client.get(change_url(worked)).context["transitions"]
    refused = client.post(act_url(worked, "status"), {"status": "closed"})

    assert offered == [Status.INVESTIGATING]
    assert refused.status_code == 403
    worked.refresh_from_db()
    assert (worked.status, worked.closed_at) == (Status.RESOLVED, None)

    logged_in(client, commander)
    offered = client.get(change_url(worked)).context["transitions"]
    allowed = client.post(act_url(worked, "status"), {"status": "closed"})

    assert offered == [Status.INVESTIGATING, Status.CLOSED]
    assert allowed.status_code == 302
    worked.refresh_from_db()
    assert (worked.status, worked.closed_at) == (Status.CLOSED, T0 + timedelta(minutes=5))


def test_a_viewer_sees_the_incident_read_only(client, worked, viewer):
    response = logged_in(client, viewer).get(change_url(worked))

    assert response.status_code == 200
    page = text(response)
    assert "/act/" not in page
    assert "Acknowledge</button>" not in page
    assert "Add note</button>" not in page
    assert 'name="_save"' not in page
    assert 'name="title"' not in page
    assert "Checkout is down" in page


@pytest.mark.parametrize("name", ACT_NAMES)
def test_a_viewer_cannot_use_the_act_endpoints(client, worked, viewer, name):
    before = kinds(worked)

    response = logged_in(client, viewer).post(
        act_url(worked, name), {"status": "identified", "body": "x", "kind": "update"}
    )

    assert response.status_code == 403
    worked.refresh_from_db()
    assert (worked.status, worked.acknowledged_at) == (Status.INVESTIGATING, None)
    assert kinds(worked) == before


def details(incident: Incident, **changes) -> dict:
    """The change form's fields as the page posts them, with ``changes`` applied."""
    data = {
        "title": incident.title,
        "summary": incident.summary,
        "severity": incident.severity_id,
        "incident_type": incident.incident_type_id or "",
        "detection_source": incident.detection_source,
        "users_affected": incident.users_affected or "",
        "impact_scope": incident.impact_scope,
        "is_security": "on" if incident.is_security else "",
        "is_data_loss": "on" if incident.is_data_loss else "",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value != ""}


def test_a_viewer_cannot_edit_through_the_change_form(client, worked, viewer):
    response = logged_in(client, viewer).post(change_url(worked), details(worked, title="Hacked"))

    assert response.status_code == 403
    worked.refresh_from_db()
    assert worked.title == "Checkout is down"
    assert Kind.DETAILS_CHANGED not in kinds(worked)


@pytest.mark.parametrize("name", ACT_NAMES)
def test_an_act_url_changes_nothing_on_get(client, worked, responder, name):
    before = kinds(worked)

    response = logged_in(client, responder).get(act_url(worked, name))

    assert response.status_code == 405
    worked.refresh_from_db()
    assert worked.acknowledged_at is None
    assert kinds(worked) == before


def test_editing_the_change_form_goes_through_the_services(client, worked, commander):
    response = logged_in(client, commander).post(
        change_url(worked),
        details(
            worked,
            title="Checkout and cart are down",
            severity=severity("P0").pk,
            incident_type=incident_type("database-degradation").pk,
            is_data_loss="on",
            users_affected=1200,
        ),
    )

    assert response.status_code == 302
    worked.refresh_from_db()
    assert (worked.title, worked.severity.code, worked.incident_type.slug) == (
        "Checkout and cart are down",
        "P0",
        "database-degradation",
    )
    assert (worked.is_data_loss, worked.users_affected) == (True, 1200)
    assert worked.ack_due_at == T0 + timedelta(minutes=15)
    written = list(
        worked.timeline.filter(at=T0 + timedelta(minutes=5))
        .exclude(kind=Kind.ESCALATED)
        .order_by("pk")
        .values_list("kind", "author")
    )
    assert written == [
        (Kind.SEVERITY_CHANGED, commander.pk),
        (Kind.TYPE_CHANGED, commander.pk),
        (Kind.FLAGS_CHANGED, commander.pk),
        (Kind.DETAILS_CHANGED, commander.pk),
    ]
    assert worked.timeline.get(kind=Kind.DETAILS_CHANGED).data["fields"] == [
        "title",
        "users_affected",
    ]


def test_a_responder_edits_details_but_not_severity_through_the_change_form(
    client, worked, responder
):
    response = logged_in(client, responder).post(
        change_url(worked), details(worked, title="Cart is down", severity=severity("P0").pk)
    )

    assert response.status_code == 302
    worked.refresh_from_db()
    assert (worked.title, worked.severity.code) == ("Cart is down", "P1")
    assert Kind.SEVERITY_CHANGED not in kinds(worked)
    assert worked.timeline.get(kind=Kind.DETAILS_CHANGED).data["fields"] == ["title"]


def test_an_edit_the_services_refuse_is_not_reported_as_saved(client, worked, commander):
    services.change_status(worked, Status.RESOLVED, by=commander)
    services.change_status(worked, Status.CLOSED, by=commander)

    response = logged_in(client, commander).post(
        change_url(worked), details(worked, title="Rewritten")
    )

    worked.refresh_from_db()
    assert response.status_code == 200  # the form comes back with the refusal on it
    assert "This incident is closed; its record can no longer change." in response.text
    assert worked.title == "Checkout is down"
    assert not LogEntry.objects.filter(object_id=str(worked.pk)).exists()


# --- security incidents ------------------------------------------------------------------------


@pytest.fixture
def secret(commander):
    """A security incident declared by a commander outside the Security Team."""
    return declare("Leaked API keys", by=commander, is_security=True)


@pytest.fixture
def public(commander):
    return declare("Search is slow", "P2", by=commander)


def test_a_viewer_does_not_see_a_security_incident_in_any_list(client, secret, public, viewer):
    logged_in(client, viewer)

    changelist = client.get(reverse(CHANGELIST))
    searched = client.get(reverse(CHANGELIST), {"q": secret.public_id})
    flagged = client.get(reverse(CHANGELIST), {"is_security__exact": "1"})
    home = client.get(reverse("admin:index"))
    timeline = client.get(reverse("admin:incidents_timelineentry_changelist"))

    assert listed(changelist) == {public.public_id}
    assert listed(searched) == set()
    assert listed(flagged) == set()
    panel = home_panel(home)
    assert "Active incidents (1)" in panel
    assert public.public_id in panel
    assert secret.public_id not in panel
    assert "Leaked API keys" not in text(home)
    assert {entry.incident_id for entry in timeline.context["cl"].result_list} == {public.pk}
    assert "Leaked API keys" not in text(timeline)


@pytest.mark.parametrize(("who", "entry_status"), [("viewer", 302), ("outsider", 403)])
def test_a_security_incident_is_not_found_for_someone_not_cleared(
    client, secret, who, entry_status, request
):
    logged_in(client, request.getfixturevalue(who))
    entry = secret.timeline.get()

    assert client.get(change_url(secret)).status_code == 404
    assert client.get(history_url(secret)).status_code == 404
    for name in ACT_NAMES:
        assert client.post(act_url(secret, name), {"status": "identified"}).status_code == 404
    # The timeline admin answers a hidden entry like a missing one (back home), and an
    # outsider, who may not read the timeline at all, with 403.
    response = client.get(reverse("admin:incidents_timelineentry_change", args=[entry.pk]))
    assert response.status_code == entry_status
    assert "Leaked API keys" not in text(response)
    secret.refresh_from_db()
    assert (secret.status, secret.acknowledged_at) == (Status.INVESTIGATING, None)
    assert kinds(secret) == [Kind.DECLARED]


def test_an_outsider_sees_no_incident_list_at_all(client, secret, public, outsider):
    logged_in(client, outsider)

    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:incidents_timelineentry_changelist")).status_code == 403
    home = client.get(reverse("admin:index"))
    assert home.status_code == 200
    assert 'id="active-incidents"' not in text(home)
    assert public.public_id not in text(home)


def test_a_security_incident_version_is_not_found_for_a_viewer(client, secret, viewer):
    version = secret.history.get()
    url = reverse("admin:incidents_incident_simple_history", args=[secret.pk, version.pk])

    response = logged_in(client, viewer).get(url)

    assert response.status_code == 404
    assert "Leaked API keys" not in text(response)


def test_a_responder_cannot_act_on_a_hidden_incident_through_a_list_action(
    client, secret, responder
):
    post_action(logged_in(client, responder), "acknowledge_selected", [secret])

    secret.refresh_from_db()
    assert secret.acknowledged_at is None
    assert kinds(secret) == [Kind.DECLARED]


def test_a_hidden_security_incident_cannot_be_edited_through_its_history(client, secret, responder):
    version = secret.history.get()
    url = reverse("admin:incidents_incident_simple_history", args=[secret.pk, version.pk])

    response = logged_in(client, responder).post(url, details(secret, title="Nothing to see"))

    assert response.status_code == 404
    secret.refresh_from_db()
    assert (secret.title, secret.is_security) == ("Leaked API keys", True)
    assert kinds(secret) == [Kind.DECLARED]


@pytest.fixture
def role_holder(secret, commander):
    user = UserFactory(
        username="rex", first_name="Rex", last_name="Roleholder", groups=["Responder"]
    )
    services.assign_role(secret, Role.TECHNICAL_LEAD, user, by=commander)
    return user


@pytest.mark.parametrize("who", ["security_member", "role_holder", "superuser"])
def test_a_security_incident_is_visible_to_those_cleared(client, secret, public, who, request):
    logged_in(client, request.getfixturevalue(who))

    changelist = client.get(reverse(CHANGELIST))
    home = client.get(reverse("admin:index"))
    timeline = client.get(reverse("admin:incidents_timelineentry_changelist"))

    assert listed(changelist) == {secret.public_id, public.public_id}
    panel = home_panel(home)
    assert "Active incidents (2)" in panel
    assert secret.public_id in panel
    assert secret.pk in {entry.incident_id for entry in timeline.context["cl"].result_list}
    change = client.get(change_url(secret))
    assert change.status_code == 200
    assert "Leaked API keys" in text(change)
    assert client.get(history_url(secret)).status_code == 200


def test_a_role_holder_works_a_security_incident(client, secret, role_holder):
    response = logged_in(client, role_holder).post(act_url(secret, "acknowledge"))

    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.acknowledged_by == role_holder


# --- deletion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["responder", "commander", "admin_member"])
def test_incidents_cannot_be_deleted_by_responders_commanders_or_admins(
    client, public, who, request
):
    logged_in(client, request.getfixturevalue(who))

    changelist = client.get(reverse(CHANGELIST))
    page = client.get(delete_url(public))
    posted = client.post(delete_url(public), {"post": "yes"})
    action = post_action(client, "delete_selected", [public], post="yes")

    assert "delete_selected" not in action_names(changelist)
    assert (page.status_code, posted.status_code) == (403, 403)
    assert action.status_code == 302  # "No action selected", back to the list
    assert Incident.objects.filter(pk=public.pk).exists()
    assert kinds(public) == [Kind.DECLARED]


def test_a_superuser_is_offered_deletion(client, public, superuser):
    response = logged_in(client, superuser).get(reverse(CHANGELIST))

    assert "delete_selected" in action_names(response)


def test_a_superuser_can_delete_an_incident(client, public, superuser):
    logged_in(client, superuser)

    page = client.get(delete_url(public))
    response = client.post(delete_url(public), {"post": "yes"})

    assert page.status_code == 200
    assert not page.context["perms_lacking"]
    assert response.status_code == 302
    assert not Incident.objects.filter(pk=public.pk).exists()
    assert not TimelineEntry.objects.filter(incident_id=public.pk).exists()


# --- timeline admin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who", ["viewer", "responder", "commander", "admin_member", "security_member", "superuser"]
)
def test_the_timeline_admin_is_read_only_for_everybody(client, public, who, request):
    entry = public.timeline.get()
    logged_in(client, request.getfixturevalue(who))
    entry_url = reverse("admin:incidents_timelineentry_change", args=[entry.pk])

    listing = client.get(reverse("admin:incidents_timelineentry_changelist"))
    add = client.get(reverse("admin:incidents_timelineentry_add"))
    add_post = client.post(
        reverse("admin:incidents_timelineentry_add"),
        {"incident": public.pk, "at": "2026-03-10 14:00", "kind": "note", "body": "Forged"},
    )
    view = client.get(entry_url)
    change = client.post(entry_url, {"body": "Rewritten", "kind": "note", "at": "2026-03-10"})
    delete = client.get(reverse("admin:incidents_timelineentry_delete", args=[entry.pk]))
    delete_post = client.post(
        reverse("admin:incidents_timelineentry_delete", args=[entry.pk]), {"post": "yes"}
    )

    assert listing.status_code == 200
    assert action_names(listing) == []
    assert (add.status_code, add_post.status_code) == (403, 403)
    assert view.status_code == 200
    assert 'name="_save"' not in text(view)
    assert change.status_code == 403
    assert (delete.status_code, delete_post.status_code) == (403, 403)
    assert list(public.timeline.values_list("pk", "body")) == [(entry.pk, entry.body)]


# --- history -----------------------------------------------------------------------------------


def test_the_history_page_lists_each_change_with_who_made_it(client, clock, commander, responder):
    incident = declare("Checkout is down", by=commander)
    clock.shift(timedelta(minutes=3))
    logged_in(client, responder).post(act_url(incident, "acknowledge"))
    clock.shift(timedelta(minutes=3))
    logged_in(client, commander).post(
        change_url(incident), details(incident, title="Checkout and cart are down")
    )
    clock.shift(timedelta(minutes=3))
    client.post(act_url(incident, "status"), {"status": "identified"})

    response = client.get(history_url(incident))

    assert response.status_code == 200
    rows = [
        (
            record.history_date,
            record.history_type,
            record.history_user,
            record.history_change_reason,
        )
        for record in response.context["page_obj"].object_list
    ]
    assert rows == [
        (T0 + timedelta(minutes=9), "~", commander, "status investigating -> identified"),
        (T0 + timedelta(minutes=6), "~", commander, "edit"),
        (T0 + timedelta(minutes=3), "~", responder, "acknowledged"),
        (T0, "+", commander, "declared"),
    ]
    page = text(response)
    start = page.index('id="change-history"')
    table = page[start : page.index("</table>", start)]
    assert table.count("<tr>") == 5
    assert table.count(f'href="/admin/auth/user/{commander.pk}/change/">cora</a>') == 3
    assert table.count(f'href="/admin/auth/user/{responder.pk}/change/">rita</a>') == 1


# --- admin home --------------------------------------------------------------------------------


def test_the_home_page_groups_active_incidents_by_severity_with_their_clocks(
    client, clock, commander, responder
):
    outage = declare("Checkout is down", "P0", by=commander)
    login = declare("Login fails", "P1", by=commander)
    clock.shift(timedelta(minutes=1))
    search = declare("Search is slow", "P1", by=commander)
    done = declare("Old glitch", "P2", by=commander)
    services.change_status(done, Status.RESOLVED, by=commander)
    services.acknowledge_incident(search, by=commander)
    clock.shift(timedelta(minutes=19))

    response = logged_in(client, responder).get(reverse("admin:index"))

    assert response.status_code == 200
    panel = home_panel(response)
    assert "Active incidents (3)" in panel
    assert "Old glitch" not in panel
    p0 = panel.index("P0</span> Critical · 1")
    p1 = panel.index("P1</span> High · 2")
    assert p0 < panel.index(outage.public_id) < p1
    assert p1 < panel.index(login.public_id) < panel.index(search.public_id)
    # P0: ack due 15m after T0; P1: ack due in an hour, or resolution in 8h once acknowledged.
    assert "Ack overdue 5m" in panel
    assert "Ack due in 40m" in panel
    assert "Resolution due in 7h 41m" in panel
    assert f'href="{change_url(outage)}"' in panel
    assert f'href="{reverse(DECLARE)}">Declare incident</a>' in text(response)


def test_the_home_page_offers_no_declare_link_to_a_viewer(client, public, viewer):
    response = logged_in(client, viewer).get(reverse("admin:index"))

    assert public.public_id in home_panel(response)
    assert "declare-button" not in text(response)


def test_the_empty_home_panel_offers_no_declare_link_to_a_viewer(client, viewer):
    response = logged_in(client, viewer).get(reverse("admin:index"))

    assert "No open incidents." in home_panel(response)
    assert reverse(DECLARE) not in text(response)


def test_the_home_panel_counts_every_open_incident(client, responder):
    bulk_incidents(201, open_only=True, every_nth_security=10_000)

    response = logged_in(client, responder).get(reverse("admin:index"))

    assert "Active incidents (201)" in home_panel(response)
