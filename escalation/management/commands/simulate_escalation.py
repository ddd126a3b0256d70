import json
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from escalation.preview import NoPolicy, simulate, steps_for_incident

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_offset(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text or "")
    if not match:
        raise CommandError(f"{text!r} is not a duration like 90s, 20m, 5h or 2d.")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = (
        "Show, without sending anything, every escalation step that would fire for an incident "
        "declared now (or --at): offset, step, recipients and channel."
    )

    def add_arguments(self, parser):
        parser.add_argument("--severity", required=True, help="P0, P1, ... of the policy")
        parser.add_argument("--security", action="store_true")
        parser.add_argument("--data-loss", action="store_true")
        parser.add_argument("--ack-after", help="acknowledged this long after declaration")
        parser.add_argument("--resolve-after", help="resolved this long after declaration")
        parser.add_argument("--at", help="declaration time, ISO-8601 with a zone")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        declared_at = timezone.now()
        if options["at"]:
            try:
                declared_at = parse_datetime(options["at"])
            except ValueError:
                declared_at = None
            if declared_at is None or timezone.is_naive(declared_at):
                raise CommandError("--at needs an ISO-8601 time with a zone, e.g. ...T03:00Z.")
        try:
            steps = steps_for_incident(
                options["severity"], security=options["security"], data_loss=options["data_loss"]
            )
        except NoPolicy as exc:
            raise CommandError(str(exc)) from exc
        rows = simulate(
            steps,
            declared_at,
            acknowledged_after=parse_offset(options["ack_after"]) if options["ack_after"] else None,
            resolved_after=parse_offset(options["resolve_after"])
            if options["resolve_after"]
            else None,
        )
        if options["json"]:
            self.stdout.write(json.dumps([row.as_dict() for row in rows], indent=2))
            return
        if not rows:
            self.stdout.write("Nothing would fire.")
        for row in rows:
            who = ", ".join(row.recipients) or "NOBODY"
            gap = f"  (nobody holds: {', '.join(row.gaps)})" if row.gaps else ""
            self.stdout.write(f"+{row.offset}  {row.step}  -> {who} [{row.channel}]{gap}")
