"""The portal's one settings module, configured entirely from the environment.

Every variable read here is listed, with its default, in the README's configuration table.
Development (``DEBUG=true``) may fall back to embedded defaults; production never falls back
silently: a missing ``SECRET_KEY``, ``ALLOWED_HOSTS`` or ``EMAIL_URL`` stops start-up with an
error naming the variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer's local overrides; production passes real environment variables.
env_file = BASE_DIR / ".env"
if env_file.is_file():
    environ.Env.read_env(env_file)

DEBUG = env.bool("DEBUG", default=False)

# Everything the embedded mode keeps on disk (SQLite file, broker folders, static files).
VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off (production). "
            f"See the configuration table in README.md."
        )
    return value


if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
else:
    SECRET_KEY = _required("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must be set when DEBUG is off (production), "
            "e.g. ALLOWED_HOSTS=portal.example.com. See README.md."
        )

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "django_filters",
    "django_celery_beat",
    "simple_history",
    "ops",
    "incidents",
    "escalation",
    "comms",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# No DATABASE_URL: an SQLite file under var/ (embedded mode). Nothing is probed on localhost.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Short OLTP queries: PostgreSQL's JIT compile costs more than it saves (measured in
        # bench/admin_incidents.py: 25-40 ms added to the changelist query).
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "portal.sqlite3",
            "OPTIONS": {
                # web, worker and beat share one file: WAL lets readers run beside the writer,
                # IMMEDIATE transactions and a busy timeout turn lock contention into waiting.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# A past version of an incident is shown, never restored: changes go through the services.
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- Email ----------------------------------------------------------------------------------
# Production must say where mail goes; development prints it to the console.
if DEBUG:
    EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
else:
    _required("EMAIL_URL")
    EMAIL_CONFIG = env.email_url("EMAIL_URL")
vars().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Incident Portal <incidents@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- HTTPS and cookies ----------------------------------------------------------------------
# On by default in production so `manage.py check --deploy` is clean; HTTPS=false is an explicit
# choice (for example behind a proxy that already redirects).
HTTPS = env.bool("HTTPS", default=not DEBUG)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # Load balancers and uptime probes call the health endpoint over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.authentication.BearerApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Incident Portal API",
    "DESCRIPTION": "Declare, work and resolve incidents; ask who is on call; ingest alerts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "incidents.models.Status",
        "NoteKindEnum": "incidents.models.TimelineEntry.NoteKind",
        "TimelineKindEnum": "incidents.models.TimelineEntry.Kind",
        "ActionItemStatusEnum": "incidents.models.ActionItem.State",
        "AudienceEnum": "comms.models.Audience",
        "UpdateKindEnum": "comms.models.IncidentUpdate.Kind",
    },
}

# --- Celery ---------------------------------------------------------------------------------
# Why each of these is set is explained in docs/architecture.md ("Celery for reliability").
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    EMBEDDED_BROKER = False
else:
    CELERY_BROKER_URL = "filesystem://"
    EMBEDDED_BROKER = True
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }

# The engine never schedules an ETA wake-up further ahead than this; the periodic tick covers
# anything later. The Redis visibility timeout must exceed it, or an unacknowledged ETA message
# would be redelivered to a second worker while the first still holds it.
CELERY_MAX_ETA = timedelta(seconds=env.int("CELERY_MAX_ETA_SECONDS", default=3600))
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(CELERY_MAX_ETA.total_seconds()) * 2,
        # A publish from a web request (an escalation wake-up, a send) gives up quickly when
        # Redis is down: the rows are in the database and the sweep and tick catch up, so
        # declaring an incident must not hang on the broker (DESIGN.md: degrade, don't drop).
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
        "socket_connect_timeout": 2,
    }

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "comms.tasks.send_*": {"queue": "notifications"},
    "escalation.tasks.send_*": {"queue": "notifications"},
}
# Every task is idempotent (the database decides what is due), so a task is acknowledged only
# after it ran, and one whose worker died is given back to the broker rather than lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per worker process: a slow send never holds others hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BEAT_SCHEDULER = "ops.beat:HeartbeatDatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "ops.tasks.record_worker_heartbeat",
        "schedule": timedelta(seconds=10),
        "options": {"expires": 30},
    },
    "escalation-tick": {
        "task": "escalation.tasks.tick",
        "schedule": timedelta(seconds=env.int("ESCALATION_TICK_SECONDS", default=5)),
        "options": {"expires": 30},
    },
    # Incidents of alerts whose wake-up was lost (broker outage, a killed worker).
    "alert-declarations": {
        "task": "integrations.tasks.declare_alerts",
        "schedule": timedelta(seconds=env.int("ALERT_DECLARATION_SWEEP_SECONDS", default=5)),
        "options": {"expires": 30},
    },
    "outbox-sweep": {
        "task": "comms.tasks.sweep_outbox",
        "schedule": timedelta(seconds=env.int("OUTBOX_SWEEP_SECONDS", default=10)),
        "options": {"expires": 30},
    },
    "review-reminders": {
        "task": "escalation.tasks.run_reminders",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 600},
    },
    "oncall-handoffs": {
        "task": "escalation.tasks.run_handoffs",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 120},
    },
    "comms-cadence": {
        "task": "comms.tasks.run_cadence",
        "schedule": timedelta(seconds=env.int("COMMS_CADENCE_SECONDS", default=30)),
        "options": {"expires": 60},
    },
}
# Notification outbox (comms.outbox): a sender holds a row for NOTIFICATION_LEASE while it
# sends; a row whose lease ran out (its worker died) is sent again by the sweep, which leaves
# alone rows dispatched less than OUTBOX_SWEEP_GRACE ago (their task is still in the queue).
NOTIFICATION_LEASE = timedelta(seconds=env.int("NOTIFICATION_LEASE_SECONDS", default=60))
OUTBOX_SWEEP_GRACE = timedelta(seconds=env.int("OUTBOX_SWEEP_GRACE_SECONDS", default=20))
# Rows sent by one task over one SMTP connection (a stakeholder fan-out is a few tasks, not one
# per address). A batch must finish well inside NOTIFICATION_LEASE.
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=50)
# Acknowledge links in escalation emails stop working after this.
ACK_LINK_MAX_AGE = timedelta(hours=env.int("ACK_LINK_MAX_AGE_HOURS", default=24))
# A heartbeat older than this marks the worker or beat as degraded on /api/health.
HEARTBEAT_MAX_AGE = timedelta(seconds=env.int("HEARTBEAT_MAX_AGE_SECONDS", default=60))

# --- Logging: stdout, one line per event, with the incident id where there is one ------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"incident": {"()": "config.logging.IncidentContextFilter"}},
    "formatters": {
        "line": {
            "()": "config.logging.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s incident=%(incident)s %(message)s",
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "line",
            "filters": ["incident"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL},
    },
}
