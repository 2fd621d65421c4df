"""Embedded SQLite with web, worker and beat writing at once: never "database is locked".

Sixteen processes, started together, each run transactions that read and then
write one shared file, as claims, heartbeats and progress do. With the
project's settings (WAL, a busy timeout, ``"transaction_mode": "IMMEDIATE"``)
every one of them succeeds. The same writers under SQLite's default deferred
transactions fail: that is what the setting is for, and shows this test can fail.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs.stack import ROOT, Stack

WRITERS = 16
ROUNDS = 15


def _race(folder: Path, *mode: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["SWITCHBOARD_VAR_DIR"] = str(folder)
    go = folder / f"go{'-'.join(mode)}"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.runs.sqlite_writer",
                f"w{i}",
                str(ROUNDS),
                str(go),
                *mode,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(WRITERS)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            line = writer.stdout.readline().strip()
            assert line == "ready", line
        go.touch()
        return [writer.communicate(timeout=300)[0].strip() for writer in writers]
    finally:
        for writer in writers:
            writer.kill()


@pytest.fixture
def database(tmp_path: Path, migrated_database: Path) -> Path:
    stack = Stack(tmp_path, redis_url=None)
    stack.migrate(migrated_database)
    return stack.database


def test_sixteen_concurrent_writers_never_meet_a_locked_database(database: Path) -> None:
    outcomes = _race(database.parent)
    assert outcomes == ["ok"] * WRITERS
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT COUNT(*), MIN(hostname) FROM probes_vantagepoint").fetchone()
    assert rows == (WRITERS, str(ROUNDS - 1))


def test_the_same_writers_under_deferred_transactions_do_meet_it(database: Path) -> None:
    outcomes = _race(database.parent, "deferred")
    assert any("database is locked" in outcome for outcome in outcomes), outcomes
