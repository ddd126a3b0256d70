from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant


def crud(model: str) -> list[str]:
    return [f"{action}_{model}" for action in ("add", "change", "delete", "view")]


# Everyone who reads incidents reads what was said about them and the status page's setup;
# commanders set a public service's state and announce maintenance; admins own templates,
# stakeholder lists and settings.
READ = [
    "view_communication",
    "view_incidentupdate",
    "view_statuspageservice",
    "view_maintenance",
]
WORK = [*READ, "view_messagetemplate", "view_stakeholderlist", "view_stakeholder"]


def forwards(apps, schema_editor):
    grant(
        apps,
        "comms",
        {
            VIEWER: READ,
            RESPONDER: WORK,
            COMMANDER: [*WORK, "change_statuspageservice", *crud("maintenance")],
            ADMIN: [
                *WORK,
                "change_messagetemplate",
                *crud("stakeholderlist"),
                *crud("stakeholder"),
                *crud("statuspageservice"),
                *crud("maintenance"),
                "view_commssettings",
                "change_commssettings",
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("comms", "0004_communications")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
