"""Django settings for Switchboard.

Everything a deployment changes comes from the environment, read by the small
typed helpers below. With nothing set, the app runs on embedded defaults:
SQLite in ``var/`` and Celery on kombu's filesystem transport, so ``make run``
needs no servers.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SWITCHBOARD_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Production-safe by default: DEBUG only when asked for (`make run` asks for itself).
DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY").strip()
# One-shot commands that sign, encrypt and store nothing (a report, a measurement, the
# responder on a target) need no key of their own: they get a random one that dies
# with the process. Servers, workers and every other command need the real one.
KEYLESS_COMMANDS = {"advise", "probe", "responder", "help", "version"}
_keyless = (
    len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" and sys.argv[1] in KEYLESS_COMMANDS
)
if not SECRET_KEY and _keyless:
    SECRET_KEY = secrets.token_urlsafe(50)
if not SECRET_KEY:
    if not DEBUG:
        # Signed cookies, CSRF tokens, password resets and the encrypted probe
        # credentials all rest on this key: a public default would give them away.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. With DEBUG off (the default) Switchboard "
            "refuses to start without a secret key of its own: set DJANGO_SECRET_KEY to "
            "a long random string, e.g. the output of "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))', the same on "
            "every web and worker process; or set DJANGO_DEBUG=true on a developer's "
            "machine."
        )
    # Only ever with DEBUG on, on a developer's machine.
    SECRET_KEY = "django-insecure-switchboard-development-key"
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
    # Last, so it sees the views' exceptions: a database or broker that is down or
    # hung is a 503 with Retry-After, not a 500.
    "advisor.health.DependencyUnavailableMiddleware",
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
# Every call to a peer has a deadline: a database, cache or broker that accepts
# connections and never answers must not hold a web worker until gunicorn kills it.
DATABASE_CONNECT_TIMEOUT_S = env_int("DATABASE_CONNECT_TIMEOUT", 5)
DATABASE_STATEMENT_TIMEOUT_MS = env_int("DATABASE_STATEMENT_TIMEOUT_MS", 30_000)
if DATABASES["default"].get("ENGINE") == "django.db.backends.postgresql":
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    # libpq's connect_timeout (whole seconds, 2 at least) bounds connecting;
    # statement_timeout makes the server cancel any statement running longer.
    _pg_options.setdefault("connect_timeout", max(2, DATABASE_CONNECT_TIMEOUT_S))
    _pg_options.setdefault(
        "options",
        f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS} "
        f"-c idle_in_transaction_session_timeout={2 * DATABASE_STATEMENT_TIMEOUT_MS}",
    )
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

# Seconds to connect to Redis and to wait for any one answer, for the cache and the
# broker alike; /readyz gives up on all its checks after READYZ_DEADLINE_S.
REDIS_CONNECT_TIMEOUT_S = env_float("REDIS_CONNECT_TIMEOUT", 1.0)
REDIS_SOCKET_TIMEOUT_S = env_float("REDIS_SOCKET_TIMEOUT", 1.0)
READYZ_DEADLINE_S = env_float("READYZ_DEADLINE", 1.5)

if REDIS_URL:
    CACHES = {
        "default": {
            # Django's Redis cache, failing soft: a cache that is down or hung costs
            # one timeout, then is skipped for a few seconds (pages render without it,
            # rate limits let requests through) instead of answering 500.
            "BACKEND": "advisor.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            # Installations (or test stacks) sharing one Redis keep their keys apart.
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX"),
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
                "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport,
# a broker made of three folders that needs no server.
CELERY_BROKER_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        # Longer than kombu's one-second BRPOP, so an idle worker is not a timeout.
        "socket_timeout": max(5.0, REDIS_SOCKET_TIMEOUT_S),
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
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
# Connecting to the broker, and retrying a publish, are bounded: a web request that
# sends a task waits seconds at most for a broker that is down, then fails clearly.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
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

# HTTPS. Production defaults (DEBUG off): every http request is redirected to https,
# HSTS for a year with subdomains and preload, cookies only over https. A deployment
# behind a TLS proxy sets DJANGO_SECURE_PROXY_SSL_HEADER=true, and the proxy must
# then set X-Forwarded-Proto itself (overwriting whatever the client sent).
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers check these over plain http inside the network: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The proxy's own addresses (CIDRs): requests from them are counted, for rate limits,
# by the client address the proxy puts last in X-Forwarded-For (advisor.ratelimit).
TRUSTED_PROXIES = env_list("DJANGO_TRUSTED_PROXIES")
for _network in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"DJANGO_TRUSTED_PROXIES: {_network!r} is not an address or a network (CIDR)"
        ) from None
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Every rate limit (advisor.ratelimit) is multiplied by this; benchmarks raise it,
# 0 turns limits off. Limits hold across processes when the cache is Redis.
RATE_LIMIT_SCALE = env_float("RATE_LIMIT_SCALE", 1.0)

# Probes refuse private and loopback targets unless an operator lists the
# networks here (comma-separated CIDRs). probes.guard reads it at call time.
PROBE_ALLOWED_NETWORKS = env_str("PROBE_ALLOWED_NETWORKS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
