from django.core.management.base import BaseCommand, CommandError

from escalation.loader import ensure_policies, load_preset_policies
from escalation.policies import PRESET_POLICIES
from incidents.models import SeverityLevel


class Command(BaseCommand):
    help = (
        "Load the runbooks' escalation matrix into the escalation policies of the active "
        "severity levels (and the security / data-loss rules)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--missing",
            action="store_true",
            help="Only create policies that do not exist; leave edited ones alone.",
        )

    def handle(self, *args, missing, **options):
        if missing:
            loaded = ensure_policies()
        else:
            levels = list(SeverityLevel.objects.filter(is_active=True))
            if not levels:
                raise CommandError("No active severity levels: run load_policy first.")
            loaded = []
            for preset in sorted({level.preset for level in levels}):
                if preset not in PRESET_POLICIES:
                    raise CommandError(f"No escalation defaults for preset {preset!r}.")
                codes = [level.code for level in levels if level.preset == preset]
                loaded += load_preset_policies(preset, codes)
        if loaded:
            self.stdout.write(f"Escalation policies loaded: {', '.join(loaded)}.")
        else:
            self.stdout.write("Escalation policies exist; left as they are.")
