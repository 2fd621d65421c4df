"""The rate-limit counter: a fixed window in the cache, with Retry-After."""

from __future__ import annotations

import socket

import pytest
from django.core.cache import cache
from django.test import override_settings

from advisor import ratelimit
from advisor.ratelimit import Limit, RateLimited

LIMIT = Limit("test", count=3, window_s=60)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


def test_hits_within_the_limit_pass_and_the_next_waits_for_the_window() -> None:
    now = 6000.0 + 15  # 15 s into a 60 s window
    assert [ratelimit.hit(LIMIT, "alice", now=now) for _ in range(3)] == [None, None, None]
    assert ratelimit.hit(LIMIT, "alice", now=now) == 45
    # Another subject has its own count; the next window starts afresh.
    assert ratelimit.hit(LIMIT, "bob", now=now) is None
    assert ratelimit.hit(LIMIT, "alice", now=now + 45) is None


@override_settings(RATE_LIMIT_SCALE=10)
def test_the_scale_setting_raises_every_limit() -> None:
    results = [ratelimit.hit(LIMIT, "alice", now=100.0) for _ in range(31)]
    assert results[:30] == [None] * 30
    assert results[30] is not None


@override_settings(RATE_LIMIT_SCALE=0)
def test_scale_zero_turns_limits_off() -> None:
    assert all(ratelimit.hit(LIMIT, "alice", now=100.0) is None for _ in range(100))


def test_a_refusal_is_a_429_with_retry_after() -> None:
    for _ in range(3):
        ratelimit.check(LIMIT, "carol")
    with pytest.raises(RateLimited) as caught:
        ratelimit.check(LIMIT, "carol")
    response = ratelimit.too_many_requests(caught.value, json=True)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == caught.value.retry_after >= 1
    assert b"retry_after" in response.content


def test_a_cache_that_is_down_lets_requests_through() -> None:
    # A real Redis client against a port nothing listens on: refused at once.
    down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=down):
        assert all(ratelimit.hit(LIMIT, "dave", now=100.0) is None for _ in range(5))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
