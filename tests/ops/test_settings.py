"""The settings module as operators meet it: fresh processes with only environment variables."""

import subprocess
import sys

from tests.conftest import ROOT

PRODUCTION = {
    "SECRET_KEY": "x7Kp2QvL9mZr4TsW8yBn3HcJ6dFg1AeU5oIq0VlXwYtRkPsMzNbCaDjEhGfQ",
    "ALLOWED_HOSTS": "portal.example.com",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
    "DATABASE_URL": "postgres://portal:secret@db.example.com:5432/portal",
    "REDIS_URL": "redis://cache.example.com:6379/0",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "PORTAL_VAR_DIR": str(ROOT / "var" / "test-settings")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def print_settings(*expressions: str, env: dict[str, str]) -> list[str]:
    """repr() of each expression, evaluated with ``s`` bound to django.conf.settings."""
    code = "from django.conf import settings as s; " + "; ".join(
        f"print(repr({expression}))" for expression in expressions
    )
    result = run_manage("shell", "--no-imports", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    env = {k: v for k, v in PRODUCTION.items() if k != "ALLOWED_HOSTS"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_production_refuses_to_start_without_an_email_url():
    env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_URL"}

    result = run_manage("check", env=env)

    assert result.returncode != 0
    assert "EMAIL_URL must be set" in result.stderr


def test_check_deploy_prints_no_warnings_in_production():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_uses_postgres_redis_and_whitenoise_from_the_environment():
    engine, broker, storage, debug = print_settings(
        "s.DATABASES['default']['ENGINE']",
        "s.CELERY_BROKER_URL",
        "s.STORAGES['staticfiles']['BACKEND']",
        "s.DEBUG",
        env=PRODUCTION,
    )

    assert engine == "'django.db.backends.postgresql'"
    assert broker == "'redis://cache.example.com:6379/0'"
    assert storage == "'whitenoise.storage.CompressedManifestStaticFilesStorage'"
    assert debug == "False"


def test_with_no_services_configured_it_uses_embedded_sqlite_and_an_on_disk_broker(tmp_path):
    env = {"DEBUG": "true", "PORTAL_VAR_DIR": str(tmp_path)}

    engine, name, broker, folder = print_settings(
        "s.DATABASES['default']['ENGINE']",
        "str(s.DATABASES['default']['NAME'])",
        "s.CELERY_BROKER_URL",
        "s.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']",
        env=env,
    )

    assert engine == "'django.db.backends.sqlite3'"
    assert name == repr(str(tmp_path / "portal.sqlite3"))
    assert broker == "'filesystem://'"
    assert folder == repr(str(tmp_path / "broker" / "queue"))
