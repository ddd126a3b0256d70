from django.db import migrations

from ops.groups import ADMIN, COMMANDER, RESPONDER, VIEWER, grant

VIEW = [
    "view_incident",
    "view_historicalincident",
    "view_timelineentry",
    "view_checklistitem",
    "view_incidentrole",
    "view_severitylevel",
    "view_incidenttype",
    "view_checklisttemplateitem",
    "view_service",
    "view_businesscalendar",
]
WORK = [
    "add_incident",
    "change_incident",
    "add_timelineentry",
    "change_checklistitem",
    "add_incidentrole",
    "change_incidentrole",
    "add_service",
]
LEAD = ["change_incident_severity", "close_incident"]
CONFIGURE = [
    f"{action}_{model}"
    for model in (
        "severitylevel",
        "incidenttype",
        "checklisttemplateitem",
        "service",
        "businesscalendar",
    )
    for action in ("add", "change", "delete")
]


def grant_groups(apps, schema_editor):
    grant(
        apps,
        "incidents",
        {
            VIEWER: VIEW,
            RESPONDER: VIEW + WORK,
            COMMANDER: VIEW + WORK + LEAD,
            ADMIN: VIEW + WORK + LEAD + CONFIGURE,
        },
    )


# The timeline is append-only: a row's content can never be changed by any client. Only
# author_id may change, so deleting a user can still SET NULL their authorship.
PG_FORWARD = """
CREATE FUNCTION incidents_timeline_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'timeline entries are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER incidents_timeline_no_update
    BEFORE UPDATE OF incident_id, at, kind, note_kind, body, data ON incidents_timelineentry
    FOR EACH ROW EXECUTE FUNCTION incidents_timeline_append_only();
"""
PG_REVERSE = """
DROP TRIGGER incidents_timeline_no_update ON incidents_timelineentry;
DROP FUNCTION incidents_timeline_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER incidents_timeline_no_update
BEFORE UPDATE OF incident_id, at, kind, note_kind, body, data ON incidents_timelineentry
BEGIN
    SELECT RAISE(ABORT, 'timeline entries are append-only');
END;
"""
SQLITE_REVERSE = "DROP TRIGGER incidents_timeline_no_update;"


def add_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def drop_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(add_trigger, drop_trigger),
        migrations.RunPython(grant_groups, migrations.RunPython.noop),
    ]
