"""Fixtures for probe-run tests: real targets on 127.0.0.1 and real stacks.

Targets are servers this process starts on ``127.0.0.1:0`` (the probe tests'
own HTTP server and responder) and the machine's loopback services. Stacks run
web, workers and beat as real processes (``tests/runs/stack.py``); the one on
the machine's Redis uses a database number and queue names of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.probes.conftest import closed_tcp_port, responder, tcp_listener
from tests.probes.servers_http import Server, running, start_http
from tests.runs.stack import Stack

# The machine's Redis, on a database of our own: the stacks clean their keys up.
REDIS_DB = int(os.environ.get("SWITCHBOARD_TEST_REDIS_DB", "12"))


@pytest.fixture
def http_target() -> Iterator[Server]:
    with running(start_http()) as server:
        yield server


@pytest.fixture
def machine_redis_url() -> str:
    port = require_service("redis")
    return f"redis://127.0.0.1:{port}/{REDIS_DB}"


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test session; each stack starts from a copy."""
    stack = Stack(tmp_path_factory.mktemp("template"), redis_url=None)
    stack.migrate()
    return stack.database


@pytest.fixture
def redis_stack(tmp_path: Path, machine_redis_url: str, migrated_database: Path) -> Iterator[Stack]:
    with Stack(tmp_path / "stack", redis_url=machine_redis_url) as stack:
        stack.migrate(migrated_database)
        stack.web()
        yield stack


# Fixtures shared with the probe tests, offered here too.
__all__ = ["closed_tcp_port", "responder", "tcp_listener"]
