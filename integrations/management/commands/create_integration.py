from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.models import Integration
from integrations.services import IntegrationError, create_integration


class Command(BaseCommand):
    help = "Create a monitoring integration and print its key (last line)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", required=True, choices=Integration.Kind.values)

    def handle(self, *args, name, kind, **options):
        try:
            integration = create_integration(name, kind)
        except IntegrationError as exc:
            raise CommandError(str(exc)) from exc
        base = f"{settings.SITE_URL}/api/v1"
        if kind == Integration.Kind.EVENTS:
            where = f"POST {base}/events/ with this key as routing_key"
        else:
            where = f"point {kind} at {base}/integrations/<key>/{kind}/"
        self.stdout.write(f"Integration {name!r} ({kind}): {where}. Key:")
        self.stdout.write(integration.key)
