from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

# Alerts are read-only evidence behind incidents: whoever reads incidents may read them (the
# admin still hides the alerts of security incidents the reader may not see).
VIEW = ["view_alert"]


def forwards(apps, schema_editor):
    grant(apps, "integrations", dict.fromkeys((VIEWER, RESPONDER, COMMANDER, ADMIN), VIEW))


class Migration(migrations.Migration):
    dependencies = [("integrations", "0003_alerts")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
