from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

# Everyone who works incidents may read policies and what fired; only admins edit policies.
VIEW = [f"view_{m}" for m in ("escalationpolicy", "escalationstep", "escalation", "firedstep")]
CONFIGURE = [
    f"{action}_{model}"
    for model in ("escalationpolicy", "escalationstep")
    for action in ("add", "change", "delete")
]


def forwards(apps, schema_editor):
    grant(
        apps,
        "escalation",
        {VIEWER: VIEW, RESPONDER: VIEW, COMMANDER: VIEW, ADMIN: VIEW + CONFIGURE},
    )


class Migration(migrations.Migration):
    dependencies = [("escalation", "0006_escalation_engine")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
