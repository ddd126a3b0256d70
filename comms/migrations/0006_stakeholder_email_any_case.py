"""One stakeholder per address and list whatever the address's case.

Addresses already on a list twice in different cases are merged first: the row kept is one
that unsubscribed (an opt-out is honoured), else the oldest.
"""

import django.db.models.functions.text
from django.db import migrations, models
from django.db.models.functions import Lower


def merge_case_duplicates(apps, schema_editor):
    Stakeholder = apps.get_model("comms", "Stakeholder")
    seen: set[tuple[int, str]] = set()
    rows = Stakeholder.objects.order_by(
        "stakeholder_list_id",
        Lower("email"),
        models.F("unsubscribed_at").asc(nulls_last=True),
        "pk",
    )
    for member in rows.iterator():
        key = (member.stakeholder_list_id, member.email.lower())
        if key in seen:
            member.delete()
        else:
            seen.add(key)


class Migration(migrations.Migration):
    dependencies = [("comms", "0005_communication_permissions")]

    operations = [
        migrations.RunPython(merge_case_duplicates, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="stakeholder", name="stakeholder_once_per_list"),
        migrations.AddConstraint(
            model_name="stakeholder",
            constraint=models.UniqueConstraint(
                models.F("stakeholder_list"),
                django.db.models.functions.text.Lower("email"),
                name="stakeholder_once_per_list",
                violation_error_message="This address is already on the list.",
            ),
        ),
    ]
