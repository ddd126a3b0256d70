"""A closed incident is a finished record: nothing about it changes any more."""

import pytest

from incidents import services
from incidents.models import IncidentRole, Status, TimelineEntry
from incidents.services import IncidentError

from .factories import UserFactory, declare, incident_type, severity

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed():
    user = UserFactory()
    incident = declare(by=user, incident_type=incident_type("database-degradation"))
    services.assign_role(incident, IncidentRole.Role.SCRIBE, user, by=user)
    services.resolve_incident(incident, by=user)
    return services.change_status(incident, Status.CLOSED, by=user), user


@pytest.mark.parametrize(
    "change",
    [
        lambda i, u: services.change_severity(i, severity("P0"), by=u),
        lambda i, u: services.set_incident_type(i, incident_type("complete-outage"), by=u),
        lambda i, u: services.set_flags(i, is_security=True, by=u),
        lambda i, u: services.update_details(i, title="Rewritten", by=u),
        lambda i, u: services.add_note(i, "afterthought", by=u),
        lambda i, u: services.set_checklist_item(i.checklist.first(), done=True, by=u),
        lambda i, u: services.unassign_role(i.roles.get(), by=u),
        lambda i, u: services.correct_milestone(i, "detected", None, by=u, reason="x"),
        lambda i, u: services.acknowledge_incident(i, by=u),
        lambda i, u: services.change_status(i, Status.INVESTIGATING, by=u),
    ],
    ids=[
        "severity",
        "type",
        "flags",
        "details",
        "note",
        "checklist",
        "unassign",
        "milestone",
        "acknowledge",
        "reopen",
    ],
)
def test_a_closed_incident_refuses_every_change(closed, change):
    incident, user = closed
    entries = incident.timeline.count()

    with pytest.raises(IncidentError):
        change(incident, user)

    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    assert incident.title == "Checkout is down"
    assert incident.timeline.count() == entries


def test_an_unknown_note_kind_is_a_clear_error_and_writes_nothing():
    incident = declare()

    with pytest.raises(IncidentError) as error:
        services.add_note(incident, "text", kind="gossip", by=incident.declared_by)

    assert error.value.field == "kind"
    assert not incident.timeline.filter(kind=TimelineEntry.Kind.NOTE).exists()


def test_details_trim_the_title_and_refuse_an_unknown_detection_source():
    incident = declare()

    services.update_details(incident, title="  Payments slow  ", by=incident.declared_by)
    with pytest.raises(IncidentError) as error:
        services.update_details(incident, detection_source="rumour", by=incident.declared_by)

    incident.refresh_from_db()
    assert incident.title == "Payments slow"
    assert error.value.field == "detection_source"
