import json as jsonlib

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from escalation.models import Rotation
from escalation.services import on_call


class Command(BaseCommand):
    help = "Print who is on call now (or --at an instant) in every rotation or the named one."

    def add_arguments(self, parser):
        parser.add_argument("rotation", nargs="?", help="Rotation name (default: all)")
        parser.add_argument("--at", help="ISO-8601 instant, e.g. 2026-11-23T03:00:00Z")
        parser.add_argument("--json", action="store_true", help="Machine-readable output")

    def handle(self, *args, rotation=None, at=None, json=False, **options):
        when = timezone.now()
        if at:
            try:
                when = parse_datetime(at)
            except ValueError:  # well-formed but impossible, e.g. 30 February
                when = None
            if when is None:
                raise CommandError(f"--at {at!r} is not an ISO-8601 date and time.")
            if timezone.is_naive(when):
                raise CommandError("--at needs a time zone, e.g. 2026-11-23T03:00:00Z.")
        rotations = Rotation.objects.all()
        if rotation:
            rotations = rotations.filter(name=rotation)
            if not rotations.exists():
                raise CommandError(f"No rotation named {rotation!r}.")
        answers = on_call(rotations, when)
        if json:
            self.stdout.write(_json([_as_dict(answer) for answer in answers]))
            return
        for answer in answers:
            who = "NOBODY (gap)" if answer.is_gap else _name(answer.user)
            cover = " (override)" if answer.is_override else ""
            self.stdout.write(
                f"{answer.rotation.name}: {who}{cover} "
                f"from {answer.since:%Y-%m-%d %H:%M} to {answer.until:%Y-%m-%d %H:%M} UTC"
            )


def _name(user) -> str:
    full = user.get_full_name()
    return f"{full} ({user.get_username()})" if full else user.get_username()


def _as_dict(answer) -> dict:
    users = [] if answer.is_gap else [answer.user]
    return {
        "rotation": answer.rotation.name,
        "on_call": [user.get_username() for user in users],
        "emails": [user.email for user in users if user.email],
        "since": answer.since.isoformat(),
        "until": answer.until.isoformat(),
        "gap": answer.is_gap,
    }


def _json(value) -> str:
    return jsonlib.dumps(value, indent=2)
