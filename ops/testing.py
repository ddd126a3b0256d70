"""pytest plugin (``-p ops.testing``), loaded before Django starts: real PostgreSQL and Redis.

Defaults (override with the same variables):
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal   (pytest-django creates test_portal)
  REDIS_URL=redis://127.0.0.1:6379/15                       (a spare database, flushed by tests)

With CI=true an unreachable service stops the run with a clear message. Elsewhere the tests
that need it are skipped, and the reason is printed in the header and the summary.
"""

import os
import socket
from urllib.parse import urlparse

import pytest

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# The tests exercise the development configuration; production settings have their own
# tests that start fresh processes with DEBUG unset.
os.environ.setdefault("DEBUG", "true")
os.environ["HTTPS"] = "false"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> str | None:
    """None when a TCP connection opens, else a sentence saying what failed."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{parsed.scheme} at {host}:{port} is unreachable ({exc.strerror or exc})"


PROBLEMS: dict[str, str] = {}


def pytest_configure(config):
    db_url = os.environ["DATABASE_URL"]
    if db_url.startswith(("postgres", "pgsql")):
        problem = _reachable(db_url, 5432)
        if problem:
            PROBLEMS["database"] = problem
    problem = _reachable(os.environ["REDIS_URL"], 6379)
    if problem:
        PROBLEMS["redis"] = problem
    if PROBLEMS and IN_CI:
        lines = "\n".join(f"  - {name}: {text}" for name, text in PROBLEMS.items())
        pytest.exit(
            f"CI=true and a required service is missing:\n{lines}\n"
            "Start it (see .ci/run) or point DATABASE_URL / REDIS_URL at a running one.",
            returncode=3,
        )


def pytest_report_header(config):
    db = urlparse(os.environ["DATABASE_URL"])
    lines = [
        f"database: {db.scheme}://{db.hostname}:{db.port or 5432}{db.path}",
        f"redis: {os.environ['REDIS_URL']}",
    ]
    lines += [f"SKIPPING tests that need {name}: {text}" for name, text in PROBLEMS.items()]
    return lines


def _needs_database(item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(
        item.get_closest_marker("django_db")
        or fixtures & {"db", "transactional_db", "django_db_setup", "live_server", "client"}
        or fixtures & {"admin_client", "admin_user", "django_user_model"}
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "database" in PROBLEMS and _needs_database(item):
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL: {PROBLEMS['database']}"))
        elif "redis" in PROBLEMS and item.get_closest_marker("needs_redis"):
            item.add_marker(pytest.mark.skip(reason=f"needs Redis: {PROBLEMS['redis']}"))
