"""What every benchmark needs: its own PostgreSQL database, created if missing, and Django."""

import random
import sys
from datetime import timedelta
from urllib.parse import unquote, urlparse


def ensure_database(url: str, emptied: str) -> str:
    """Create the benchmark database if it does not exist; return its name."""
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        sys.exit(
            f"Refusing database {name!r}: this benchmark empties the {emptied} of the "
            "database it uses. Point DATABASE_URL at a database whose name contains 'bench'."
        )
    params = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": unquote(parsed.username or "postgres"),
        "dbname": "postgres",
        "autocommit": True,
    }
    if parsed.password:
        params["password"] = unquote(parsed.password)
    with psycopg.connect(**params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"Created database {name}.")
    return name


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pick_status(
    rng: random.Random, age: timedelta, *, old_open: float = 0.02, old_resolved: float = 0.08
) -> str:
    """Recent incidents are often still open; old ones are almost all resolved or closed."""
    from incidents.models import Status

    roll = rng.random()
    if age < timedelta(days=3):
        open_share, resolved_share = 0.5, 0.3
    else:
        open_share, resolved_share = old_open, old_resolved
    if roll < open_share:
        return rng.choice(
            [Status.INVESTIGATING, Status.IDENTIFIED, Status.FIXING, Status.MONITORING]
        )
    if roll < open_share + resolved_share:
        return Status.RESOLVED
    return Status.CLOSED


def update_daily_sequences() -> None:
    """Keep the per-day counters true, so declaring on a filled database still works."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO incidents_dailysequence (day, last) "
            "SELECT day, MAX(sequence) FROM incidents_incident GROUP BY day "
            "ON CONFLICT (day) DO UPDATE SET last = EXCLUDED.last"
        )
        cursor.execute("ANALYZE")


def empty_incident_tables(*also: str) -> None:
    """Empty the incidents (and the tables in ``also``) and restart their ids. CASCADE takes
    alerts, escalations, fired steps, notifications, timelines, roles ... with them."""
    from django.db import connection

    tables = ", ".join(
        ["incidents_incident", "incidents_historicalincident", "incidents_dailysequence", *also]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
