import pytest

from escalation.defaults import ORG_ROLES
from escalation.models import OrgRole
from tests.incidents.factories import severity

from .factories import UserFactory, rotation_with


@pytest.fixture
def organisation():
    """Everybody the runbook matrix names: olive and otto take turns on call (backup bea), and
    one holder for each lead role. Weekly from Monday 5 January 2026, olive first."""
    # A transactional test before this one flushed the migrations' rows: put the roles back.
    for slug, name, _ in (("on-call-engineer", "On-Call Engineer", ""), *ORG_ROLES):
        OrgRole.objects.get_or_create(slug=slug, defaults={"name": name})
    people = {
        name: UserFactory(username=name, email=f"{name}@example.com")
        for name in ("olive", "otto", "bea", "dev", "back", "em", "cto", "sec")
    }
    backup = rotation_with(people["bea"], name="Backup")
    primary = rotation_with(people["olive"], people["otto"], name="Primary", backup=backup)
    OrgRole.objects.filter(slug="on-call-engineer").update(rotation=primary)
    for slug, name in (
        ("devops-lead", "dev"),
        ("backend-lead", "back"),
        ("engineering-manager", "em"),
        ("cto", "cto"),
        ("security-team", "sec"),
    ):
        OrgRole.objects.get(slug=slug).holders.set([people[name]])
    people["primary"], people["backup"] = primary, backup
    severity("P0")  # the default scale and its escalation policies
    return people
