"""Shared fixtures: real loopback services, and a rule for when one is missing.

In CI (``CI=true``) a test that needs a service that is not running fails, so a
broken environment cannot pass as green; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import socket

import pytest

SERVICES = {
    "postgresql": 5432,
    "redis": 6379,
    "rabbitmq": 5672,
    "mosquitto": 1883,
    "nats": 4222,
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str) -> int:
    """Return the service's port, or fail (CI) / skip (elsewhere) when it is down."""
    port = SERVICES[name]
    if not port_open(port):
        message = f"{name} is not listening on 127.0.0.1:{port}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: a missing service is a failure)")
        pytest.skip(message)
    return port


@pytest.fixture
def redis_port() -> int:
    return require_service("redis")


@pytest.fixture
def rabbitmq_port() -> int:
    return require_service("rabbitmq")


@pytest.fixture
def mosquitto_port() -> int:
    return require_service("mosquitto")


@pytest.fixture
def nats_port() -> int:
    return require_service("nats")


@pytest.fixture
def postgresql_port() -> int:
    return require_service("postgresql")
