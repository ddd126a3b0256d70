from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

# incident-escalation-flow.md, "On-Call Handoff": the Monday handoff call, then the checklist.
CHECKLIST = (
    "Review open incidents",
    "Review scheduled maintenance",
    "Review known issues",
    "Access to PagerDuty (paging) verified",
    "Access to Railway/Portainer (hosting) verified",
    "Access to GitHub verified",
    "Access to Slack/communication channels verified",
    "Emergency contact list updated",
    "Runbook access verified",
    "Test page sent and acknowledged",
)


def forwards(apps, schema_editor):
    Item = apps.get_model("escalation", "HandoffChecklistTemplateItem")
    if not Item.objects.exists():
        Item.objects.bulk_create(
            Item(position=index, text=text) for index, text in enumerate(CHECKLIST)
        )
    view = ["view_handoff", "view_handoffchecklistitem", "view_handoffchecklisttemplateitem"]
    work = ["change_handoff", "change_handoffchecklistitem"]
    configure = [f"{action}_handoffchecklisttemplateitem" for action in ("add", "change", "delete")]
    grant(
        apps,
        "escalation",
        {
            VIEWER: view,
            RESPONDER: view + work,
            COMMANDER: view + work,
            ADMIN: view + work + configure,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("escalation", "0003_handoffs")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
