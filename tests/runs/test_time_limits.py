"""A job's time limits with a real worker: the soft one fails it with a reason, the
hard one kills the worker's pool process, and the job still ends.

A probe of this engine keeps to its own bound, count x (interval + timeout), so
no target makes it overrun the limits as deployed (the bound plus 10 s and 20 s).
These tests lower the margins (``PROBE_SOFT_MARGIN_S``, ``PROBE_HARD_MARGIN_S``)
below zero, so a slow local server, answering each request in most of the
timeout, makes the job run past its limit while every sample still succeeds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.probes.servers_http import Server
from tests.runs.stack import Stack, recommendation, wait_for, wait_run

pytestmark = pytest.mark.services

# 3 samples x (10 ms + 2 s) = 6.03 s bound; the server takes 1.5 s a request,
# so the probe needs about 4.5 s, and would end well within its bound.
COUNT, INTERVAL_MS, TIMEOUT_S, SERVER_MS = 3, 10, 2, 1500
HARD_SERVER_MS = 800


def _slow_run(
    stack: Stack, user: str, http_target: Server, server_ms: int = SERVER_MS
) -> tuple[int, int, str]:
    token = stack.user(user)
    with stack.api(token) as client:
        decision = recommendation(client)
        target = f"http://127.0.0.1:{http_target.port}/slow?ms={server_ms}"
        response = client.post(
            "/api/probe-runs",
            json={
                "recommendation": decision,
                "targets": [target],
                "count": COUNT,
                "interval": INTERVAL_MS,
                "timeout": TIMEOUT_S,
            },
        )
        assert response.status_code == 202, response.text
        run_id = int(response.json()["id"])
    return decision, run_id, token


def _page(stack: Stack, user: str, run_id: int) -> str:
    browser = stack.login(user)
    with contextlib.closing(browser):
        response = browser.get(f"/runs/{run_id}")
        assert response.status_code == 200
        return response.text


def test_a_probe_past_its_soft_limit_fails_with_the_reason(
    tmp_path: Path, machine_redis_url: str, migrated_database: Path, http_target: Server
) -> None:
    # Soft limit ceil(6.03 - 4) = 3 s, before the probe's third sample ends.
    env = {"PROBE_SOFT_MARGIN_S": "-4", "PROBE_HARD_MARGIN_S": "30"}
    with Stack(tmp_path / "soft", redis_url=machine_redis_url, env=env) as stack:
        stack.migrate(migrated_database)
        stack.web()
        worker = stack.worker(concurrency=1)
        stack.beat()
        _decision, run_id, token = _slow_run(stack, "slowpoke", http_target)
        with stack.api(token) as client:
            run = wait_run(client, run_id, timeout=90, stack=stack)
        page = _page(stack, "slowpoke", run_id)
        jobs = stack.sql("SELECT status, attempts, reason FROM probes_probejob")
        results = stack.sql("SELECT COUNT(*) FROM probes_probejobresult")
        assert worker.poll() is None, "the soft limit must not take the worker down"
    assert run["status"] == "failed", run
    [(status, attempts, reason)] = jobs
    assert (status, attempts) == ("failed", 1), jobs
    assert "did not end within its time limit of 3 s" in reason, reason
    assert "3 samples x (10 ms interval + 2 s timeout)" in reason, reason
    assert results == [(0,)]  # nothing measured half way is stored as a result
    # The run says so, and the page shows it, per job and for the run.
    [result] = run["results"]
    assert result["ok"] is False and "time limit of 3 s" in result["error"]
    assert "time limit of 3 s" in (run["reason"] or "")
    assert "gave up: the probe did not end within its time limit of 3 s" in page
    # Two samples of 1.5 s fit in 3 s; the probe was stopped before the last one
    # could be answered.
    assert len(http_target.requests) < COUNT


def _pool_processes(worker: subprocess.Popen[bytes]) -> list[int]:
    """The worker's live pool processes: its children, read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == worker.pid and fields[0] not in ("Z", "X"):  # not reaped yet
                children.append(int(stat.parent.name))
    return children


