from django.core.management.base import BaseCommand

from comms.rendering import ensure_templates


class Command(BaseCommand):
    help = (
        "Create a row for each message template the portal ships and bring the ones nobody "
        "edited up to date with the shipped text. Edited templates are left alone."
    )

    def handle(self, *args, **options):
        changed = ensure_templates()
        self.stdout.write(f"Message templates: {changed} created or updated.")
