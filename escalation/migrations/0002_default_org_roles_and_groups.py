from django.db import migrations

from escalation.defaults import ORG_ROLES
from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

VIEW = [
    f"view_{m}" for m in ("contactprofile", "rotation", "rotationmember", "override", "orgrole")
]
WORK = ["add_override", "change_override", "delete_override", "view_override"]
CONFIGURE = [
    f"{action}_{model}"
    for model in ("contactprofile", "rotation", "rotationmember", "orgrole")
    for action in ("add", "change", "delete")
]


def forwards(apps, schema_editor):
    OrgRole = apps.get_model("escalation", "OrgRole")
    for position, (slug, name, description) in enumerate(ORG_ROLES):
        OrgRole.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )
    grant(
        apps,
        "escalation",
        {
            VIEWER: VIEW,
            RESPONDER: VIEW + WORK,
            COMMANDER: VIEW + WORK,
            ADMIN: VIEW + WORK + CONFIGURE,
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("escalation", "0001_initial"),
        ("incidents", "0002_timeline_append_only_and_groups"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
