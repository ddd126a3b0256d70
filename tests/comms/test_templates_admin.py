"""The message template editor: the shipped list, editing, validation, reset, preview, access."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission

from comms import rendering
from comms.defaults import TEMPLATES
from comms.models import MessageTemplate
from comms.template_admin import VARIABLES
from tests.incidents.factories import UserFactory, declare

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
LIST = "/admin/comms/messagetemplate/"


def user_with(username: str, *codenames: str, **kwargs):
    user = UserFactory(username=username, **kwargs)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="comms", codename__in=codenames)
    )
    return user


@pytest.fixture
def editor():
    return user_with("edna", "view_messagetemplate", "change_messagetemplate")


@pytest.fixture
def viewer():
    return user_with("vic", "view_messagetemplate")


def row(key: str) -> MessageTemplate:
    rendering.ensure_templates()
    return MessageTemplate.objects.get(key=key)


def url(key: str, suffix: str = "change/") -> str:
    return f"{LIST}{row(key).pk}/{suffix}"


def form_data(key: str, **parts) -> dict:
    shipped = TEMPLATES[key]
    data = {"body_text": shipped.body_text}
    if shipped.kind == "email":
        data.update(subject=shipped.subject, body_html=shipped.body_html)
    data.update(parts)
    return data


def test_the_list_shows_every_shipped_template_before_any_bootstrap(client, viewer):
    assert not MessageTemplate.objects.exists()
    client.force_login(viewer)

    page = client.get(LIST).content.decode()

    assert set(MessageTemplate.objects.values_list("key", flat=True)) == set(TEMPLATES)
    for key, shipped in TEMPLATES.items():
        assert key in page
        assert shipped.name in page
    assert "Add message template" not in page


def test_an_edit_overrides_the_default_and_reset_restores_it(client, editor):
    client.force_login(editor)
    edited = "ALERT {{ incident.public_id }} is {{ status }}, ring {{ assigned_to }}.\n"

    response = client.post(url("initial_alert"), form_data("initial_alert", body_text=edited))

    assert response.status_code == 302, response.content.decode()
    saved = MessageTemplate.objects.get(key="initial_alert")
    assert (saved.customised, saved.updated_by) == (True, editor)
    assert saved.updated_at is not None
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P1")
        context = rendering.context_for("initial_alert", incident, now=T0)
    rendered = rendering.render("initial_alert", context)
    assert rendered.text == f"ALERT {incident.public_id} is INVESTIGATING, ring On-call engineer.\n"

    confirm = client.get(url("initial_alert", "reset/"))
    assert confirm.status_code == 200
    assert MessageTemplate.objects.get(key="initial_alert").customised  # a GET only asks
    response = client.post(url("initial_alert", "reset/"), follow=True)

    assert "back to the text the portal ships" in response.content.decode()
    saved.refresh_from_db()
    assert (saved.customised, saved.body_text) == (False, TEMPLATES["initial_alert"].body_text)
    assert saved.updated_by == editor
    assert rendering.render("initial_alert", context).text.startswith("INCIDENT ALERT - P1\n")


def test_saving_the_default_text_unchanged_keeps_following_the_default(client, editor):
    client.force_login(editor)
    shipped = TEMPLATES["progress_update"]
    # As a browser posts it: CRLF line ends, the trailing newline stripped by the form.
    data = form_data(
        "progress_update",
        body_text=shipped.body_text.replace("\n", "\r\n").strip(),
        body_html=shipped.body_html.replace("\n", "\r\n"),
    )

    assert client.post(url("progress_update"), data).status_code == 302

    saved = MessageTemplate.objects.get(key="progress_update")
    assert saved.customised is False
    assert (saved.body_text, saved.body_html) == (shipped.body_text, shipped.body_html)


def test_a_text_template_edits_only_its_text(client, editor):
    client.force_login(editor)

    page = client.get(url("status_investigating")).content.decode()
    assert 'name="body_text"' in page
    assert 'name="subject"' not in page
    assert 'name="body_html"' not in page
    assert "{{ services }}" in page  # the public variables are listed
    assert "{{ incident }}" not in page

    response = client.post(url("status_investigating"), {"body_text": "We are looking."})
    assert response.status_code == 302
    assert rendering.source("status_investigating").body_text == "We are looking."


def test_a_syntax_error_is_a_form_error_not_a_500(client, editor):
    client.force_login(editor)
    data = form_data("initial_alert", subject="{% if severity %}ALERT", body_html="{{ a|nosuch }}")

    response = client.post(url("initial_alert"), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Template syntax error" in errors["subject"][0]
    assert "nosuch" in errors["body_html"][0]
    assert "body_text" not in errors
    assert not MessageTemplate.objects.get(key="initial_alert").customised


def test_a_template_that_fails_to_render_is_refused(client, editor):
    client.force_login(editor)
    data = form_data("chat_update", body_text="{% url 'no-such-page' %}")

    response = client.post(url("chat_update"), data)

    assert response.status_code == 200
    assert "Does not render" in response.context["adminform"].form.errors["body_text"][0]


def test_the_preview_renders_the_saved_text_against_a_real_incident(client, viewer):
    with time_machine.travel(T0, tick=False):
        older = declare("Search is slow", code="P2")
        newest = declare("Checkout is down", code="P0")
    client.force_login(viewer)

    response = client.get(url("initial_alert", "preview/"))

    assert response.status_code == 200
    assert response.context["incident"] == newest  # the newest by default
    rendered = response.context["rendered"]
    assert newest.public_id in rendered.subject
    assert newest.public_id in rendered.text
    assert newest.public_id in rendered.html
    page = response.content.decode()
    assert f'<pre id="preview-text">INCIDENT ALERT - P0\nIncident ID: {newest.public_id}' in page
    assert 'sandbox=""' in page and "allow-scripts" not in page
    assert 'srcdoc="&lt;!doctype html&gt;' in page

    chosen = client.get(url("initial_alert", "preview/"), {"incident": older.pk})
    assert older.public_id in chosen.context["rendered"].text


def test_incident_text_cannot_break_out_of_the_preview(client, viewer):
    with time_machine.travel(T0, tick=False):
        declare('Login <script>alert(1)</script> "fails"', code="P1")
    client.force_login(viewer)

    page = client.get(url("initial_alert", "preview/")).content.decode()

    assert "<script>alert" not in page
    assert "Login &lt;script&gt;alert(1)&lt;/script&gt; &quot;fails&quot;" in page  # the text
    assert "Login &amp;lt;script&amp;gt;" in page  # the HTML, escaped again for srcdoc


def test_the_preview_button_renders_unsaved_text_without_saving_it(client, editor):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P1")
    client.force_login(editor)
    data = form_data("initial_alert", subject="Draft {{ incident.public_id }}", _preview="1")

    response = client.post(url("initial_alert", "preview/"), data)

    assert response.status_code == 200
    assert response.context["rendered"].subject == f"Draft {incident.public_id}"
    assert response.context["unsaved"] is True
    assert not MessageTemplate.objects.get(key="initial_alert").customised


def test_the_preview_shows_a_broken_draft_s_error(client, editor):
    with time_machine.travel(T0, tick=False):
        declare("Checkout is down", code="P1")
    client.force_login(editor)

    response = client.post(url("chat_update", "preview/"), {"body_text": "{% if %}"})

    assert response.status_code == 200
    assert "does not render" in response.content.decode()


def test_a_viewer_cannot_edit_or_reset(client, viewer):
    customised = row("chat_update")
    MessageTemplate.objects.filter(pk=customised.pk).update(body_text="Edited", customised=True)
    client.force_login(viewer)

    page = client.get(url("chat_update")).content.decode()
    assert "Reset to default" not in page
    assert "Preview unsaved text" not in page
    assert client.post(url("chat_update"), {"body_text": "Mine"}).status_code == 403
    assert client.get(url("chat_update", "reset/")).status_code == 403
    assert client.post(url("chat_update", "reset/")).status_code == 403

    assert rendering.source("chat_update").body_text == "Edited"


def test_a_public_template_previews_the_public_face_only(client, viewer):
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout DB primary OOM-killed", code="P0")
    client.force_login(viewer)

    rendered = client.get(url("stakeholder_update", "preview/")).context["rendered"]

    assert rendered.subject == "[INVESTIGATING] Service disruption"
    assert "/unsubscribe/example/" in rendered.text
    assert incident.title not in rendered.text + rendered.html


def test_an_outsider_without_view_permission_gets_no_preview(client):
    client.force_login(UserFactory(username="otto"))
    assert client.get(url("chat_update", "preview/")).status_code == 403


def test_security_incidents_the_user_cannot_see_are_not_offered(client, viewer):
    with time_machine.travel(T0, tick=False):
        outage = declare("Checkout is down", code="P1")
        breach = declare("Tokens leaked", code="P0", is_security=True)
    client.force_login(viewer)

    response = client.get(url("initial_alert", "preview/"))
    assert response.context["incidents"] == [outage]
    assert breach.public_id not in response.content.decode()

    # Asked for by its pk, it is still not rendered.
    asked = client.get(url("initial_alert", "preview/"), {"incident": breach.pk})
    assert asked.context["incident"] == outage
    assert breach.public_id not in asked.content.decode()


def test_every_variable_the_internal_context_offers_is_listed():
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P1")
    context = rendering.internal_context(incident, now=T0)
    assert set(context) == {name for name, _, _ in VARIABLES["internal"]}


def test_every_variable_the_public_context_offers_is_listed():
    with time_machine.travel(T0, tick=False):
        incident = declare("Checkout is down", code="P1")
    context = rendering.public_context(incident, now=T0)
    assert set(context) == {name for name, _, _ in VARIABLES["public"]}


def test_the_reset_page_names_who_last_edited_it(client, editor):
    editor.first_name, editor.last_name = "Edna", "Mode"
    editor.save()
    client.force_login(editor)
    edited = form_data("chat_update", body_text="Edited {{ status }}")
    assert client.post(url("chat_update"), edited).status_code == 302

    page = client.get(url("chat_update", "reset/")).content.decode()

    assert "by Edna Mode." in page
    assert "Reset to default" in client.get(url("chat_update")).content.decode()
