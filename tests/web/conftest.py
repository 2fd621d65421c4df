from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from pytest_django.fixtures import Settings


@pytest.fixture(autouse=True)
def fast_hasher(settings: Settings) -> None:
    """Real password checks, without spending a second on PBKDF2 per user or attempt."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts with an empty cache: rendered fragments and rate-limit counters
    of one test must not answer for the next (the test database reuses row ids)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def collected_static() -> None:
    from tests.staticfiles import ensure_collected

    ensure_collected()
