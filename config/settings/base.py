"""Settings shared by every environment, read once through django-environ."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".dev"):
    # `make run` writes the addresses of the private PostgreSQL and Redis it started here.
    env.read_env(str(VAR_DIR / "dev.env"), overwrite=False)

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-dev-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
# The public address Optimove and providers reach us at; listener URLs are built from it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# DATABASE (PostgreSQL only: the fast paths use COPY and SKIP LOCKED)
# ------------------------------------------------------------------------------
# Django's PostgreSQL backend with a health check that needs no round trip (apps/core/db/base.py).
DATABASE_ENGINE = "apps.core.db"
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/optimove_partner", engine=DATABASE_ENGINE
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
]
THIRD_PARTY_APPS = ["rest_framework", "django_celery_beat", "anymail"]
LOCAL_APPS = [
    "apps.core",
    "apps.clients",
    "apps.optimove",
    "apps.sandbox",
    "apps.channels",
    "apps.message_templates",
    "apps.campaigns",
    "apps.subscriptions",
    "apps.delivery",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# What only the admin's browsers need; Optimove's listener URL goes without it (apps.core.wsgi).
BROWSER_MIDDLEWARE = [
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    *BROWSER_MIDDLEWARE,
]

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
            ]
        },
    }
]

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# ENCRYPTION AT REST
# ------------------------------------------------------------------------------
# Fernet keys, newest first. Data encrypted with any of them is readable; new writes use the first.
# `manage.py secrets_rotate` re-encrypts every stored secret with the newest key.
# A fixed development key so `make run` works out of the box; production refuses it.
DEVELOPMENT_ENCRYPTION_KEY = "2uBQXHbL5VZ5wSe7C4wLhv3s4ncvgoa5x8CAcNqXn_I="
FIELD_ENCRYPTION_KEYS: list[str] = env.list("FIELD_ENCRYPTION_KEYS", default=[DEVELOPMENT_ENCRYPTION_KEY])

# CELERY
# ------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)


def broker_transport(url: str) -> str | None:
    """kombu's Redis transport, mended so that a Redis restart does not end a worker (apps.core.broker);
    any other broker keeps the transport its URL names."""
    return "apps.core.broker:Transport" if url.startswith("redis://") else None


CELERY_BROKER_TRANSPORT = broker_transport(CELERY_BROKER_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=10 * 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "sends"
CELERY_TASK_QUEUES = [Queue(name) for name in ("realtime", "audience", "sends", "reporting")]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# OPTIMOVE
# ------------------------------------------------------------------------------
OPTIMOVE_TIMEOUT_SECONDS = env.float("OPTIMOVE_TIMEOUT_SECONDS", default=30.0)
OPTIMOVE_MAX_RETRIES = env.int("OPTIMOVE_MAX_RETRIES", default=5)
OPTIMOVE_BACKOFF_BASE_SECONDS = env.float("OPTIMOVE_BACKOFF_BASE_SECONDS", default=1.0)
OPTIMOVE_BACKOFF_MAX_SECONDS = env.float("OPTIMOVE_BACKOFF_MAX_SECONDS", default=60.0)
# Optimove allows 50 requests per 10 seconds per API key.
OPTIMOVE_RATE_LIMIT_REQUESTS = env.int("OPTIMOVE_RATE_LIMIT_REQUESTS", default=50)
OPTIMOVE_RATE_LIMIT_WINDOW_SECONDS = env.float("OPTIMOVE_RATE_LIMIT_WINDOW_SECONDS", default=10.0)
OPTIMOVE_PAGE_SIZE = env.int("OPTIMOVE_PAGE_SIZE", default=10_000)
OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE = env.int("OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE", default=1_000)
# Each web process keeps the client and channel a listener URL names this long (apps.clients.selectors),
# rather than reading them for every one of hundreds of real-time triggers a second. A client or channel
# deactivated, or a listener token regenerated, reaches the listener within this time. 0: read each time.
LISTENER_TARGET_CACHE_SECONDS = env.float("LISTENER_TARGET_CACHE_SECONDS", default=1.0)

# Template and app sync (apps.message_templates.sync): the outbox of template and push-app changes.
# ------------------------------------------------------------------------------
# The periodic run pushes rows whose wake-up task was lost, and those waiting out an Optimove outage.
OPTIMOVE_SYNC_INTERVAL_SECONDS = env.float("OPTIMOVE_SYNC_INTERVAL_SECONDS", default=30.0)
# After a failure that can heal (timeouts, 429, 5xx past the API client's own retries), a row waits
# base * 2**(attempts - 1) seconds, at most max, before its next push; after this many attempts it fails.
OPTIMOVE_SYNC_RETRY_BASE_SECONDS = env.float("OPTIMOVE_SYNC_RETRY_BASE_SECONDS", default=30.0)
OPTIMOVE_SYNC_RETRY_MAX_SECONDS = env.float("OPTIMOVE_SYNC_RETRY_MAX_SECONDS", default=900.0)
OPTIMOVE_SYNC_MAX_ATTEMPTS = env.int("OPTIMOVE_SYNC_MAX_ATTEMPTS", default=50)
# --- end of template and app sync ---

# CAMPAIGNS: paging, dispatching and sending
# ------------------------------------------------------------------------------
# Messages released per send task, and per provider call inside it.
SEND_BATCH_SIZE = env.int("SEND_BATCH_SIZE", default=500)
SEND_CHUNK_SIZE = env.int("SEND_CHUNK_SIZE", default=100)
# The dispatcher releases due messages every few seconds, keeping at most this many batches waiting in
# the sends queue so a new campaign's batches are never behind a long backlog of another's.
DISPATCH_INTERVAL_SECONDS = env.float("DISPATCH_INTERVAL_SECONDS", default=2.0)
DISPATCH_MAX_QUEUED_BATCHES = env.int("DISPATCH_MAX_QUEUED_BATCHES", default=16)
# Messages are released this many seconds before their send time, so a send task has claimed and
# rendered its batch by then; it hands each message to the provider no earlier than its send time. One
# tick's worth plus a second covers a message due just before the next tick.
DISPATCH_LEAD_SECONDS = env.float("DISPATCH_LEAD_SECONDS", default=DISPATCH_INTERVAL_SECONDS + 1)
# Stored pages with due messages and finished send batches run the dispatcher at once, at most once
# per this many milliseconds.
DISPATCH_KICK_COALESCE_MS = env.int("DISPATCH_KICK_COALESCE_MS", default=200)
SWEEP_INTERVAL_SECONDS = env.float("SWEEP_INTERVAL_SECONDS", default=15.0)
# A batch released but not picked up, or claimed but not finished, within these is put back in motion.
MESSAGE_QUEUED_TIMEOUT_SECONDS = env.int("MESSAGE_QUEUED_TIMEOUT_SECONDS", default=600)
# ...or within this, when no send task waits in the broker at all (its task was lost, e.g. in a Redis
# restart without persistence).
MESSAGE_QUEUED_ORPHAN_SECONDS = env.int("MESSAGE_QUEUED_ORPHAN_SECONDS", default=60)
MESSAGE_SENDING_TIMEOUT_SECONDS = env.int("MESSAGE_SENDING_TIMEOUT_SECONDS", default=300)
PAGING_STALL_SECONDS = env.int("PAGING_STALL_SECONDS", default=120)
PAGING_MAX_ATTEMPTS = env.int("PAGING_MAX_ATTEMPTS", default=8)
# Provider errors that can heal are retried with exponential backoff, then the message fails.
MESSAGE_MAX_ATTEMPTS = env.int("MESSAGE_MAX_ATTEMPTS", default=6)
MESSAGE_RETRY_BASE_SECONDS = env.float("MESSAGE_RETRY_BASE_SECONDS", default=30.0)
MESSAGE_RETRY_MAX_SECONDS = env.float("MESSAGE_RETRY_MAX_SECONDS", default=3600.0)
# After downtime, messages later than this (per channel, or this default) are skipped, not sent.
MESSAGE_MAX_LATENESS_SECONDS = env.int("MESSAGE_MAX_LATENESS_SECONDS", default=6 * 3600)
# A real-time trigger's message goes from the listener straight to the realtime queue. Should that task
# be lost (a killed worker, a Redis restart), the dispatcher releases the message after this many seconds.
REALTIME_RESCUE_SECONDS = env.float("REALTIME_RESCUE_SECONDS", default=10.0)
# A trigger rings its run's realtime task unless one is already waiting; the bell expires after this
# long, so a lost task holds later triggers up no longer than this (the rescue above covers them anyway).
REALTIME_BELL_SECONDS = env.float("REALTIME_BELL_SECONDS", default=5.0)
# A realtime task waits this long after its trigger arrived before it claims, so the triggers arriving
# meanwhile go in the same batch (one task, one claim, one record for them all) instead of a task each.
# Each trigger waits at most this long more; at hundreds a second it halves the workers' CPU per trigger.
# The task then goes on sending the run's triggers as they arrive, gathering this long each time, while
# they keep coming (see apps.campaigns.services.REALTIME_TASK_SECONDS, well below the bell's life).
REALTIME_GATHER_SECONDS = env.float("REALTIME_GATHER_SECONDS", default=0.02)
# A Celery worker that does not consume the realtime queue (sends, audience, reporting) lowers its CPU
# priority to this niceness at start (apps.core.priority), so a campaign keeping every core busy does
# not slow the listener and the real-time sends on the same machine. 0 leaves the priority alone.
BULK_WORKER_NICENESS = env.int("BULK_WORKER_NICENESS", default=10)

# REPORTING (apps.delivery.reporting): delivery and engagement reported to Optimove
# ------------------------------------------------------------------------------
# How often every run with a message sent in the last REPORTING_WINDOW_DAYS days is reported
# (UpdateCampaignMetrics totals and UpdateCampaignInteractions not yet accepted).
REPORTING_INTERVAL_SECONDS = env.float("REPORTING_INTERVAL_SECONDS", default=4 * 3600.0)
REPORTING_WINDOW_DAYS = env.int("REPORTING_WINDOW_DAYS", default=7)
# --- end of reporting ---

# SUBSCRIPTIONS: the admin's CSV import and the client API (apps.subscriptions admin.py, api*.py)
# ------------------------------------------------------------------------------
# Largest consent CSV the admin accepts; larger files are refused whole. The import runs inside the web
# request at about 10,000 rows in 0.55 s here: 8 MB (about 350,000 rows) stays well inside the web
# timeout (60 s in the image). Bigger lists go through the client API's bulk calls.
SUBSCRIPTIONS_CSV_MAX_BYTES = env.int("SUBSCRIPTIONS_CSV_MAX_BYTES", default=8 * 1024 * 1024)
# Largest request body the client API reads: 10,000 updates with 128-character ids fit in about 2 MB.
SUBSCRIPTIONS_API_MAX_BODY_BYTES = env.int("SUBSCRIPTIONS_API_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# --- end of the subscriptions admin and API ---

CELERY_BEAT_SCHEDULE = {
    "campaigns-dispatch": {
        "task": "campaigns.dispatch",
        "schedule": DISPATCH_INTERVAL_SECONDS,
        # Short control work rides the realtime queue, which is never behind a campaign backlog.
        "options": {"queue": "realtime", "expires": max(DISPATCH_INTERVAL_SECONDS * 2, 2)},
    },
    "campaigns-sweep": {
        "task": "campaigns.sweep",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"queue": "realtime", "expires": SWEEP_INTERVAL_SECONDS * 2},
    },
    "message-templates-optimove-sync": {
        "task": "message_templates.optimove_sync_due",
        "schedule": OPTIMOVE_SYNC_INTERVAL_SECONDS,
        "options": {"queue": "reporting", "expires": OPTIMOVE_SYNC_INTERVAL_SECONDS * 2},
    },
    "delivery-report": {
        "task": "delivery.report_due",
        "schedule": REPORTING_INTERVAL_SECONDS,
        "options": {"queue": "reporting", "expires": REPORTING_INTERVAL_SECONDS},
    },
}
CELERY_TASK_ROUTES = {
    "campaigns.fetch_page": {"queue": "audience"},
    "campaigns.record_cancelled_customers": {"queue": "audience"},
    "campaigns.send_batch": {"queue": "sends"},
    "campaigns.send_realtime": {"queue": "realtime"},
    "campaigns.dispatch": {"queue": "realtime"},
    "campaigns.sweep": {"queue": "realtime"},
    "delivery.report_due": {"queue": "reporting"},
    "delivery.report_run": {"queue": "reporting"},
}

# Personal data (apps.subscriptions.retention): customer attributes, provider payloads and trigger
# personalization purged after each client's personal_data_retention_days.
# ------------------------------------------------------------------------------
PERSONAL_DATA_PURGE_INTERVAL_SECONDS = env.float("PERSONAL_DATA_PURGE_INTERVAL_SECONDS", default=3600.0)
# Rows per UPDATE, each batch its own short transaction.
PERSONAL_DATA_PURGE_BATCH_SIZE = env.int("PERSONAL_DATA_PURGE_BATCH_SIZE", default=2000)
# One purge stops after this long (well inside CELERY_TASK_SOFT_TIME_LIMIT); the next tick carries on.
PERSONAL_DATA_PURGE_TIME_BUDGET_SECONDS = env.float("PERSONAL_DATA_PURGE_TIME_BUDGET_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE["subscriptions-purge-personal-data"] = {
    "task": "subscriptions.purge_personal_data",
    "schedule": PERSONAL_DATA_PURGE_INTERVAL_SECONDS,
    "options": {"queue": "reporting", "expires": PERSONAL_DATA_PURGE_INTERVAL_SECONDS},
}
CELERY_TASK_ROUTES["subscriptions.purge_personal_data"] = {"queue": "reporting"}
# --- end of personal data ---

# Consent sync (apps.subscriptions.sync): each customer's opt-in state pushed to Optimove per channel
# ------------------------------------------------------------------------------
# The periodic run queues one task per channel with states Optimove has not accepted yet.
SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS = env.float("SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS", default=60.0)
# A periodic run of one channel reads no new batch after this long (well inside
# CELERY_TASK_SOFT_TIME_LIMIT); the next run goes on. The manage.py command has no budget.
SUBSCRIPTIONS_SYNC_RUN_SECONDS = env.float("SUBSCRIPTIONS_SYNC_RUN_SECONDS", default=300.0)
# Customers per SetCustomerChannelPreference call; Optimove's documented maximum (50,000) caps it.
SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE = env.int("SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE", default=50_000)
# SetCustomerChannelPreference's CommunicationMode per status. Optimove does not document the values
# (its one example sends 2): 1 opted in, 2 opted out, 0 no preference are our guess; set them to what
# the client's Optimove expects.
OPTIMOVE_COMMUNICATION_MODE_OPTED_IN = env.int("OPTIMOVE_COMMUNICATION_MODE_OPTED_IN", default=1)
OPTIMOVE_COMMUNICATION_MODE_OPTED_OUT = env.int("OPTIMOVE_COMMUNICATION_MODE_OPTED_OUT", default=2)
OPTIMOVE_COMMUNICATION_MODE_UNKNOWN = env.int("OPTIMOVE_COMMUNICATION_MODE_UNKNOWN", default=0)
# Records of sync calls and of customers Optimove rejected are kept this long.
SUBSCRIPTIONS_SYNC_HISTORY_DAYS = env.int("SUBSCRIPTIONS_SYNC_HISTORY_DAYS", default=30)
CELERY_BEAT_SCHEDULE["subscriptions-sync"] = {
    "task": "subscriptions.sync_due",
    "schedule": SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS,
    "options": {"queue": "reporting", "expires": SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS * 2},
}
CELERY_TASK_ROUTES["subscriptions.sync_due"] = {"queue": "reporting"}
CELERY_TASK_ROUTES["subscriptions.sync_channel"] = {"queue": "reporting"}
# --- end of consent sync ---

# MESSAGE TEMPLATES (apps.message_templates): limits on one render of one template for one customer.
# ------------------------------------------------------------------------------
TEMPLATE_MAX_OUTPUT_BYTES = env.int("TEMPLATE_MAX_OUTPUT_BYTES", default=256 * 1024)  # per rendered part
TEMPLATE_MAX_RENDER_SECONDS = env.float("TEMPLATE_MAX_RENDER_SECONDS", default=0.5)  # all parts together
TEMPLATE_MAX_LOOP_ITERATIONS = env.int("TEMPLATE_MAX_LOOP_ITERATIONS", default=100_000)  # all loops together

# SANDBOX (the local stand-in for Optimove; off in production)
# ------------------------------------------------------------------------------
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=False)
# --- sandbox helper's block: the stand-in's own limits, mirroring Optimove's ---
# A legacy login token lives this long after its last use (Optimove: 20 minutes).
SANDBOX_TOKEN_TTL_SECONDS = env.int("SANDBOX_TOKEN_TTL_SECONDS", default=1200)
# Per sandbox account, shared by every web worker through Redis (Optimove: 50 requests per 10 s).
SANDBOX_RATE_LIMIT_REQUESTS = env.int("SANDBOX_RATE_LIMIT_REQUESTS", default=50)
SANDBOX_RATE_LIMIT_WINDOW_SECONDS = env.float("SANDBOX_RATE_LIMIT_WINDOW_SECONDS", default=10.0)
# Customers per UpdateCustomerAttributes call (the current Optimove reference says 1,000).
SANDBOX_UPDATE_ATTRIBUTES_LIMIT = env.int("SANDBOX_UPDATE_ATTRIBUTES_LIMIT", default=1_000)
# --- end of the sandbox helper's block ---

# LOGGING: JSON lines with the request or task id; secrets and tokens redacted.
# ------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "apps.core.logging.ContextFilter"},
        "redact": {"()": "apps.core.logging.RedactingFilter"},
    },
    "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # runserver's own access line carries the query string: send it through the redacting handler.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "celery": {"level": LOG_LEVEL},
    },
}

# METRICS (apps.metrics): Prometheus `/metrics`, django-prometheus's request metrics
# ------------------------------------------------------------------------------
# Counters recorded by workers reach the web's /metrics through PROMETHEUS_MULTIPROC_DIR (an environment
# variable read by prometheus_client itself, set for every process by tools/run.py, the Dockerfile and
# deploy/docker-compose.yml); see docs/OPERATIONS.md.
INSTALLED_APPS += ["apps.metrics", "django_prometheus"]
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Optimove's listener URL: request ids, security headers and request metrics (apps.core.wsgi).
LISTENER_MIDDLEWARE = [path for path in MIDDLEWARE if path not in BROWSER_MIDDLEWARE]
# Empty: /metrics is open (serve it on a private network only). Set: scrapers must send
# `Authorization: Bearer <token>`.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# A completed run's message counts are kept this long in each web process before being counted again.
METRICS_COMPLETED_RUN_CACHE_SECONDS = env.float("METRICS_COMPLETED_RUN_CACHE_SECONDS", default=3600.0)
# django-prometheus would query the migration tables in every process at start-up; not worth it.
PROMETHEUS_EXPORT_MIGRATIONS = False
# --- end of metrics ---