def _freeze_when_claimed(stack: Stack, worker: subprocess.Popen[bytes], attempt: int) -> None:
    """Once the job runs under ``attempt``, SIGSTOP the pool process running it: a
    process stuck where no signal but SIGKILL reaches it (the soft limit cannot)."""
    wait_for(
        lambda: stack.sql(
            "SELECT 1 FROM probes_probejob WHERE status = 'running' AND attempts = ?", attempt
        ),
        60,
        f"attempt {attempt} to be claimed",
    )
    [child] = _pool_processes(worker)  # concurrency 1: the one running the job
    os.kill(child, signal.SIGSTOP)


def test_a_job_killed_by_its_hard_limit_comes_back_then_gives_up(
    tmp_path: Path, machine_redis_url: str, migrated_database: Path, http_target: Server
) -> None:
    """The hard limit SIGKILLs a pool process that did not end at the soft limit: its
    job may not stay running. It is requeued at once (not when the sweeper finds its
    heartbeat silent, two minutes here) and fails, saying why, after its last attempt."""
    # Limits ceil(6.03 - 1) = 6 s and 7 s: a probe of 3 x 0.8 s fits (with room for
    # a loaded machine), a frozen one does not.
    env = {
        "PROBE_SOFT_MARGIN_S": "-1",
        "PROBE_HARD_MARGIN_S": "0",
        "PROBE_JOB_LOST_AFTER_S": "120",
    }
    with Stack(tmp_path / "hard", redis_url=machine_redis_url, env=env) as stack:
        stack.migrate(migrated_database)
        stack.web()
        worker = stack.worker(concurrency=1)
        stack.beat()
        # Frozen once: the hard limit kills it, the job comes back and is measured.
        _decision, first, token = _slow_run(stack, "hardcase", http_target, HARD_SERVER_MS)
        _freeze_when_claimed(stack, worker, 1)
        with stack.api(token) as client:
            again = wait_run(client, first, timeout=90, stack=stack)
        came_back = stack.sql(
            "SELECT status, attempts FROM probes_probejob WHERE run_id = ?", first
        )
        # Frozen at every attempt: it gives up after the third, with the reason.
        _decision, second, token = _slow_run(stack, "hardcase2", http_target, HARD_SERVER_MS)
        for attempt in (1, 2, 3):
            _freeze_when_claimed(stack, worker, attempt)
        with stack.api(token) as client:
            run = wait_run(client, second, timeout=120, stack=stack)
        page = _page(stack, "hardcase2", second)
        jobs = stack.sql(
            "SELECT status, attempts, reason FROM probes_probejob WHERE run_id = ?", second
        )
        results = stack.sql("SELECT COUNT(*) FROM probes_probejobresult")
        log = stack.log("worker")
        assert worker.poll() is None, "the worker lives on; only its pool process was killed"
    assert again["status"] == "done", again
    assert came_back == [("done", 2)]
    assert again["results"][0]["ok"] is True
    assert run["status"] == "failed", run
    [(status, attempts, reason)] = jobs
    assert (status, attempts) == ("failed", 3), jobs
    assert reason == (
        "gave up after 3 attempts: it ran past its hard time limit of 7 s, and the worker "
        "process running it was stopped the last time"
    )
    assert results == [(1,)]  # the first run's one result; none for the second
    assert "Hard time limit (7" in log  # Celery's own word that it killed the process
    assert "ran past its hard time limit of 7 s" in page


def test_the_limits_follow_the_bound_and_the_margins() -> None:
    from django.test import override_settings

    from probes.models import ProbeRun
    from probes.services import overran_reason, time_limits

    run = ProbeRun(count=10, interval_ms=100.0, timeout_s=5.0)  # bound 51 s
    assert time_limits(run) == (61.0, 71.0)
    with override_settings(PROBE_SOFT_MARGIN_S=-4, PROBE_HARD_MARGIN_S=0.5):
        assert time_limits(run) == (47.0, 52.0)  # whole seconds, as Celery counts
    with override_settings(PROBE_SOFT_MARGIN_S=-100, PROBE_HARD_MARGIN_S=-100):
        assert time_limits(run) == (1.0, 1.0)  # never below a second
    assert overran_reason(run) == (
        "the probe did not end within its time limit of 61 s "
        "(10 samples x (100 ms interval + 5 s timeout) = 51 s, plus a margin) and was stopped"
    )
