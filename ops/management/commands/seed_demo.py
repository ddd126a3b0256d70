import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from comms.demo import seed_comms_demo, seed_status_page
from escalation.demo import seed_oncall_demo
from incidents.demo import DEFAULT_DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = (
        "Fill the portal with demo users in every group, incidents in flight, a primary and a "
        "backup on-call rotation and the org roles' holders. "
        "Safe to run again: nothing is created twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            default="",
            help="Shared password of the demo users (default: $DEMO_PASSWORD, "
            f"else {DEFAULT_DEMO_PASSWORD!r}).",
        )

    def handle(self, *args, password, **options):
        # Staff accounts with a printed shared password must never reach a production portal.
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates staff accounts with a shared password; "
                "it runs only with DEBUG=true."
            )
        password = password or os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
        seed = seed_demo(password=password)
        oncall = seed_oncall_demo()
        now = timezone.now()
        comms = seed_status_page(now) + seed_comms_demo(now)

        if seed.created_incidents:
            self.stdout.write(f"Created incidents: {', '.join(seed.created_incidents)}.")
        if seed.existing_incidents:
            self.stdout.write(f"Already there: {', '.join(seed.existing_incidents)}.")
        if seed.created_users:
            self.stdout.write(f"Created users: {', '.join(seed.created_users)}.")
        if oncall:
            self.stdout.write(f"Created on-call data: {', '.join(oncall)}.")
        if comms:
            self.stdout.write(f"Created communications data: {', '.join(comms)}.")

        rows = [("login", "name", "groups", "email")] + [
            (person.username, person.full_name, ", ".join(person.groups), person.email)
            for person in seed.people
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        self.stdout.write("")
        for index, row in enumerate(rows):
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
            if index == 0:
                self.stdout.write("  ".join("-" * width for width in widths))
        self.stdout.write("")
        self.stdout.write(f"Every demo user logs in with the password: {seed.password}")
