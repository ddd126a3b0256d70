from django.core.management.base import BaseCommand, CommandError

from integrations.models import Integration
from integrations.services import IntegrationError, create_integration, where_to_send


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
        self.stdout.write(f"Integration {name!r} ({kind}): {where_to_send(integration)}. Key:")
        self.stdout.write(integration.key)
