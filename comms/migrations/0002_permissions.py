from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, grant

# The delivery log is read by responders; webhooks (which hold signing secrets) are admin-only.
WEBHOOKS = [f"{action}_webhook" for action in ("add", "change", "delete", "view")]


def forwards(apps, schema_editor):
    grant(
        apps,
        "comms",
        {
            RESPONDER: ["view_notification"],
            COMMANDER: ["view_notification", "change_notification"],
            ADMIN: ["view_notification", "change_notification", *WEBHOOKS],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("comms", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
