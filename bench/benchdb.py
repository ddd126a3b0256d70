"""What every benchmark needs: its own PostgreSQL database, created if missing, and Django."""

import sys
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
