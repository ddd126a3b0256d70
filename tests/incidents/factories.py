"""Valid minimal objects; incidents are made through the declare service, as users make them."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from incidents import services
from incidents.models import IncidentType, SeverityLevel
from incidents.policy import load_playbooks, load_policy


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = "Tester"
    is_staff = True
    password = factory.django.Password("pw-for-tests-123")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))


def default_policy() -> None:
    """The shipped P0-P3 scale and the runbooks' incident types."""
    load_policy("default")
    load_playbooks()


def severity(code: str = "P1") -> SeverityLevel:
    if not SeverityLevel.objects.filter(code=code).exists():
        default_policy()
    return SeverityLevel.objects.get(code=code)


def incident_type(slug: str = "complete-outage") -> IncidentType:
    if not IncidentType.objects.filter(slug=slug).exists():
        default_policy()
    return IncidentType.objects.get(slug=slug)


def declare(title: str = "Checkout is down", code: str = "P1", by=None, **kwargs):
    by = by or UserFactory()
    return services.declare_incident(title=title, severity=severity(code), by=by, **kwargs)
