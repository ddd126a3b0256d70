"""The communications UI in the admin: the incident's panel, "Post update", "Log a message", the
public face, the communication log, the overdue column, filter and home panel, and who may use
each (a viewer reads, a responder works, a security incident is hidden from the uncleared)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from comms import services
from comms.models import (
    CommsSettings,
    Communication,
    IncidentComms,
    IncidentUpdate,
    Notification,
    Stakeholder,
    StakeholderList,
)
from incidents import services as incident_services
from incidents.models import IncidentRole, Status, TimelineEntry
from tests.delivery import deliver_pending
from tests.incidents.factories import UserFactory, declare, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
Role = IncidentRole.Role
LOG = "/admin/comms/communication/"
INCIDENTS = "/admin/incidents/incident/"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def rita():
    return UserFactory(username="rita", first_name="Rita", groups=["Responder"])


@pytest.fixture
def otto():
    return UserFactory(username="otto", first_name="Otto", groups=["Responder"])


@pytest.fixture
def vera():
    return UserFactory(username="vera", groups=["Viewer"])


@pytest.fixture
def sam():
    return UserFactory(username="sam", groups=["Responder", "Security Team"])


@pytest.fixture
def executives():
    listing = StakeholderList.objects.create(name="Executives")
    listing.severities.set([severity("P0"), severity("P1")])
    Stakeholder.objects.create(stakeholder_list=listing, email="ceo@example.com")
    return listing


def declared(by, code="P1", title="Checkout is down", **kwargs):
    incident = declare(title, code=code, by=by, **kwargs)
    incident_services.assign_role(incident, Role.COMMANDER, by, by=by)
    return incident


@pytest.fixture
def incident(rita, otto):
    incident = declared(rita)
    incident_services.assign_role(incident, Role.TECHNICAL_LEAD, otto, by=rita)
    return incident


def change_url(incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def post_update_url(incident) -> str:
    return reverse("comms-post-update", args=[incident.pk])


def log_message_url(incident) -> str:
    return reverse("comms-log-message", args=[incident.pk])


def public_face_url(incident) -> str:
    return reverse("comms-public-face", args=[incident.pk])


def page(client, url: str, user=None) -> str:
    if user is not None:
        client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def panel(html: str) -> str:
    start = html.index('id="communications"')
    return html[start : html.index('id="timeline"', start)]


# --- The incident's panel ---------------------------------------------------------------------


def test_the_incident_page_shows_the_communications_panel(client, rita, incident):
    html = panel(page(client, change_url(incident), rita))

    assert "<h2>Communications</h2>" in html
    # P1: responders hourly, the status page within 2 hours, stakeholders within 4.
    assert "2026-03-11 13:00 UTC" in html
    assert "2026-03-11 14:00 UTC" in html
    assert "2026-03-11 16:00 UTC" in html
    assert "overdue" not in html
    assert f'href="{post_update_url(incident)}"' in html and "Post update" in html
    assert f'href="{log_message_url(incident)}"' in html
    assert f'action="{public_face_url(incident)}"' in html
    assert "Nothing sent yet." in html


def test_the_panel_says_overdue_once_the_update_is_due(client, rita, incident, clock):
    clock.shift(timedelta(minutes=61))
    html = panel(page(client, change_url(incident), rita))
    assert html.count('<span class="breached">overdue</span>') == 1


def test_a_viewer_sees_the_panel_without_the_buttons(client, vera, incident):
    html = panel(page(client, change_url(incident), vera))

    assert "<h2>Communications</h2>" in html
    assert "Post update" not in html and "<form" not in html
    assert "On the status page." in html


# --- Post update --------------------------------------------------------------------------


def test_the_form_preselects_what_a_public_p0_calls_for(client, rita, executives):
    p0 = declared(rita, code="P0")

    client.force_login(rita)
    response = client.get(post_update_url(p0))

    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["audiences"] == ["internal", "stakeholders", "public"]
    assert form.initial["status"] == Status.INVESTIGATING
    assert form.initial["public_text"].startswith("INVESTIGATING: We are aware of an issue")
    html = response.content.decode()
    assert all(_checked(html, a) for a in ("internal", "stakeholders", "public"))
    assert "1 person in a role or paged" in html
    assert "1 subscribed for P0" in html


def _checked(html: str, value: str) -> bool:
    tag_start = html.index(f'value="{value}"')
    tag = html[html.rindex("<input", 0, tag_start) : html.index(">", tag_start)]
    return "checked" in tag


def test_the_form_preselects_only_responders_for_a_private_incident(client, rita):
    p2 = declared(rita, code="P2")
    client.force_login(rita)

    form = client.get(post_update_url(p2)).context["form"]

    assert form.initial["audiences"] == ["internal"]
    assert form.initial["public_text"] == ""


def test_posting_sends_and_returns_to_the_incident(
    client, rita, otto, incident, executives, smtp_server, django_capture_on_commit_callbacks
):
    client.force_login(rita)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            post_update_url(incident),
            {
                "status": "identified",
                "progress": "A bad deploy.",
                "next_steps": "Rolling back.",
                "eta": "13:00 UTC",
                "impact": "No orders",
                "public_text": "Some payments fail; we are fixing it.",
                "audiences": ["internal", "stakeholders", "public"],
            },
        )

    assert response.status_code == 302
    assert response["Location"] == f"{change_url(incident)}#communications"
    update = IncidentUpdate.objects.get(incident=incident)
    assert update.audiences == ["internal", "stakeholders", "public"]
    assert set(
        Notification.objects.filter(reason__startswith=f"update:{update.pk}").values_list(
            "recipient", flat=True
        )
    ) == {"rita@example.com", "otto@example.com", "ceo@example.com"}
    assert deliver_pending() == ["sent"] * 3
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "ceo@example.com",
        "otto@example.com",
        "rita@example.com",
    ]
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED
    notes = incident.timeline.filter(kind=TimelineEntry.Kind.NOTE).values_list("body", flat=True)
    assert any(n.startswith("Update posted (status Identified).") for n in notes)

    html = page(client, response["Location"])
    assert "Update sent to 2 responders, 1 stakeholder, the status page." in html
    timeline = html[html.index('id="timeline"') :]
    assert "Update posted (status Identified)." in timeline
    log = panel(html)
    assert "3 sent" not in log  # one row per message logged, each with its own delivery
    assert "1 sent" in log and "2 sent" in log and "published" in log


def test_the_updates_admin_names_the_status_and_audiences(client, rita, incident, executives):
    client.force_login(rita)
    client.post(
        post_update_url(incident),
        {
            "status": "identified",
            "progress": "A bad deploy.",
            "public_text": "Some payments fail; we are fixing it.",
            "audiences": ["internal", "stakeholders", "public"],
        },
    )
    update = IncidentUpdate.objects.get(incident=incident)

    listing = page(client, "/admin/comms/incidentupdate/?status=identified")
    assert "Identified" in listing and ">identified<" not in listing
    detail = page(client, f"/admin/comms/incidentupdate/{update.pk}/change/")
    assert "Responders and org roles, Stakeholders, Status page" in detail
    assert "[&#x27;internal&#x27;" not in detail
    for status, shown in (("identified", 1), ("monitoring", 0)):
        response = client.get(f"/admin/comms/incidentupdate/?status={status}")
        assert response.context["cl"].result_count == shown


def test_a_public_update_without_public_text_is_shown_again_with_the_error(client, rita, incident):
    client.force_login(rita)
    response = client.post(
        post_update_url(incident),
        {"status": "investigating", "progress": "Looking", "audiences": ["internal", "public"]},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "public_text": ["The status page shows only the public text: write it."]
    }
    assert "The status page shows only the public text: write it." in response.content.decode()
    assert not IncidentUpdate.objects.exists()
    assert not Notification.objects.filter(reason__startswith="update:").exists()


def test_a_refusal_by_the_rules_is_shown_on_the_form(client, rita, incident):
    client.force_login(rita)
    response = client.post(
        post_update_url(incident), {"status": "investigating", "audiences": ["internal"]}
    )

    assert response.status_code == 200
    assert "Write what changed" in response.content.decode()
    assert not IncidentUpdate.objects.exists()


def test_resolving_from_the_form_sends_the_resolution_notice(
    client, rita, incident, django_capture_on_commit_callbacks
):
    client.force_login(rita)
    with django_capture_on_commit_callbacks(execute=True):
        # No public text: the status page gets the runbook's "resolved" words.
        response = client.post(
            post_update_url(incident),
            {"status": "resolved", "progress": "Rolled back.", "audiences": ["internal", "public"]},
            follow=True,
        )

    assert "Resolved: the resolution notice is on its way." in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert Notification.objects.filter(reason__startswith="resolved:").count() == 2
    update = IncidentUpdate.objects.get(incident=incident)
    assert update.kind == IncidentUpdate.Kind.RESOLUTION and update.public_text
    assert Communication.objects.filter(incident=incident, channel="status_page").exists()


def test_a_viewer_may_not_post_log_or_change_the_public_face(client, vera, incident):
    client.force_login(vera)

    assert client.get(post_update_url(incident)).status_code == 403
    assert client.post(post_update_url(incident), {"progress": "x"}).status_code == 403
    assert client.get(log_message_url(incident)).status_code == 403
    assert client.post(public_face_url(incident), {"is_public": ""}).status_code == 403
    assert not IncidentUpdate.objects.exists()
    assert IncidentComms.objects.get(incident=incident).is_public is True


def test_a_security_incident_is_not_found_for_the_uncleared(client, rita, otto, sam):
    breach = declared(otto, title="Tokens leaked", is_security=True)
    client.force_login(rita)

    for url in (post_update_url(breach), log_message_url(breach)):
        assert client.get(url).status_code == 404
    assert client.post(public_face_url(breach), {}).status_code == 404

    client.force_login(sam)
    assert client.get(post_update_url(breach)).status_code == 200


def test_a_closed_incident_takes_no_update_message_or_public_face(client, rita, incident):
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        incident_services.resolve_incident(incident, by=rita)
    incident.__class__.objects.filter(pk=incident.pk).update(status=Status.CLOSED)
    client.force_login(rita)
    before = incident.timeline.count()

    for response in (
        client.get(post_update_url(incident), follow=True),
        client.post(
            log_message_url(incident),
            {"audience": "internal", "channel": "chat", "body": "x"},
            follow=True,
        ),
        client.post(public_face_url(incident), {"public_title": "Gone"}, follow=True),
    ):
        assert f"{incident.public_id} is closed." in response.content.decode()
    assert incident.timeline.count() == before
    assert not Communication.objects.filter(manual=True).exists()
    assert "Post update" not in panel(page(client, change_url(incident)))


# --- The public face ------------------------------------------------------------------------


def test_the_public_face_takes_a_post_only(client, rita, incident):
    client.force_login(rita)
    response = client.get(public_face_url(incident))
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_the_public_face_puts_an_incident_on_and_off_the_status_page(client, rita, incident):
    client.force_login(rita)

    off = client.post(public_face_url(incident), {"public_title": "", "public_impact": ""})

    assert off.status_code == 302 and off["Location"] == f"{change_url(incident)}#communications"
    state = IncidentComms.objects.get(incident=incident)
    assert state.is_public is False and state.next_status_page_due_at is None
    client.post(
        public_face_url(incident),
        {"is_public": "on", "public_title": "Payments", "public_impact": "partial_outage"},
    )
    state.refresh_from_db()
    assert (state.is_public, state.public_title, state.public_impact) == (
        True,
        "Payments",
        "partial_outage",
    )
    assert state.next_status_page_due_at == T0 + timedelta(hours=2)
    assert "2026-03-11 14:00 UTC" in panel(page(client, change_url(incident)))
    entries = incident.timeline.filter(kind=TimelineEntry.Kind.COMMUNICATION)
    assert list(entries.order_by("pk").values_list("body", flat=True))[-2:] == [
        "Rita Tester took it off the status page.",
        'Rita Tester put it on the status page as "Payments".',
    ]


def test_a_security_incident_never_goes_on_the_status_page(client, sam):
    breach = declared(sam, title="Tokens leaked", is_security=True)
    client.force_login(sam)

    response = client.post(
        public_face_url(breach), {"is_public": "on", "public_title": "Outage"}, follow=True
    )

    assert "A security incident is never shown on the status page." in response.content.decode()
    state = IncidentComms.objects.get(incident=breach)
    assert state.is_public is False and state.public_title == ""
    assert "Security incidents are never shown on the status page." in panel(
        response.content.decode()
    )


# --- Log a message ----------------------------------------------------------------------------


def test_a_message_sent_by_hand_is_logged(client, rita, incident):
    client.force_login(rita)
    assert 'name="log-message"' in page(client, log_message_url(incident))

    response = client.post(
        log_message_url(incident),
        {
            "audience": "stakeholders",
            "channel": "phone",
            "recipients": "CEO, CFO ,",
            "subject": "Called the CEO",
            "body": "Explained the outage.",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == f"{change_url(incident)}#communications"
    entry = Communication.objects.get(incident=incident)
    assert (entry.manual, entry.audience, entry.channel, entry.recipients, entry.author) == (
        True,
        "stakeholders",
        "phone",
        ["CEO", "CFO"],
        rita,
    )
    assert incident.timeline.filter(data__communication=entry.pk).exists()
    log = panel(page(client, change_url(incident)))
    assert "Called the CEO" in log and "posted by hand" in log


def test_a_message_without_text_is_not_logged(client, rita, incident):
    client.force_login(rita)
    response = client.post(
        log_message_url(incident), {"audience": "internal", "channel": "webhook", "body": ""}
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"channel", "body"}
    assert not Communication.objects.exists()


# --- The communication log --------------------------------------------------------------------


@pytest.fixture
def logged(rita, otto, sam, incident, executives):
    services.post_update(
        incident,
        services.UpdateInput(
            progress="A bad deploy.",
            public_text="Payments fail.",
            audiences=("internal", "stakeholders"),
        ),
        by=rita,
    )
    services.log_manual(
        incident, audience="internal", channel="phone", body="Called the CTO", by=rita
    )
    breach = declared(sam, title="Tokens leaked", is_security=True)
    services.log_manual(breach, audience="internal", channel="chat", body="Rotate now", by=sam)
    return incident, breach


def listed(client, url: str) -> list[str]:
    """The log entries a changelist shows, by their text."""
    response = client.get(url)
    assert response.status_code == 200
    return sorted(entry.subject or entry.body for entry in response.context["cl"].result_list)


def test_the_log_lists_every_message_with_its_delivery(client, rita, logged):
    incident, breach = logged
    email = Communication.objects.get(incident=incident, channel="email", audience="internal")
    Notification.objects.filter(communication=email, recipient="rita@example.com").update(
        state=Notification.State.SENT
    )

    html = page(client, LOG, rita)

    assert incident.public_id in html and breach.public_id not in html
    assert "1 pending, 1 sent" in html  # the responders' email
    assert "1 pending" in html  # the stakeholders' email
    assert "posted by hand" in html
    assert "Rotate now" not in html


def test_the_log_filters_by_audience_and_channel_and_searches_by_incident(
    client, rita, otto, logged
):
    incident, _ = logged
    other = declared(otto, title="Search is slow")
    services.log_manual(other, audience="public", channel="other", body="Tweeted", by=otto)
    client.force_login(rita)

    stakeholder_email = Communication.objects.get(audience="stakeholders")
    assert listed(client, f"{LOG}?audience=stakeholders") == [stakeholder_email.subject]
    assert listed(client, f"{LOG}?audience=public") == ["Tweeted"]
    assert listed(client, f"{LOG}?channel=phone") == ["Called the CTO"]
    assert listed(client, f"{LOG}?q={other.public_id}") == ["Tweeted"]
    # The incident panel's "Full communication log" link.
    assert len(listed(client, f"{LOG}?incident__id__exact={incident.pk}")) == 3


def test_the_log_costs_the_same_queries_at_any_size(client, rita, otto, incident, clock):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(LOG).status_code == 200
        return len(captured)

    client.force_login(rita)
    services.post_update(incident, services.UpdateInput(progress="One"), by=rita)
    small = queries()
    for n in range(5):
        clock.shift(timedelta(minutes=10))
        services.post_update(incident, services.UpdateInput(progress=f"More {n}"), by=rita)
        services.log_manual(incident, audience="internal", channel="chat", body=f"{n}", by=otto)
    assert Communication.objects.count() >= 10

    assert queries() == small


def test_the_security_team_sees_a_security_incident_s_messages(client, sam, logged):
    _, breach = logged
    html = page(client, LOG, sam)
    assert breach.public_id in html and "Rotate now" in html


def test_a_hidden_entry_cannot_be_opened(client, rita, logged):
    _, breach = logged
    hidden = Communication.objects.get(incident=breach)
    client.force_login(rita)
    assert client.get(f"{LOG}{hidden.pk}/change/").status_code in (302, 404)


def test_the_log_is_read_only(client, rita, logged):
    incident, _ = logged
    entry = Communication.objects.filter(incident=incident).first()
    client.force_login(UserFactory(username="ada", groups=["Admin"]))

    assert client.get(f"{LOG}add/").status_code == 403
    assert client.post(f"{LOG}{entry.pk}/delete/").status_code == 403
    detail = page(client, f"{LOG}{entry.pk}/change/")
    assert 'name="_save"' not in detail


# --- The incidents list and the home page -------------------------------------------------------


def test_the_incidents_list_shows_when_the_next_update_is_due(client, rita, incident, clock):
    def next_update() -> str:
        html = page(client, INCIDENTS)
        start = html.index('<td class="field-next_update">')
        return html[start + len('<td class="field-next_update">') : html.index("</td>", start)]

    client.force_login(rita)
    assert "<span>Next update</span>" in page(client, INCIDENTS)
    assert next_update() == "in 1h 00m"  # P1: responders hourly
    clock.shift(timedelta(minutes=70))
    assert next_update() == '<span class="breached">overdue 10m</span>'


def test_the_overdue_filter_lists_only_incidents_owing_an_update(
    client, rita, otto, incident, clock
):
    fine = declared(otto, title="Search is slow", code="P2")
    services.post_update(
        incident, services.UpdateInput(progress="x", audiences=("internal",)), by=rita
    )
    clock.shift(timedelta(minutes=61))
    client.force_login(rita)

    html = page(client, f"{INCIDENTS}?comms=overdue")

    assert "Update overdue" in page(client, INCIDENTS)
    assert incident.public_id in html and fine.public_id not in html


def test_the_home_page_lists_overdue_communications(client, rita, incident, clock):
    assert "Communications overdue" not in page(client, reverse("admin:index"), rita)

    clock.shift(timedelta(minutes=61))
    html = page(client, reverse("admin:index"))

    start = html.index('id="comms-overdue"')
    overdue = html[start : html.index("</table>", start)]
    assert "Communications overdue" in html
    assert incident.public_id in overdue and "Update</span> since 13:00 UTC" in overdue
    assert post_update_url(incident) in overdue


def test_the_home_page_hides_an_overdue_security_incident_from_the_uncleared(
    client, rita, sam, clock
):
    declared(sam, title="Tokens leaked", is_security=True)
    clock.shift(timedelta(minutes=61))
    assert "Communications overdue" not in page(client, reverse("admin:index"), rita)
    assert "Communications overdue" in page(client, reverse("admin:index"), sam)


# --- Settings ---------------------------------------------------------------------------------


def test_the_settings_list_opens_the_single_row(client):
    client.force_login(UserFactory(username="ada", groups=["Admin"]))

    response = client.get("/admin/comms/commssettings/")

    row = CommsSettings.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/comms/commssettings/{row.pk}/change/"
    assert client.get("/admin/comms/commssettings/").status_code == 302
    assert CommsSettings.objects.count() == 1
    assert client.get(response["Location"]).status_code == 200


def test_the_settings_are_refused_to_a_responder(client, rita):
    client.force_login(rita)
    assert client.get("/admin/comms/commssettings/").status_code == 403
