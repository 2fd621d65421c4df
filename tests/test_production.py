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

ROOT = Path(__file__).resolve().parents[1]


def settings_under(env: dict[str, str]) -> dict[str, object]:
    """The settings a fresh process reads from this environment."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
        "'db_name': s.DATABASES['default']['NAME'], "
        "'cache': s.CACHES['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "advisor.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


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
    assert settings["cache"] == "django.core.cache.backends.redis.RedisCache"


@pytest.mark.django_db
def test_readyz_with_a_real_redis_broker(redis_port: int) -> None:
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0"):
        response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


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
