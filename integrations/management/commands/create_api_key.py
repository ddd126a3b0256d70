from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from integrations.services import IntegrationError, create_api_key
from ops.groups import ALL_GROUPS, RESPONDER


class Command(BaseCommand):
    help = (
        "Create an API key and print it (last line). It acts as --user, or as a new service "
        "account in --group. Send it as 'Authorization: Bearer <key>'."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--user", help="username the key acts as")
        parser.add_argument("--group", default=RESPONDER, choices=ALL_GROUPS)
        parser.add_argument("--expires-in-days", type=int)

    def handle(self, *args, name, user, group, expires_in_days, **options):
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user {user!r}.")
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days <= 0:
                raise CommandError("--expires-in-days must be positive.")
            expires_at = timezone.now() + timedelta(days=expires_in_days)
        try:
            new = create_api_key(name, user=owner, group=group, expires_at=expires_at)
        except IntegrationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"API key {name!r} acts as {new.api_key.user.username}"
            + (f", expires {expires_at:%Y-%m-%d}" if expires_at else "")
            + ". It is shown once; store it now:"
        )
        self.stdout.write(new.key)
