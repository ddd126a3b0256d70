from django.core.management.base import BaseCommand, CommandError

from incidents.policy import UnknownPreset, load_playbooks, load_policy
from incidents.presets import PRESETS


class Command(BaseCommand):
    help = "Load a severity scale from the runbooks: " + ", ".join(
        f"{name} ({preset.title})" for name, preset in PRESETS.items()
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"One of: {', '.join(PRESETS)}")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when a severity scale exists."
        )

    def handle(self, *args, name, if_empty, **options):
        try:
            result = load_policy(name, only_if_empty=if_empty)
        except UnknownPreset as exc:
            raise CommandError(str(exc)) from exc
        types = load_playbooks()
        if result.skipped:
            self.stdout.write("Severity scale exists; left as it is.")
        else:
            self.stdout.write(
                f"Loaded policy {result.preset}: created {result.created or 'none'}, "
                f"updated {result.updated or 'none'}, deactivated {result.deactivated or 'none'}."
            )
        if types:
            self.stdout.write(f"Added incident types: {', '.join(types)}.")
