from django.db import migrations


def forwards(apps, schema_editor):
    OrgRole = apps.get_model("escalation", "OrgRole")
    OrgRole.objects.get_or_create(
        slug="on-call-engineer",
        defaults={
            "name": "On-Call Engineer",
            "description": "Whoever is on call in the primary rotation: first to be paged "
            "for every incident (incident-response-guide.md, Emergency Contacts). Point this "
            "role at the primary rotation; its backup rotation is 'backup on call'.",
            "position": 0,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("escalation", "0004_handoff_checklist_defaults")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
