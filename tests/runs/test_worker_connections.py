"""A worker keeps its database connection from one job to the next.

Celery's Django fixup closes every connection before and after each task unless
told to reuse them (``advisor/celery.py``); then each job paid for a new
connection, on PostgreSQL a new server process. The worker's own log says, per
job, whether the job found a connection open (``probes.services.job_execute``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.probes.servers_http import Server
from tests.runs.stack import Stack, recommendation, wait_run

pytestmark = pytest.mark.services


def test_one_worker_process_reuses_its_connection_for_every_job(
    tmp_path: Path, http_target: Server, migrated_database: Path
) -> None:
    with Stack(tmp_path / "conn", redis_url=None, env={"LOG_LEVEL": "INFO"}) as stack:
        stack.migrate(migrated_database)
        stack.web()
        stack.worker(concurrency=1)  # one pool process: the jobs run one after another
        with stack.api(stack.user("connuser")) as client:
            decision = recommendation(client)
            targets = [f"http://127.0.0.1:{http_target.port}/{i}" for i in range(4)]
            response = client.post(
                "/api/probe-runs",
                json={"recommendation": decision, "targets": targets, "count": 2, "interval": 10},
            )
            assert response.status_code == 202, response.text
            run = wait_run(client, int(response.json()["id"]), timeout=120, stack=stack)
        assert run["status"] == "done", run
        log = stack.log("worker")
        jobs = re.findall(r"job \d+ \(attempt 1\): in the queue .*", log)
        assert len(jobs) == 4, log
        fresh = [line for line in jobs if "(a new database connection)" in line]
        # The pool process connects for its first job (the fixup closes what it
        # inherited from the parent) and keeps that connection for the others.
        assert len(fresh) <= 1, jobs
