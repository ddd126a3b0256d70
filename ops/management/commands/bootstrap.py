from django.core.management import call_command
from django.core.management.base import BaseCommand

from ops.bootstrap import ensure_admin

# Default data loaded on every `make run`; each command is idempotent.
DEFAULT_DATA_COMMANDS: list[tuple[str, ...]] = [
    ("load_policy", "default", "--if-empty"),
    ("load_escalation_policies", "--missing"),
    ("load_message_templates",),
]


class Command(BaseCommand):
    help = "Create the first admin user if there is none and load the portal's default data."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@localhost")
        parser.add_argument(
            "--password", default="", help="Generated and printed when empty and no admin exists."
        )

    def handle(self, *args, **options):
        for command in DEFAULT_DATA_COMMANDS:
            call_command(*command, stdout=self.stdout)
        login = ensure_admin(options["username"], options["email"], options["password"] or None)
        if login.created:
            self.stdout.write(f"Created admin user. Login: {login.username} / {login.password}")
        else:
            self.stdout.write(
                f"Admin user exists. Login: {login.username} (password unchanged; "
                f"reset it with: python manage.py changepassword {login.username})"
            )
