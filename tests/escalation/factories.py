"""Valid minimal rotations; rosters and overrides go through the services, as the admin does."""

from datetime import UTC, date, datetime

import factory

from escalation import services
from escalation.models import Rotation
from tests.incidents.factories import UserFactory

# Before every rotation the tests build, so a roster set "since" then covers all their shifts.
LONG_AGO = datetime(2025, 12, 1, tzinfo=UTC)


class RotationFactory(factory.django.DjangoModelFactory):
    """The runbook's default: weekly, handing over Monday 00:00 UTC, from Monday 5 January 2026."""

    class Meta:
        model = Rotation

    name = factory.Sequence(lambda n: f"Rotation {n}")
    starts_on = date(2026, 1, 5)


def rotation_with(*users, effective_at: datetime = LONG_AGO, **fields) -> Rotation:
    rotation = RotationFactory(**fields)
    services.set_rotation_members(rotation, list(users), effective_at=effective_at)
    return rotation


__all__ = ["LONG_AGO", "RotationFactory", "UserFactory", "rotation_with"]
