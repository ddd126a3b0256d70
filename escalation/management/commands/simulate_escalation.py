import json
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from escalation import planner, policies
from escalation.services import resolve_targets

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
        steps = policies.steps_for(
            options["severity"], security=options["security"], data_loss=options["data_loss"]
        )
        if not steps and options["severity"] not in policies.DEFAULT_POLICIES:
            raise CommandError(f"No escalation policy for severity {options['severity']!r}.")
        firings = planner.timeline(
            steps,
            declared_at,
            acknowledged_after=parse_offset(options["ack_after"]) if options["ack_after"] else None,
            resolved_after=parse_offset(options["resolve_after"])
            if options["resolve_after"]
            else None,
        )
        rows = []
        for firing in firings:
            resolved = resolve_targets(firing.step.targets, firing.due_at)
            people = [person for target in resolved for person in target.people]
            for channel in firing.step.channels:
                rows.append(
                    {
                        "offset_seconds": int((firing.due_at - declared_at).total_seconds()),
                        "step": firing.step.label or firing.step.key,
                        "targets": [target.label for target in resolved],
                        "recipients": sorted({p.email for p in people if p.email}),
                        "channel": channel,
                        "gaps": [t.label for t in resolved if not t.people],
                    }
                )
        if options["json"]:
            keys = ("offset_seconds", "step", "targets", "recipients", "channel")
            self.stdout.write(json.dumps([{k: row[k] for k in keys} for row in rows], indent=2))
            return
        if not rows:
            self.stdout.write("Nothing would fire.")
        for row in rows:
            offset = timedelta(seconds=row["offset_seconds"])
            who = ", ".join(row["recipients"]) or "NOBODY"
            gap = f"  (nobody holds: {', '.join(row['gaps'])})" if row["gaps"] else ""
            self.stdout.write(f"+{offset}  {row['step']}  -> {who} [{row['channel']}]{gap}")
