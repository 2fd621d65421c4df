"""The production parts: REDIS_URL and DATABASE_URL switch to real Redis and PostgreSQL.

These run against this machine's services (tests/conftest.py: fail in CI when
one is missing, skip elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.settings import TEST_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
# What the test suite sets for itself (tests/settings.py), and what a deployment would:
# none of it is in the environment of the production checks below.
NOT_INHERITED = {"DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", *TEST_ENVIRONMENT}
PRODUCTION_KEY = "k3Y-for-the-deploy-check-only-9f8e7d6c5b4a39281706f5e4d3c2b1a0-zz"


def production_env(**env: str) -> dict[str, str]:
    """A fresh process's environment: this one's minus the tests' settings, plus env."""
    clean = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**clean, "DJANGO_SETTINGS_MODULE": "advisor.settings", **env}


def settings_under(env: dict[str, str]) -> dict[str, object]:
    """The settings a fresh process reads from this environment."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
        "'db_name': s.DATABASES['default']['NAME'], "
        "'db_options': s.DATABASES['default'].get('OPTIONS'), "
        "'cache': s.CACHES['default']['BACKEND'], "
        "'cache_options': s.CACHES['default'].get('OPTIONS'), "
        "'broker_options': s.CELERY_BROKER_TRANSPORT_OPTIONS, "
        "'broker_connection_timeout': s.CELERY_BROKER_CONNECTION_TIMEOUT, "
        "'broker': s.CELERY_BROKER_URL}))"
    )
    return _json_of(code, production_env(**{"DJANGO_SECRET_KEY": PRODUCTION_KEY, **env}))


def production_settings(env: dict[str, str], *names: str) -> dict[str, object]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}))"
    )
    return _json_of(code, production_env(**env))


def _json_of(code: str, env: dict[str, str]) -> dict[str, object]:
    """What ``code``, run in a fresh Python process with ``env``, prints as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_debug_is_off_and_https_is_on_unless_asked_for() -> None:
    settings = production_settings(
        {"DJANGO_SECRET_KEY": PRODUCTION_KEY},
        "DEBUG",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert settings == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,  # trusted only when the proxy is said to set it
    }
    behind_proxy = production_settings(
        {"DJANGO_SECRET_KEY": PRODUCTION_KEY, "DJANGO_SECURE_PROXY_SSL_HEADER": "true"},
        "SECURE_PROXY_SSL_HEADER",
    )
    assert behind_proxy == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}
    developer = production_settings(
        {"DJANGO_DEBUG": "true"}, "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"
    )
    assert developer == {"DEBUG": True, "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0}


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "check"],
        ["manage.py", "migrate", "--noinput"],
        ["-c", "import advisor.wsgi"],  # what gunicorn loads
        ["-m", "celery", "-A", "advisor", "inspect", "ping", "--timeout", "1"],
    ],
    ids=["check", "migrate", "wsgi", "celery"],
)
def test_without_a_secret_key_and_with_debug_off_nothing_starts(
    argv: list[str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=production_env(SWITCHBOARD_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "switchboard.sqlite3").exists()  # migrate never ran


def test_one_shot_commands_that_store_nothing_run_without_a_key(tmp_path: Path) -> None:
    """`manage.py advise` and the like sign nothing: a random key of their own, never a
    public one (so nothing they could sign would be accepted anywhere else)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "advise", "-", "--format", "json"],
        cwd=ROOT,
        env=production_env(SWITCHBOARD_VAR_DIR=str(tmp_path)),
        input='{"interaction": "streaming", "loss_tolerant": true}',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ranking"]
    # Each such process has a key of its own, long and random.
    code = (
        "import sys; sys.argv = ['manage.py', 'probe']; "
        "import advisor.settings as s; print(s.SECRET_KEY)"
    )
    first, second = (
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=production_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    )
    assert len(first) >= 50 and first != second


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(
            DJANGO_SECRET_KEY=PRODUCTION_KEY,
            DJANGO_ALLOWED_HOSTS="switchboard.example.com",
            SWITCHBOARD_VAR_DIR=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout + done.stderr


def test_check_deploy_fails_with_a_developers_settings(tmp_path: Path) -> None:
    """The check itself can fail: DEBUG on (and with it no HSTS, no redirect) is refused."""
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(DJANGO_DEBUG="true", SWITCHBOARD_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    for check in ("security.W004", "security.W008", "security.W018"):
        assert check in done.stderr, check


def test_embedded_defaults_need_no_servers() -> None:
    settings = settings_under({})
    assert settings["db"] == "django.db.backends.sqlite3"
    assert settings["broker"] == "filesystem://"
    assert settings["cache"] == "django.core.cache.backends.locmem.LocMemCache"


def test_environment_switches_to_postgresql_and_redis() -> None:
    settings = settings_under(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/switchboard",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        }
    )
    assert settings["db"] == "django.db.backends.postgresql"
    assert settings["db_name"] == "switchboard"
    assert settings["broker"] == "redis://127.0.0.1:6379/3"
    assert settings["cache"] == "advisor.cache.FailSoftRedisCache"
    assert settings["cache_options"] == {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    # Every peer has a deadline: connecting, and each statement.
    assert settings["db_options"] == {
        "connect_timeout": 5,
        "options": "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000",
    }
    assert settings["broker_options"]["socket_connect_timeout"] == 1.0  # type: ignore[index]
    assert settings["broker_connection_timeout"] == 2.0


@pytest.mark.django_db
def test_readyz_with_a_real_redis_broker_and_cache(redis_port: int) -> None:
    url = f"redis://127.0.0.1:{redis_port}/0"
    cache = {
        "default": {
            "BACKEND": "advisor.cache.FailSoftRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"readyz-test-{os.getpid()}",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
    with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS={}, CACHES=cache):
        response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_the_web_app_on_a_real_postgresql(postgresql_port: int, tmp_path: Path) -> None:
    """Decisions, share links and the API, with their transactions, on PostgreSQL."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {
        **clean,
        # pytest-django creates and drops its own test_<name> database; the name is this
        # run's own, so two checkouts testing at once on one server do not collide.
        "DATABASE_URL": (
            f"postgres://postgres@127.0.0.1:{postgresql_port}/switchboard_pg_{os.getpid()}"
        ),
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--create-db",
            "tests/web/test_services.py",
            "tests/web/test_share.py",
            "tests/web/test_api.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
