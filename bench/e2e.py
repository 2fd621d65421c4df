"""End-to-end probe runs: through the API, Redis and one worker, against in-process probes.

Usage (from the repository root, with Redis on 127.0.0.1:6379)::

    .venv/bin/python bench/e2e.py [--rounds 5] [--redis redis://127.0.0.1:6379/13]

**latency** (issue 7, "Speed"): 6 local targets x 20 samples, interval 50 ms.
The time from ``POST /api/probe-runs`` to the run's ``done`` (polled with
``GET /api/probe-runs/ID`` every 10 ms) through a real stack: the web server,
the Redis broker and one worker (``celery -A advisor worker -c 6``) with beat;
next to the same probes run at once in this process (``run_many``), and the
ratio. The target is at most 1.2x. Rounds alternate the two, medians printed.

**throughput**: 100 quick targets (tcp, count 1) as 5 runs of 20, all posted at
once; tasks per second the one worker sustains from the first POST to the
last run's ``done``.

The targets are HTTP and TCP servers in a process of their own on 127.0.0.1.
The stack has its own folder (SQLite in WAL mode), queue names of its own and
a Redis database number of its own (``--redis``), cleaned up at the end.
Rate limits are off (``RATE_LIMIT_SCALE=0``). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

import httpx  # noqa: E402

from probes.base import ProbeConfig  # noqa: E402
from probes.runner import run_many  # noqa: E402
from tests.runs.stack import Stack  # noqa: E402

TARGETS = 6
COUNT = 20
INTERVAL_MS = 50.0
QUICK_TARGETS = 100
PER_RUN = 20

SERVER = r"""
import asyncio, sys

