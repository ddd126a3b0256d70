from django.db import migrations

from ops.groups import ADMIN, grant

# Keys and integrations grant access to the portal: only admins manage them.
CONFIGURE = [
    f"{action}_{model}"
    for model in ("apikey", "integration")
    for action in ("add", "change", "delete", "view")
]


def forwards(apps, schema_editor):
    grant(apps, "integrations", {ADMIN: CONFIGURE})


class Migration(migrations.Migration):
    dependencies = [("integrations", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
