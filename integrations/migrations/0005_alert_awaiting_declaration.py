"""Alerts answered before their incident is declared (integrations/ingest.py).

The request stores the alert with the incident's id reserved and a worker declares the
incident moments later, so ``incident`` may be empty for that while; the reserved id is kept on
the alert. On PostgreSQL the whole of a trigger (counting it against the rate limit, appending
it to its open alert or opening one, reserving the id) is one function call, so one round trip
and one commit per request (docs/benchmarks.md).
"""

from django.db import migrations, models

FUNCTION = "integrations_trigger"

# Outcomes: "stale" (the integration is not the version the caller read: nothing done),
# "limited" (counted, over the limit: nothing else done), "appended" (counted on the open
# alert), "opened" (a new alert awaiting its incident, whose id was reserved), "locked" (an open
# alert that needs more than a count: the caller takes the locked path).
# Each statement of a PL/pgSQL function sees what committed before it (READ COMMITTED), so
# the second UPDATE finds the row of a concurrent opening that the INSERT waited for.
TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION integrations_trigger(
    p_integration bigint, p_version text, p_limit integer, p_window timestamptz,
    p_dedup_key text, p_summary text, p_source text, p_severity text, p_component text,
    p_group text, p_class text, p_details jsonb, p_payload jsonb, p_detected timestamptz,
    p_now timestamptz, p_report_after timestamptz, p_open text[], p_day date,
    OUT out_action text, OUT out_count integer, OUT out_incident text
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    new_id bigint;
    number integer;
BEGIN
    IF p_version IS NOT NULL THEN
        IF p_limit > 0 THEN
            INSERT INTO integrations_ratewindow AS w (integration_id, window_start, count)
            SELECT i.id, p_window, 1 FROM integrations_integration AS i
            WHERE i.id = p_integration AND i.xmin::text || ':' || i.ctid::text = p_version
            ON CONFLICT (integration_id, window_start) DO UPDATE SET count = w.count + 1
            RETURNING w.count INTO out_count;
        ELSE
            SELECT 0 INTO out_count FROM integrations_integration AS i
            WHERE i.id = p_integration AND i.xmin::text || ':' || i.ctid::text = p_version;
        END IF;
        IF NOT FOUND THEN
            out_action := 'stale';
            RETURN;
        END IF;
        IF out_count = 1 THEN  -- the first request of a minute forgets the earlier minutes
            DELETE FROM integrations_ratewindow
            WHERE integration_id = p_integration AND window_start < p_window;
        END IF;
        IF p_limit > 0 AND out_count > p_limit THEN
            out_action := 'limited';
            RETURN;
        END IF;
    END IF;
    FOR attempt IN 1..2 LOOP
        UPDATE integrations_alert AS a SET
            summary = p_summary, source = p_source, severity = p_severity,
            component = p_component, "group" = p_group, alert_class = p_class,
            custom_details = p_details, last_payload = p_payload, last_seen_at = p_now,
            count = a.count + 1, unreported = a.unreported + 1
        WHERE a.integration_id = p_integration AND a.dedup_key = p_dedup_key
            AND a.status <> 'resolved' AND a.reported_at > p_report_after
            AND (a.incident_id IS NULL OR EXISTS (
                SELECT 1 FROM incidents_incident AS inc
                WHERE inc.id = a.incident_id AND inc.status = ANY (p_open)))
        RETURNING a.count, a.incident_public_id INTO out_count, out_incident;
        IF FOUND THEN
            out_action := 'appended';
            RETURN;
        END IF;
        EXIT WHEN attempt = 2;
        INSERT INTO integrations_alert (
            integration_id, dedup_key, incident_id, incident_public_id, detected_at, status,
            summary, source, severity, component, "group", alert_class, custom_details,
            count, first_seen_at, last_seen_at, reported_at, unreported, last_payload)
        VALUES (
            p_integration, p_dedup_key, NULL, '', p_detected, 'firing',
            p_summary, p_source, p_severity, p_component, p_group, p_class, p_details,
            1, p_now, p_now, p_now, 0, p_payload)
        ON CONFLICT DO NOTHING
        RETURNING id INTO new_id;
        IF new_id IS NOT NULL THEN
            -- The day's number, as incidents.services.next_public_id hands it out: only for
            -- an alert that opens, so the sequence stays without gaps.
            INSERT INTO incidents_dailysequence AS s (day, last) VALUES (p_day, 1)
            ON CONFLICT (day) DO UPDATE SET last = s.last + 1
            RETURNING s.last INTO number;
            out_incident := 'INC-' || to_char(p_day, 'YYYYMMDD') || '-'
                || lpad(number::text, greatest(3, length(number::text)), '0');
            UPDATE integrations_alert SET incident_public_id = out_incident WHERE id = new_id;
            out_action := 'opened';
            out_count := 1;
            RETURN;
        END IF;
    END LOOP;
    out_action := 'locked';
    out_count := NULL;
END
$fn$
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(TRIGGER_FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")


def backfill(apps, schema_editor):
    Alert = apps.get_model("integrations", "Alert")
    Incident = apps.get_model("incidents", "Incident")
    public_id = Incident.objects.filter(pk=models.OuterRef("incident_id")).values("public_id")
    Alert.objects.update(incident_public_id=models.Subquery(public_id[:1]))


class Migration(migrations.Migration):
    dependencies = [("integrations", "0004_alert_permissions")]

    operations = [
        migrations.AlterField(
            model_name="alert",
            name="incident",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="alerts",
                to="incidents.incident",
            ),
        ),
        migrations.AddField(
            model_name="alert",
            name="incident_public_id",
            field=models.CharField(
                default="",
                help_text="Reserved when the alert opened the incident.",
                max_length=20,
                verbose_name="incident id",
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="alert",
            name="detected_at",
            field=models.DateTimeField(
                blank=True, help_text="When the sender says the problem began.", null=True
            ),
        ),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                condition=models.Q(("incident__isnull", True)),
                fields=["first_seen_at"],
                name="alert_awaiting_declaration",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(create_function, drop_function),
    ]
