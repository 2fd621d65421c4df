"""/healthz and /readyz, with real failing peers on loopback (tests/faultpeers.py).

/readyz answers within its deadline (1.5 s, so well inside a load balancer's 2 s)
whatever the database, cache and broker do, and its reasons name no host or port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from tests.faultpeers import closed_port, hung_peer

HUNG_BUDGET_S = 2.0


def redis_cache(port: int) -> dict[str, object]:
    return {
        "default": {
            "BACKEND": "advisor.cache.FailSoftRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }


@pytest.fixture
def hung_port() -> Iterator[int]:
    with hung_peer() as port:
        yield port


def readyz() -> tuple[int, dict[str, object], bytes, float]:
    started = time.monotonic()
    response = Client().get("/readyz")
    elapsed = time.monotonic() - started
    return response.status_code, response.json(), response.content, elapsed


def test_healthz_answers_ok_without_database() -> None:
    # No django_db mark: pytest-django raises if the view touches the database.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_readyz_ready_with_database_and_filesystem_broker() -> None:
    status, body, content, _ = readyz()
    assert status == 200, content
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_503_when_broker_down() -> None:
    port = closed_port()
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0", CELERY_BROKER_TRANSPORT_OPTIONS={}
    ):
        status, body, content, _ = readyz()
    assert status == 503
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "connection refused"}
    assert str(port).encode() not in content and b"127.0.0.1" not in content


@pytest.mark.django_db
def test_readyz_503_within_its_deadline_when_broker_hangs(hung_port: int) -> None:
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{hung_port}/0", CELERY_BROKER_TRANSPORT_OPTIONS={}
    ):
        status, body, content, elapsed = readyz()
    assert status == 503
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "timeout"}
    assert str(hung_port).encode() not in content and b"127.0.0.1" not in content
    assert elapsed < HUNG_BUDGET_S, f"/readyz took {elapsed:.1f} s with a hung broker"


@pytest.mark.django_db
def test_readyz_503_within_its_deadline_when_the_cache_hangs(hung_port: int) -> None:
    with override_settings(CACHES=redis_cache(hung_port)):
        status, body, content, elapsed = readyz()
    assert status == 503
    assert body["checks"] == {"database": "ok", "cache": "timeout", "broker": "ok"}
    assert str(hung_port).encode() not in content and b"127.0.0.1" not in content
    assert elapsed < HUNG_BUDGET_S, f"/readyz took {elapsed:.1f} s with a hung cache"


@pytest.mark.django_db
def test_readyz_503_when_cache_and_broker_are_down_and_hung(hung_port: int) -> None:
    down = closed_port()
    with override_settings(
        CACHES=redis_cache(down),
        CELERY_BROKER_URL=f"redis://127.0.0.1:{hung_port}/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
    ):
        status, body, _, elapsed = readyz()
    assert status == 503
    assert body == {
        "status": "not ready",
        "checks": {"database": "ok", "cache": "connection refused", "broker": "timeout"},
    }
    assert elapsed < HUNG_BUDGET_S


def test_readyz_reasons_never_carry_the_exceptions_text() -> None:
    from advisor.health import CheckFailed, reason

    secret = "db.internal.example:5432 (user switchboard)"
    assert reason(OSError(f"could not connect to {secret}")) == "unavailable"
    assert reason(ConnectionRefusedError(111, secret)) == "connection refused"
    assert reason(TimeoutError(secret)) == "timeout"
    try:
        raise RuntimeError(secret) from ConnectionRefusedError(111, secret)
    except RuntimeError as exc:
        assert reason(exc) == "connection refused"
    assert reason(CheckFailed("broker folder not writable")) == "broker folder not writable"
