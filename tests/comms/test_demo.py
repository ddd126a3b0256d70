"""The demo shows communications at work: lists, a public P0 with updates, on the status page."""

import io

import pytest
from django.core.management import call_command

from comms.models import Communication, IncidentUpdate, StakeholderList
from incidents.models import Incident

pytestmark = pytest.mark.django_db


def test_the_demo_p0_is_on_the_status_page_with_its_updates(client, settings):
    settings.DEBUG = True  # seed_demo refuses to run in production
    call_command("seed_demo", stdout=io.StringIO())
    p0 = Incident.objects.get(title="Checkout API returns 502 for all customers")
    assert p0.updates.filter(kind=IncidentUpdate.Kind.UPDATE).count() == 2
    assert set(StakeholderList.objects.values_list("name", flat=True)) == {
        "Executives",
        "Customer support",
    }
    assert Communication.objects.filter(incident=p0, audience="stakeholders").count() == 2

    page = client.get("/status/").content.decode()
    assert "Checkout unavailable" in page
    assert "identified the cause of the checkout failures" in page
    assert "returns 502" not in page  # the internal title stays internal

    call_command("seed_demo", stdout=io.StringIO())
    assert IncidentUpdate.objects.filter(incident=p0, kind=IncidentUpdate.Kind.UPDATE).count() == 2
    assert StakeholderList.objects.count() == 2
