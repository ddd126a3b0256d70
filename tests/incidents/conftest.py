import pytest

from incidents.signals import incident_changed


@pytest.fixture(autouse=True)
def incidents_alone():
    """These tests read the incidents app's own record. Communications follows every incident
    through ``incident_changed`` (war room, resolution notice: its own timeline entries); its
    behaviour is tested in tests/comms, so here it is disconnected."""
    from comms import receivers

    incident_changed.disconnect(dispatch_uid="comms.follow")
    yield
    incident_changed.connect(receivers._on_incident_changed, dispatch_uid="comms.follow")
