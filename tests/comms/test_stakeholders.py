"""Stakeholder lists: the signed unsubscribe link (page, button, RFC 8058 one-click POST) and
the admin's bulk add."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import signing
from django.test import Client

from comms import unsubscribe as links
from comms.models import Stakeholder, StakeholderList
from tests.incidents.factories import UserFactory, severity

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def executives():
    return StakeholderList.objects.create(name="Executives")


@pytest.fixture
def cleo(executives):
    return Stakeholder.objects.create(
        stakeholder_list=executives, name="Cleo", email="cleo@example.com"
    )


def path_of(stakeholder) -> str:
    return links.url_for(stakeholder).removeprefix(settings.SITE_URL)


def test_a_token_names_its_stakeholder_and_nothing_else(cleo):
    token = links.token_for(cleo)

    assert links.stakeholder_for(token) == cleo
    assert links.url_for(cleo) == f"{settings.SITE_URL}/unsubscribe/{token}/"
    assert links.urls_for([cleo.pk]) == {cleo.pk: links.url_for(cleo)}
    assert links.headers_for_url(links.url_for(cleo)) == {
        "List-Unsubscribe": f"<{links.url_for(cleo)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_a_tampered_or_foreign_token_is_refused(cleo, executives):
    other = Stakeholder.objects.create(stakeholder_list=executives, email="otto@example.com")
    token = links.token_for(cleo)
    forged = token.replace(token.split(":")[0], links.token_for(other).split(":")[0])
    ack_salted = signing.Signer(salt="escalation.ack").sign_object(cleo.pk)

    for bad in (forged, token[:-2], "garbage", "", ack_salted):
        assert links.stakeholder_for(bad) is None


def test_the_link_keeps_working_years_later(cleo):
    token = links.token_for(cleo)
    with time_machine.travel(T0 + timedelta(days=3 * 365), tick=False):
        assert links.stakeholder_for(token) == cleo


def test_urls_for_a_fan_out_make_no_query(cleo, django_assert_num_queries):
    with django_assert_num_queries(0):
        urls = links.urls_for(range(1, 501))
    assert len(urls) == 500


def test_a_get_shows_a_page_and_changes_nothing(client, cleo):
    response = client.get(path_of(cleo))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Executives" in page
    assert "c***@example.com" in page
    assert "cleo@example.com" not in page
    assert '<form method="post">' in page
    assert client.head(path_of(cleo)).status_code == 200  # a scanner's HEAD, too
    cleo.refresh_from_db()
    assert cleo.unsubscribed_at is None


def test_the_page_s_button_unsubscribes(client, cleo):
    with time_machine.travel(T0, tick=False):
        response = client.post(path_of(cleo), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    cleo.refresh_from_db()
    assert cleo.unsubscribed_at == T0


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_the_one_click_post_without_csrf_unsubscribes(cleo, multipart):
    mail_provider = Client(enforce_csrf_checks=True)
    if multipart:
        response = mail_provider.post(path_of(cleo), {"List-Unsubscribe": "One-Click"})
    else:
        response = mail_provider.post(
            path_of(cleo),
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )

    assert response.status_code == 200
    cleo.refresh_from_db()
    assert cleo.unsubscribed_at is not None


def test_unsubscribing_twice_keeps_the_first_time(client, cleo):
    with time_machine.travel(T0, tick=False):
        assert links.unsubscribe(cleo, now=T0) is True
    later = T0 + timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        assert links.unsubscribe(cleo, now=later) is False
        response = client.post(path_of(cleo))

    assert response.status_code == 200
    cleo.refresh_from_db()
    assert cleo.unsubscribed_at == T0
    assert "already unsubscribed" in client.get(path_of(cleo)).content.decode()


def test_a_bad_token_is_a_404_page_never_a_500(client, cleo):
    for method in (client.get, client.post):
        response = method("/unsubscribe/not-a-token/")
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
    removed = path_of(cleo)
    cleo.delete()
    assert client.post(removed).status_code == 404


# --- The admin -----------------------------------------------------------------------------

LISTS = "/admin/comms/stakeholderlist/"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="ada", is_superuser=True))
    return client


def list_form(**fields) -> dict:
    data = {
        "name": "Customers",
        "description": "",
        "is_active": "on",
        "severities": [severity("P0").pk, severity("P1").pk],
        "add_many": "",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    data.update(fields)
    return data


def test_add_many_lists_every_bad_line_and_adds_nothing(admin_client):
    lines = "ada@example.com\nnot an address\nBob <bob@>\n\nCarol <carol@example.com>"

    response = admin_client.post(f"{LISTS}add/", list_form(add_many=lines))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["add_many"]
    assert errors == [
        "Line 2: 'not an address' is not a valid email address.",
        "Line 3: 'Bob <bob@>' is not a valid email address.",
    ]
    assert not StakeholderList.objects.exists()


def test_add_many_adds_names_and_addresses_and_skips_duplicates(admin_client, executives):
    unsubscribed = Stakeholder.objects.create(
        stakeholder_list=executives, email="Dee@Example.com", unsubscribed_at=T0
    )
    lines = (
        "ada@example.com\n"
        '"Bob Builder" <bob@example.com>\n'
        "Ada Again <ADA@example.com>\n"
        "dee@example.com\n"
    )
    data = list_form(name="Executives", add_many=lines)

    response = admin_client.post(f"{LISTS}{executives.pk}/change/", data, follow=True)

    assert "Added 2 addresses to Executives. Skipped 2 already on the list or repeated." in (
        response.content.decode()
    )
    members = {(m.name, m.email) for m in executives.members.all()}
    assert members == {
        ("", "ada@example.com"),
        ("Bob Builder", "bob@example.com"),
        ("", "Dee@Example.com"),
    }
    unsubscribed.refresh_from_db()
    assert unsubscribed.unsubscribed_at == T0  # pasting an address back does not resubscribe it


def test_the_list_page_counts_members_in_constant_queries(
    admin_client, executives, django_assert_max_num_queries
):
    executives.severities.add(severity("P0"))
    for n in range(3):
        Stakeholder.objects.create(stakeholder_list=executives, email=f"p{n}@example.com")
    Stakeholder.objects.filter(email="p0@example.com").update(unsubscribed_at=T0)

    with django_assert_max_num_queries(12) as few:
        page = admin_client.get(LISTS).content.decode()
    for n in range(20):
        more = StakeholderList.objects.create(name=f"List {n}")
        more.severities.add(severity("P1"))
        Stakeholder.objects.create(stakeholder_list=more, email="x@example.com")
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(LISTS)

    assert '<td class="field-subscribed">2</td><td class="field-members">3</td>' in page


def test_resubscribe_action(admin_client, cleo):
    Stakeholder.objects.filter(pk=cleo.pk).update(unsubscribed_at=T0)

    admin_client.post(
        "/admin/comms/stakeholder/", {"action": "resubscribe", "_selected_action": [cleo.pk]}
    )

    cleo.refresh_from_db()
    assert cleo.unsubscribed_at is None
    listed = admin_client.get("/admin/comms/stakeholder/", {"subscribed": "no"})
    assert "cleo@example.com" not in listed.content.decode()


def test_an_address_is_on_a_list_once_whatever_its_case(admin_client, executives):
    Stakeholder.objects.create(stakeholder_list=executives, email="cleo@example.com")

    again = admin_client.post(
        "/admin/comms/stakeholder/add/",
        {"stakeholder_list": executives.pk, "name": "", "email": "Cleo@Example.com"},
    )
    assert again.status_code == 200
    assert "This address is already on the list." in again.content.decode()

    two_rows = list_form(
        name="Executives",
        **{
            "members-TOTAL_FORMS": "2",
            "members-0-email": "dan@example.com",
            "members-1-email": "DAN@example.com",
        },
    )
    response = admin_client.post(f"{LISTS}{executives.pk}/change/", two_rows)
    assert response.status_code == 200
    assert "This address is already on the list." in response.content.decode()
    assert list(executives.members.values_list("email", flat=True)) == ["cleo@example.com"]
