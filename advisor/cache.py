"""Django's Redis cache, failing soft when Redis is down or hung.

Everything the web app keeps in the cache can be done without it: rendered
fragments are rendered again, rate limits let the request through (and log it).
So a cache error must not become a 500, and a hung Redis must not cost every
request a timeout: the first failure costs one socket timeout (settings:
``REDIS_CONNECT_TIMEOUT`` and ``REDIS_SOCKET_TIMEOUT``), and then this process
skips the cache for ``RETRY_AFTER_S`` seconds before it tries again.

``/readyz`` does not go through this: it asks Redis itself (advisor/health.py),
so an orchestrator still learns the cache is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a process leaves the cache alone after it failed.
RETRY_AFTER_S = 5.0


class FailSoftRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._lock = threading.Lock()
        self._down_until = 0.0

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _soft(self, call: Callable[[], T], fallback: T, operation: str) -> T:
        if self.is_down:
            return fallback
        try:
            return call()
        except ValueError:  # incr of a missing key: an answer from Redis, not a failure
            raise
        except Exception as exc:  # redis-py raises ConnectionError, TimeoutError, ...
            with self._lock:
                first = not self.is_down
                self._down_until = time.monotonic() + RETRY_AFTER_S
            if first:
                # The exception's text names the host and port: logs only, never pages.
                log.warning(
                    "cache %s failed (%s: %s); skipping the cache for %.0f s",
                    operation,
                    type(exc).__name__,
                    exc,
                    RETRY_AFTER_S,
                )
            return fallback

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._soft(lambda: RedisCache.get(self, key, default, version), default, "get")

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._soft(lambda: RedisCache.get_many(self, keys, version), {}, "get_many")

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._soft(lambda: RedisCache.has_key(self, key, version), False, "has_key")

    def set(self, key: Any, value: Any, timeout: Any = 300, version: int | None = None) -> None:
        self._soft(lambda: RedisCache.set(self, key, value, timeout, version), None, "set")

    def set_many(self, data: Any, timeout: Any = 300, version: int | None = None) -> list[Any]:
        return self._soft(lambda: RedisCache.set_many(self, data, timeout, version), [], "set_many")

    def add(self, key: Any, value: Any, timeout: Any = 300, version: int | None = None) -> bool:
        return self._soft(lambda: RedisCache.add(self, key, value, timeout, version), False, "add")

    def touch(self, key: Any, timeout: Any = 300, version: int | None = None) -> bool:
        return self._soft(lambda: RedisCache.touch(self, key, timeout, version), False, "touch")

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._soft(lambda: RedisCache.delete(self, key, version), False, "delete")

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._soft(lambda: RedisCache.delete_many(self, keys, version), None, "delete_many")

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        # A rate limit's counter: when the cache fails, raise, so advisor.ratelimit
        # lets the request through and logs it (it never counts a hit it did not).
        if self.is_down:
            raise ConnectionError("the cache is skipped after a failure")
        try:
            return RedisCache.incr(self, key, delta, version)
        except ValueError:
            raise
        except Exception:
            with self._lock:
                self._down_until = time.monotonic() + RETRY_AFTER_S
            raise

    def clear(self) -> None:
        self._soft(lambda: RedisCache.clear(self), None, "clear")
