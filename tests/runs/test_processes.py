"""Probe runs end to end with real processes: web, Celery workers, beat and brokers.

Every test starts its own stack (``tests/runs/stack.py``): a web server, worker
processes started as an operator would (``celery -A advisor worker -Q NAME``)
and beat, on the machine's Redis (a database and queue names of the test's own),
on a redis-server the test starts itself, or on kombu's filesystem transport.
Targets are servers this process runs on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.probes.servers_http import Server
from tests.runs.stack import Stack, own_redis, recommendation, wait_for, wait_run

pytestmark = pytest.mark.services


def _post_run(client: Any, decision: int, targets: list[str], **extra: Any) -> int:
    response = client.post(
        "/api/probe-runs",
        json={"recommendation": decision, "targets": targets, **extra},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["Location"].endswith(f"/api/probe-runs/{body['id']}")
    return int(body["id"])


def test_filesystem_broker_end_to_end(tmp_path: Path, http_target: Server) -> None:
    """What `make run` starts: one worker with beat embedded, on the filesystem broker."""
    with Stack(tmp_path / "fs", redis_url=None) as stack:
        stack.migrate()
        stack.web()
        stack.worker(beat=True, concurrency=2)
        with stack.api(stack.user("fsuser")) as client:
            decision = recommendation(client)
            target = f"http://127.0.0.1:{http_target.port}/"
            run_id = _post_run(client, decision, [target], count=3, interval=20)
            run = wait_run(client, run_id, timeout=120, stack=stack)
        assert run["status"] == "done", run
        [result] = run["results"]
        assert result["ok"] is True and result["samples"] == 3
        assert result["vantage_point"] == stack.name
        assert len(http_target.requests) == 3
        assert run["advice"]["ranking"][0]["method"]
        # Embedded beat sends the sweeper on the same broker, and the worker runs it.
        # (The worker's banner lists the task "probes.sweep" from the start, so the
        # log must show a sweep task that ran: beat's first tick comes a
        # PROBE_SWEEP_EVERY_S after it starts, possibly after the run ended.)
        wait_for(
            lambda: re.search(r"Task probes\.sweep\[[0-9a-f-]+\] succeeded", stack.log("worker")),
            60,
            "the embedded beat's sweeper to run",
            every=0.2,
        )


def _counts(stack: Stack, run_ids: list[int]) -> tuple[int, int, int]:
    marks = ",".join("?" * len(run_ids))
    jobs = stack.sql(f"SELECT COUNT(*) FROM probes_probejob WHERE run_id IN ({marks})", *run_ids)
    results = stack.sql(
        "SELECT COUNT(*), COUNT(DISTINCT r.job_id) FROM probes_probejobresult r "
        f"JOIN probes_probejob j ON j.id = r.job_id WHERE j.run_id IN ({marks})",
        *run_ids,
    )
    return int(jobs[0][0]), int(results[0][0]), int(results[0][1])


def test_the_api_on_redis_with_real_peers(
    redis_stack: Stack,
    http_target: Server,
    responder: Any,
    closed_tcp_port: int,
    rabbitmq_port: int,
) -> None:
    stack = redis_stack
    stack.worker(concurrency=4)
    stack.beat()
    secret = "guest"
    targets = [
        f"http://127.0.0.1:{http_target.port}/",
        f"udp://127.0.0.1:{responder.udp_port}",
        f"tcp://127.0.0.1:{closed_tcp_port}",
        f"amqp://guest:{secret}@127.0.0.1:{rabbitmq_port}/",
    ]
    with stack.api(stack.user("alice")) as client:
        decision = recommendation(client)
        run_id = _post_run(client, decision, targets, count=5, interval=50, timeout=2)
        first = client.get(f"/api/probe-runs/{run_id}").json()
        assert first["status"] in {"queued", "running", "done"}
        assert set(first) >= {"id", "status", "results", "evidence", "advice"}
        run = wait_run(client, run_id, timeout=90, stack=stack)
        text = client.get(f"/api/probe-runs/{run_id}").text
    assert run["status"] == "done", run
    by_target = {r["target"]: r for r in run["results"]}
    assert set(by_target) == {
        targets[0],
        targets[1],
        targets[2],
        f"amqp://guest:****@127.0.0.1:{rabbitmq_port}/",
    }
    assert all(r["vantage_point"] == stack.name for r in run["results"])
    assert by_target[targets[0]]["ok"] and by_target[targets[0]]["latency_ms"]["p95"] > 0
    assert by_target[targets[1]]["ok"] and by_target[targets[1]]["kind"] == "udp"
    refused = by_target[targets[2]]
    assert not refused["ok"] and refused["failure"] == "refused"
    assert "refused" in refused["error"]
    assert by_target[f"amqp://guest:****@127.0.0.1:{rabbitmq_port}/"]["ok"]
    assert run["progress"] == {"targets": 4, "targets_done": 4, "samples": 20, "samples_done": 20}
    assert run["advice"]["version"] == 1 and len(run["advice"]["ranking"]) == 11
    assert isinstance(run["evidence"], list)
    # The password: encrypted while the job waited, erased when it ended, never shown
    # or logged.
    assert stack.sql("SELECT COUNT(*) FROM probes_probejob WHERE secret_url != ''") == [(0,)]
    assert f"guest:{secret}@" not in text
    for label in ("web", "worker", "beat"):
        assert f"guest:{secret}@" not in stack.log(label), label
    raw = stack.database.read_bytes() + stack.database.with_suffix(".sqlite3-wal").read_bytes()
    assert f"guest:{secret}@".encode() not in raw


def test_a_worker_killed_in_the_middle_of_50_jobs(redis_stack: Stack, http_target: Server) -> None:
    """SIGKILL the worker and its pool mid-way; a new worker and the sweeper finish
    every run, each job with exactly one result, and no one lifts a finger."""
    stack = redis_stack
    stack.beat()
    first = stack.worker(label="first", concurrency=4)
    with stack.api(stack.user("bob")) as client:
        decision = recommendation(client)
        targets = [f"http://127.0.0.1:{http_target.port}/job{i}" for i in range(10)]
        run_ids = [
            _post_run(client, decision, targets, count=8, interval=100, timeout=2) for _ in range(5)
        ]

        def in_the_middle() -> bool:
            _jobs, results, _distinct = _counts(stack, run_ids)
            running = stack.sql("SELECT COUNT(*) FROM probes_probejob WHERE status = 'running'")
            return results >= 8 and running[0][0] >= 1

        wait_for(in_the_middle, 120, "the first results while jobs run")
        stack.kill(first, signal.SIGKILL)
        killed_during = stack.sql("SELECT id FROM probes_probejob WHERE status = 'running'")
        assert killed_during, "the kill must catch jobs running"
        stack.worker(label="second", concurrency=4)
        runs = [wait_run(client, run_id, timeout=180, stack=stack) for run_id in run_ids]
    assert [r["status"] for r in runs] == ["done"] * 5
    assert all(len(r["results"]) == 10 and all(x["ok"] for x in r["results"]) for r in runs)
    jobs, results, distinct = _counts(stack, run_ids)
    assert (jobs, results, distinct) == (50, 50, 50)
    statuses = stack.sql("SELECT status, COUNT(*) FROM probes_probejob GROUP BY status")
    assert statuses == [("done", 50)]
    # The jobs the kill interrupted were claimed again, and measured by the new worker.
    marks = ",".join("?" * len(killed_during))
    again = stack.sql(
        f"SELECT attempts, worker FROM probes_probejob WHERE id IN ({marks})",
        *[row[0] for row in killed_during],
    )
    assert all(attempts >= 2 and worker.startswith("second-") for attempts, worker in again)


def test_a_redis_restart_in_the_middle_of_a_run_loses_nothing(
    tmp_path: Path, http_target: Server, migrated_database: Path
) -> None:
    """The test's own redis-server, keeping nothing on disk, restarts mid-run: every
    queued message is gone, yet every job ends with its result."""
    with (
        own_redis(tmp_path) as redis_server,
        Stack(tmp_path / "stack", redis_url=redis_server.url) as stack,
    ):
        stack.migrate(migrated_database)
        stack.web()
        stack.worker(concurrency=2)
        stack.beat()
        with stack.api(stack.user("carol")) as client:
            decision = recommendation(client)
            targets = [f"http://127.0.0.1:{http_target.port}/r{i}" for i in range(12)]
            run_id = _post_run(client, decision, targets, count=10, interval=100, timeout=2)

            def halfway() -> bool:
                done = stack.sql("SELECT COUNT(*) FROM probes_probejobresult")[0][0]
                return done >= 2

            wait_for(halfway, 60, "the first results")
            queued = stack.sql("SELECT COUNT(*) FROM probes_probejob WHERE status = 'queued'")
            assert queued[0][0] >= 4, "the restart must find jobs still waiting"
            redis_server.stop()
            redis_server.start()
            run = wait_run(client, run_id, timeout=180, stack=stack)
    assert run["status"] == "done", run
    assert len(run["results"]) == 12 and all(r["ok"] for r in run["results"])
    assert _counts(stack, [run_id]) == (12, 12, 12)


def test_two_workers_on_two_queues_are_two_vantage_points(
    redis_stack: Stack, http_target: Server
) -> None:
    stack = redis_stack
    east = f"{stack.name}-east"
    west = f"{stack.name}-west"
    stack.worker([east], label="east", concurrency=2)
    west_worker = stack.worker([west], label="west", concurrency=2)
    stack.beat()
    token = stack.user("dave")
    with stack.api(token) as client:
        decision = recommendation(client)
        targets = [
            f"http://127.0.0.1:{http_target.port}/a",
            f"http://127.0.0.1:{http_target.port}/b",
        ]
        run_id = _post_run(
            client, decision, targets, count=3, interval=20, vantage_points=[east, west]
        )
        run = wait_run(client, run_id, timeout=90, stack=stack)
        assert run["status"] == "done"
        assert sorted((r["vantage_point"], r["target"]) for r in run["results"]) == sorted(
            (point, target) for point in (east, west) for target in targets
        )
        # Each job ran on a worker of its own vantage point.
        rows = stack.sql("SELECT vantage_point, worker FROM probes_probejob")
        assert {(vp, worker.split("-")[0]) for vp, worker in rows} == {
            (east, "east"),
            (west, "west"),
        }
        unknown = client.post(
            "/api/probe-runs",
            json={"recommendation": decision, "targets": targets[:1], "vantage_points": ["mars"]},
        )
        assert unknown.status_code == 422
        assert "mars" in unknown.json()["errors"]["vantage_points"]
    browser = stack.login("dave")
    with contextlib.closing(browser):
        page = browser.get(f"/runs/{run_id}").text
        assert f"From {east}" in page and f"From {west}" in page
        stack.kill(west_worker)

        def west_is_stale() -> bool:
            panel = browser.get(f"/d/{decision}/probe").text
            return _point_state(panel, west) == "stale" and _point_state(panel, east) == "live"

        wait_for(west_is_stale, 30, "the stopped vantage point to show stale", every=0.5)


def _point_state(page: str, name: str) -> str:
    start = page.index(f"<strong>{name}</strong>")
    tail = page[start : start + 300]
    return "live" if "state-active" in tail.split("</label>")[0] else "stale"


def test_rate_limits_hold_across_web_processes_through_the_cache(
    tmp_path: Path, machine_redis_url: str, migrated_database: Path
) -> None:
    """Two web processes sharing Redis as their cache count one user's runs together."""
    allowed = 2  # RUNS_PER_USER (30 an hour) scaled down to 2
    scale = str(allowed / 30)
    with Stack(
        tmp_path / "rl", redis_url=machine_redis_url, env={"RATE_LIMIT_SCALE": scale}
    ) as stack:
        stack.migrate(migrated_database)
        first = stack.web()
        second = stack.web()
        token = stack.user(f"rl-{stack.name}")
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=first, headers=headers, timeout=30) as one,
            httpx.Client(base_url=second, headers=headers, timeout=30) as two,
        ):
            decision = recommendation(one)
            body = {"recommendation": decision, "targets": ["tcp://127.0.0.1:9"], "count": 1}
            assert one.post("/api/probe-runs", json=body).status_code == 202
            assert two.post("/api/probe-runs", json=body).status_code == 202
            for client in (one, two):
                refused = client.post("/api/probe-runs", json=body)
                assert refused.status_code == 429, refused.text
                assert int(refused.headers["Retry-After"]) >= 1
                assert "retry_after" in refused.json()
        # Each run counted: the third and fourth were refused by both processes.
        assert stack.sql("SELECT COUNT(*) FROM probes_proberun") == [(allowed,)]