async def http(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except Exception:
        pass
    writer.close()

async def tcp(reader, writer):
    writer.close()

async def main(count):
    servers = [await asyncio.start_server(http, "127.0.0.1", 0) for _ in range(count)]
    quick = await asyncio.start_server(tcp, "127.0.0.1", 0, backlog=1024)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(" ".join(map(str, ports)), quick.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def in_process(urls: list[str]) -> float:
    config = ProbeConfig(count=COUNT, interval_ms=INTERVAL_MS, timeout_s=5)
    started = time.perf_counter()
    results = asyncio.run(run_many(urls, config, allowed_networks="127.0.0.0/8"))
    elapsed = time.perf_counter() - started
    assert all(r.ok and r.succeeded == COUNT for r in results), results
    return elapsed


POSTS: list[float] = []
GETS: list[float] = []
RUNS: list[int] = []


def through_the_stack(client: httpx.Client, decision: int, urls: list[str]) -> float:
    body = {"recommendation": decision, "targets": urls, "count": COUNT, "interval": INTERVAL_MS}
    started = time.perf_counter()
    response = client.post("/api/probe-runs", json=body)
    response.raise_for_status()
    POSTS.append(time.perf_counter() - started)
    run_id = response.json()["id"]
    RUNS.append(run_id)
    while True:
        asked = time.perf_counter()
        run = client.get(f"/api/probe-runs/{run_id}").json()
        GETS.append(time.perf_counter() - asked)
        if run["status"] in ("done", "failed"):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    assert run["status"] == "done" and all(r["ok"] for r in run["results"]), run
    return elapsed


def tasks_per_second(client: httpx.Client, decision: int, quick_port: int) -> tuple[float, float]:
    run_ids = []
    started = time.perf_counter()
    for first in range(0, QUICK_TARGETS, PER_RUN):
        urls = [f"tcp://127.0.0.1:{quick_port}/{i}" for i in range(first, first + PER_RUN)]
        body = {"recommendation": decision, "targets": urls, "count": 1, "interval": 10}
        response = client.post("/api/probe-runs", json=body)
        response.raise_for_status()
        run_ids.append(response.json()["id"])
    pending = set(run_ids)
    while pending:
        for run_id in list(pending):
            if client.get(f"/api/probe-runs/{run_id}").json()["status"] in ("done", "failed"):
                pending.discard(run_id)
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    return QUICK_TARGETS / elapsed, elapsed


def bench(database: str, args: argparse.Namespace, urls: list[str], quick_port: int) -> None:
    POSTS.clear()
    GETS.clear()
    RUNS.clear()
    # The production defaults of the sweeper and heartbeats, not the tests' quick ones.
    env = {
        # --profile: the worker logs where each job's time went (probes.services).
        "LOG_LEVEL": "INFO" if args.profile else "ERROR",
        "DJANGO_DEBUG": "false",  # as in production: DEBUG keeps every query in memory
        "PROBE_HEARTBEAT_S": "2",
        "PROBE_STALE_AFTER_S": "10",
        "PROBE_JOB_LOST_AFTER_S": "8",
        "PROBE_RESEND_AFTER_S": "15",
        "PROBE_SWEEP_EVERY_S": "2",
    }
    pg_name = f"switchboard_e2e_{os.getpid()}"
    if database == "postgres":
        env["DATABASE_URL"] = f"{args.postgres}/{pg_name}"
        _pg(args.postgres, f"CREATE DATABASE {pg_name}")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="sb-e2e-") as folder,
            Stack(Path(folder), redis_url=args.redis, env=env) as stack,
        ):
            stack.migrate()
            stack.web(gunicorn=True)
            stack.worker(concurrency=args.concurrency)
            stack.beat()
            with stack.api(stack.user("bench")) as client:
                response = client.post(
                    "/api/recommendations", json={"interaction": "request_response"}
                )
                response.raise_for_status()
                decision = response.json()["id"]
                through_the_stack(client, decision, urls)  # warm both paths once
                in_process(urls)
                POSTS.clear()
                GETS.clear()
                RUNS.clear()
                local, e2e = [], []
                for _ in range(args.rounds):
                    local.append(in_process(urls))
                    e2e.append(through_the_stack(client, decision, urls))
                profile = _timeline(stack) + _profile(stack.log("worker")) if args.profile else []
                rate, spent = tasks_per_second(client, decision, quick_port)
    finally:
        if database == "postgres":
            _pg(args.postgres, f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")

    one, stack_s = statistics.median(local), statistics.median(e2e)
    print(f"database: {database}; web: gunicorn; broker: Redis; one worker (-c {args.concurrency})")
    print(f"  {TARGETS} local targets x {COUNT} samples, interval {INTERVAL_MS:g} ms")
    print(f"  {args.rounds} rounds, alternating:")
    print(f"  in one process (run_many):         median {one:.3f} s  (min {min(local):.3f})")
    print(f"  POST /api/probe-runs -> done:      median {stack_s:.3f} s  (min {min(e2e):.3f})")
    print(f"  ratio: {stack_s / one:.2f}x (target <= 1.2x)")
    print(
        f"  POST answered in {statistics.median(POSTS) * 1000:.0f} ms, "
        f"GET in {statistics.median(GETS) * 1000:.0f} ms (medians)"
    )
    print(
        f"  {QUICK_TARGETS} quick targets (tcp, count 1) as {QUICK_TARGETS // PER_RUN} runs: "
        f"{spent:.2f} s, {rate:.0f} tasks/s on one worker"
    )
    for line in profile:
        print(line)


# The worker's lines (probes.services, LOG_LEVEL=INFO) that say where a job's and a
# run's time went, read back as medians over the rounds (the warm-up run included).
_JOB_LINE = re.compile(
    r"job \d+ \(attempt \d+\): (?:in the queue (?P<queue>[\d.]+) ms, )?"
    r"(?:claimed in (?P<claimed>[\d.]+) ms, )?ready to probe in (?P<ready>[\d.]+) ms, "
    r"probed in (?P<probed>[\d.]+) ms, "
    r"stored in (?P<stored>[\d.]+) ms"
)
_RUN_LINE = re.compile(
    r"run \d+ ended \(\w+\): (?:read in (?P<read>[\d.]+) ms, )?advice in (?P<advice>[\d.]+) ms, "
    r"charts in (?P<charts>[\d.]+) ms, stored in (?P<stored>[\d.]+) ms"
)


def _timeline(stack: Stack) -> list[str]:
    """Each measured run's moments, from its rows: made -> first and last claim -> last
    job's end -> the run's end (medians over the rounds, ms after the run was made)."""
    marks: dict[str, list[float]] = {}
    for run_id in RUNS:
        [(made, ended)] = stack.sql(
            "SELECT created_at, finished_at FROM probes_proberun WHERE id = ?", run_id
        )
        [(first, last, jobs_ended)] = stack.sql(
            "SELECT min(claimed_at), max(claimed_at), max(finished_at) FROM probes_probejob "
            "WHERE run_id = ?",
            run_id,
        )
        for label, moment in (
            ("first claim", first),
            ("last claim", last),
            ("last job ended", jobs_ended),
            ("run ended", ended),
        ):
            marks.setdefault(label, []).append((_when(moment) - _when(made)).total_seconds() * 1000)
    text = ", ".join(f"{k} +{statistics.median(v):.0f}" for k, v in marks.items())
    return [f"  timeline of a run (medians, ms after it was made): {text}"]


def _when(value: object) -> datetime:
    # PostgreSQL answers datetimes; SQLite the text Django wrote.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _profile(log: str) -> list[str]:
    lines = ["  where the worker's time went (medians, ms):"]
    for label, pattern in (("job", _JOB_LINE), ("run end", _RUN_LINE)):
        found = [m.groupdict() for m in pattern.finditer(log)]
        if not found:
            lines.append(f"    {label}: no lines (is LOG_LEVEL INFO reaching the worker log?)")
            continue
        parts = [
            f"{key} {statistics.median(float(f[key]) for f in found):.1f}"
            for key in found[0]
            if all(f[key] is not None for f in found)
        ]
        lines.append(f"    {label} ({len(found)}): " + ", ".join(parts))
    fresh = log.count("(a new database connection)")
    lines.append(f"    jobs that opened a database connection: {fresh}")
    return lines


def _pg(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--concurrency", type=int, default=TARGETS)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--profile", action="store_true", help="also print where the worker's time went"
    )
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(TARGETS)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        *http_ports, quick_port = (int(p) for p in server.stdout.readline().split())
        urls = [f"http://127.0.0.1:{port}/" for port in http_ports]
        for database in ("sqlite", "postgres") if args.database == "both" else (args.database,):
            bench(database, args, urls, quick_port)
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
