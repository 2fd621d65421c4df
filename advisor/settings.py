"""Django settings for Switchboard.

Everything a deployment changes comes from the environment, read by the small
typed helpers below. With nothing set, the app runs on embedded defaults:
SQLite in ``var/`` and Celery on kombu's filesystem transport, so ``make run``
needs no servers.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SWITCHBOARD_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default=True)
# The fallback key is only good for a developer's machine; production sets its own.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "switchboard-insecure-development-key-change-me")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",  # its templates and static files: the API docs page never loads a CDN
    "advisor",
    "probes",
]

MIDDLEWARE = [
    # First, so every answer (static files and errors included) carries the policy.
    "advisor.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # HTML compressed only for pages without secrets in the body (BREACH): see there.
    "advisor.middleware.PublicPageGZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "advisor.urls"
WSGI_APPLICATION = "advisor.wsgi.application"
ASGI_APPLICATION = "advisor.asgi.application"

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
                "advisor.context_processors.login_next",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'switchboard.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"].get("ENGINE") == "django.db.backends.sqlite3":
    # Web, worker and beat write to one file at once. WAL lets readers run beside
    # the writer; IMMEDIATE takes the write lock at BEGIN, so a transaction that
    # reads then writes waits for the lock (up to the timeout) instead of failing
    # at once with "database is locked" when it tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Installations (or test stacks) sharing one Redis keep their keys apart.
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport,
# a broker made of three folders that needs no server.
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        # The transport polls its folder; the default second would add up to
        # a second to every job's start.
        "polling_interval": 0.1,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "probes")
# No result backend: tasks write what they measured to the database.
CELERY_RESULT_BACKEND = None
# A broker that restarts must not stop the workers: reconnect, for as long as it takes.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_SEND_TASK_EVENTS = False
# Remote control needs a fanout exchange, which kombu's filesystem transport has not.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = env_bool("CELERY_REMOTE_CONTROL", default=bool(REDIS_URL))
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Probe runs (probes/): every worker also consumes the sweep queue, where beat sends
# the sweeper that requeues or fails jobs whose worker was lost.
PROBE_SWEEP_QUEUE = env_str("PROBE_SWEEP_QUEUE", "switchboard.sweep")
PROBE_SWEEP_EVERY_S = float(env_str("PROBE_SWEEP_EVERY_S", "2") or "2")
# A worker writes its vantage points' heartbeat this often; one silent for
# PROBE_STALE_AFTER_S is shown stale.
PROBE_HEARTBEAT_S = float(env_str("PROBE_HEARTBEAT_S", "2") or "2")
PROBE_STALE_AFTER_S = float(env_str("PROBE_STALE_AFTER_S", "10") or "10")
# A running job writes its progress (and so a heartbeat) at least every second; one
# silent for PROBE_JOB_LOST_AFTER_S lost its worker and is requeued (or failed
# after PROBE_MAX_ATTEMPTS claims).
PROBE_JOB_LOST_AFTER_S = float(env_str("PROBE_JOB_LOST_AFTER_S", "8") or "8")
PROBE_MAX_ATTEMPTS = 3
# A job's time limits are its own bound, count x (interval + timeout), plus these
# margins: past the soft one the job fails with a reason; past the hard one the
# worker kills the process running it (and the sweeper takes the job back). Tests
# lower them, below zero even, to make a job overrun; never below 1 s.
PROBE_SOFT_MARGIN_S = float(env_str("PROBE_SOFT_MARGIN_S", "10") or "10")
PROBE_HARD_MARGIN_S = float(env_str("PROBE_HARD_MARGIN_S", "20") or "20")
# A queued job is sent again when no worker claimed it this long after it was sent
# (the broker may have lost the message); a second delivery is harmless.
PROBE_RESEND_AFTER_S = float(env_str("PROBE_RESEND_AFTER_S", "15") or "15")
# A queued job no worker claims within this long fails, saying its vantage point
# has no worker.
PROBE_QUEUE_WAIT_S = float(env_str("PROBE_QUEUE_WAIT_S", "600") or "600")
CELERY_BEAT_SCHEDULE = {
    "probes-sweep": {
        "task": "probes.sweep",
        "schedule": PROBE_SWEEP_EVERY_S,
        # A sweep nobody ran in time is worthless: the next one is already due.
        "options": {"queue": PROBE_SWEEP_QUEUE, "expires": 4 * PROBE_SWEEP_EVERY_S},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed names (app.1a2b3c.css) with gzipped copies, made by collectstatic
# (`make install`); WhiteNoise serves hashed names with a one-year immutable cache.
# With DEBUG on (`make run`) templates use the plain names and runserver finds them.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Every rate limit (advisor.ratelimit) is multiplied by this; benchmarks raise it,
# 0 turns limits off. Limits hold across processes when the cache is Redis.
RATE_LIMIT_SCALE = float(env_str("RATE_LIMIT_SCALE", "1") or "1")

# Probes refuse private and loopback targets unless an operator lists the
# networks here (comma-separated CIDRs). probes.guard reads it at call time.
PROBE_ALLOWED_NETWORKS = env_str("PROBE_ALLOWED_NETWORKS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
