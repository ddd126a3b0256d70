"""Creating API keys and integrations (the management commands call these; the admin's add
forms save the model, the library hashing the API key)."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.text import slugify

from ops.groups import RESPONDER

from .models import ApiKey, Integration


class IntegrationError(Exception):
    """A request the admin or a command must refuse, with a message fit to show."""


@dataclass(frozen=True)
class NewKey:
    api_key: ApiKey
    key: str  # shown once; only its hash is stored


def service_user(name: str, prefix: str, group: str = RESPONDER):
    """A portal account for a script or a monitoring system, in one group, without a password."""
    User = get_user_model()
    username = f"{prefix}.{slugify(name)[:100]}"
    user, created = User.objects.get_or_create(
        username=username, defaults={"first_name": name[:150], "is_staff": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=group))
    return user


@transaction.atomic
def create_api_key(
    name: str, *, user=None, group: str = RESPONDER, expires_at: datetime | None = None
) -> NewKey:
    name = (name or "").strip()
    if not name:
        raise IntegrationError("Give the key a name.")
    owner = user or service_user(name, "api", group)
    api_key, key = ApiKey.objects.create_key(name=name, user=owner, expiry_date=expires_at)
    return NewKey(api_key, key)


@transaction.atomic
def create_integration(name: str, kind: str, **fields) -> Integration:
    name = (name or "").strip()
    if not name:
        raise IntegrationError("Give the integration a name.")
    if kind not in Integration.Kind.values:
        raise IntegrationError(f"Kind must be one of {', '.join(Integration.Kind.values)}.")
    if Integration.objects.filter(name=name).exists():
        raise IntegrationError(f"An integration named {name!r} exists.")
    return Integration.objects.create(
        name=name, kind=kind, acts_as=service_user(name, "integration"), **fields
    )


def endpoint(kind: str, key: str = "<key>") -> str:
    """Where an integration of this kind sends its alerts (the admin, the command and the
    refusal of a key sent to the wrong endpoint say the same)."""
    if kind == Integration.Kind.EVENTS:
        return "/api/v1/events/"
    return f"/api/v1/integrations/{key}/{kind}/"


def where_to_send(integration: Integration, key: str = "<key>") -> str:
    """The sentence telling an operator where to point the sender."""
    url = f"{settings.SITE_URL}{endpoint(integration.kind, key)}"
    if integration.kind == Integration.Kind.EVENTS:
        return f"POST {url} with the key as routing_key"
    return f"point {integration.kind} at {url} (or send the key as a Bearer token)"
