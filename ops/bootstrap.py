"""What `make run` does before it starts the processes: an admin to log in with, default data."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str | None  # None when the account already existed: its password is not ours to show
    created: bool


@transaction.atomic
def ensure_admin(username: str, email: str, password: str | None) -> AdminLogin:
    """Create a superuser unless one exists; a missing password is generated and returned once."""
    User = get_user_model()
    existing = User.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return AdminLogin(existing.get_username(), None, created=False)
    password = password or secrets.token_urlsafe(12)
    User.objects.create_superuser(username=username, email=email, password=password)
    return AdminLogin(username, password, created=True)
