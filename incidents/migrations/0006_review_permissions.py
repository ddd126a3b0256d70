from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

VIEW = ["view_review", "view_actionitem", "view_reviewrules"]
# Responders write reviews and their action items (a review is the team's document); closing
# the incident afterwards stays a commander's permission (close_incident).
WORK = ["change_review", "add_actionitem", "change_actionitem"]
CONFIGURE = ["change_reviewrules", "delete_actionitem"]


def forwards(apps, schema_editor):
    grant(
        apps,
        "incidents",
        {
            VIEWER: VIEW,
            RESPONDER: VIEW + WORK,
            COMMANDER: VIEW + WORK,
            ADMIN: VIEW + WORK + CONFIGURE,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("incidents", "0005_reviews")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
