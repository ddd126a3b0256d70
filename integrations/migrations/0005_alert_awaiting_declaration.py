"""Alerts answered before their incident is declared (integrations/ingest.py).

The request stores the alert with the incident's id reserved and a worker declares the
incident moments later, so ``incident`` may be empty for that while; the reserved id is kept on
the alert. On PostgreSQL the whole of a trigger (counting it against the rate limit, appending
it to its open alert or opening one, reserving the id) is one function call, so one round trip
and one commit per request (docs/benchmarks.md, docs/architecture.md).
"""

from django.db import migrations, models

FUNCTIONS = ("integrations_trigger", "integrations_trigger_alert")

# integrations_trigger's outcomes: "stale" (the integration is not the version the caller read:
# nothing done), "limited" (over the limit: counted, nothing else done), "appended" (counted on
# the open alert), "opened" (a new alert awaiting its incident, whose id was reserved), "locked"
# (an open alert that needs more than a count: the caller takes the locked path).
# Each statement of a PL/pgSQL function sees what committed before it (READ COMMITTED), so the
# statements after the key's lock see the row of a concurrent opening that held it.
TRIGGER_FUNCTIONS = """
CREATE OR REPLACE FUNCTION integrations_trigger_alert(
    p_integration bigint, p_dedup_key text, p_summary text, p_source text, p_severity text,
    p_component text, p_group text, p_class text, p_details jsonb, p_payload jsonb,
    p_detected timestamptz, p_now timestamptz, p_report_after timestamptz, p_open text[],
    p_day date, OUT out_action text, OUT out_count integer, OUT out_incident text,
    OUT out_wake boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    number integer;
BEGIN
    -- The key's lock first, as integrations/ingest.py's locked path takes it (key, then the
    -- alert's row): any other order can deadlock with that path.
    PERFORM pg_advisory_xact_lock(
        hashtextextended('integrations.alert:' || p_integration || ':' || p_dedup_key, 0));
    -- An alert awaiting its incident keeps what the trigger that opened it said (the incident
    -- is declared from it, as if in the request); the latest is in last_payload.
    UPDATE integrations_alert AS a SET
        summary = CASE WHEN a.incident_id IS NULL THEN a.summary ELSE p_summary END,
        source = CASE WHEN a.incident_id IS NULL THEN a.source ELSE p_source END,
        severity = CASE WHEN a.incident_id IS NULL THEN a.severity ELSE p_severity END,
        component = CASE WHEN a.incident_id IS NULL THEN a.component ELSE p_component END,
        "group" = CASE WHEN a.incident_id IS NULL THEN a."group" ELSE p_group END,
        alert_class = CASE WHEN a.incident_id IS NULL THEN a.alert_class ELSE p_class END,
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
    PERFORM 1 FROM integrations_alert AS a
    WHERE a.integration_id = p_integration AND a.dedup_key = p_dedup_key
        AND a.status <> 'resolved';
    IF FOUND THEN
        out_action := 'locked';
        RETURN;
    END IF;
    -- The day's number, as incidents.services.next_public_id hands it out; only an alert that
    -- opens takes one, so the sequence stays without gaps.
    INSERT INTO incidents_dailysequence AS s (day, last) VALUES (p_day, 1)
    ON CONFLICT (day) DO UPDATE SET last = s.last + 1
    RETURNING s.last INTO number;
    out_incident := 'INC-' || to_char(p_day, 'YYYYMMDD') || '-'
        || lpad(number::text, greatest(3, length(number::text)), '0');
    INSERT INTO integrations_alert (
        integration_id, dedup_key, incident_id, incident_public_id, detected_at, status,
        summary, source, severity, component, "group", alert_class, custom_details,
        count, first_seen_at, last_seen_at, reported_at, unreported, last_payload)
    VALUES (
        p_integration, p_dedup_key, NULL, out_incident, p_detected, 'firing',
        p_summary, p_source, p_severity, p_component, p_group, p_class, p_details,
        1, p_now, p_now, p_now, 0, p_payload);
    -- Ask for a declaring task unless one was asked for and has not started (the model
    -- DeclarationSignal says why this is exact).
    INSERT INTO integrations_declarationsignal AS d (id, requested) VALUES (1, true)
    ON CONFLICT (id) DO UPDATE SET requested = true WHERE NOT d.requested;
    out_wake := FOUND;
    out_action := 'opened';
    out_count := 1;
END
$fn$;

CREATE OR REPLACE FUNCTION integrations_trigger(
    p_integration bigint, p_version text, p_limit integer, p_dedup_key text, p_summary text,
    p_source text, p_severity text, p_component text, p_group text, p_class text,
    p_details jsonb, p_payload jsonb, p_detected timestamptz, p_now timestamptz,
    p_report_every interval, p_open text[],
    OUT out_action text, OUT out_count integer, OUT out_incident text, OUT out_wake boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    counted integer;
    p_window timestamptz := date_trunc('minute', p_now);  -- the rate limit's minute
    p_day date := (p_now AT TIME ZONE 'UTC')::date;  -- incident ids count per UTC day
    p_report_after timestamptz := p_now - p_report_every;  -- a timeline entry is due before
BEGIN
    IF p_version IS NOT NULL THEN
        -- Read, not counted yet: the count is written last, so the integration's window row
        -- is locked only from there to the commit, never while the alert's part waits for a
        -- row or a key's lock the locked path holds (which would stall every request of the
        -- integration behind one key). Requests at the limit's edge at the same moment may
        -- each pass: the limit can be passed by the number of web processes, no more.
        SELECT coalesce(w.count, 0) INTO counted
        FROM integrations_integration AS i
        LEFT JOIN integrations_ratewindow AS w
            ON w.integration_id = i.id AND w.window_start = p_window
        WHERE i.id = p_integration AND i.xmin::text || ':' || i.ctid::text = p_version;
        IF NOT FOUND THEN
            out_action := 'stale';
            RETURN;
        END IF;
        IF p_limit > 0 AND counted >= p_limit THEN
            out_action := 'limited';
        END IF;
    END IF;
    IF out_action IS NULL THEN
        SELECT t.out_action, t.out_count, t.out_incident, t.out_wake
        INTO out_action, out_count, out_incident, out_wake
        FROM integrations_trigger_alert(
            p_integration, p_dedup_key, p_summary, p_source, p_severity, p_component, p_group,
            p_class, p_details, p_payload, p_detected, p_now, p_report_after, p_open, p_day
        ) AS t;
    END IF;
    IF p_version IS NOT NULL AND p_limit > 0 THEN
        INSERT INTO integrations_ratewindow AS w (integration_id, window_start, count)
        VALUES (p_integration, p_window, 1)
        ON CONFLICT (integration_id, window_start) DO UPDATE SET count = w.count + 1
        RETURNING w.count INTO counted;
        IF counted = 1 THEN  -- the first request of a minute forgets the earlier minutes
            DELETE FROM integrations_ratewindow
            WHERE integration_id = p_integration AND window_start < p_window;
        END IF;
    END IF;
END
$fn$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(TRIGGER_FUNCTIONS)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in FUNCTIONS:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}")


def backfill(apps, schema_editor):
    Alert = apps.get_model("integrations", "Alert")
    Incident = apps.get_model("incidents", "Incident")
    public_id = Incident.objects.filter(pk=models.OuterRef("incident_id")).values("public_id")
    Alert.objects.update(incident_public_id=models.Subquery(public_id[:1]))


class Migration(migrations.Migration):
    dependencies = [("integrations", "0004_alert_permissions")]

    operations = [
        migrations.CreateModel(
            name="DeclarationSignal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("requested", models.BooleanField(default=False)),
            ],
        ),
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
