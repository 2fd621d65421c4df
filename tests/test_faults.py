"""Faults with real processes: a gunicorn web server whose Redis (cache and broker)
is down or hung, or whose database hangs.

The web answers clearly, never a 500 and never a hang: pages that need neither
the cache nor the broker keep working (the cache fails soft: advisor/cache.py),
anonymous recommendations are still stored (rate limits fail open, and say so in
the log), and /readyz answers 503 within 2 s naming what is wrong in words, never
a host or a port.

SQLite under 16 concurrent writers (no "database is locked") is
tests/runs/test_sqlite.py::test_sixteen_concurrent_writers_never_meet_a_locked_database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.faultpeers import closed_port, hung_peer

ROOT = Path(__file__).resolve().parents[1]
SETPRIV = shutil.which("setpriv")  # the server dies with the test process
# No request may take this long: the fault being fixed held a worker for 30 s.
CLIENT_TIMEOUT_S = 10.0
READYZ_BUDGET_S = 2.0
DOCUMENT = {"title": "Orders", "interaction": "fire_and_forget", "receiver_may_be_offline": True}


def _environment(var_dir: Path, **env: str) -> dict[str, str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG")
    }
    return {
        **inherited,  # the tests' key, plain http (tests/settings.py)
        "DJANGO_SETTINGS_MODULE": "advisor.settings",
        "SWITCHBOARD_VAR_DIR": str(var_dir),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        **env,
    }


@contextmanager
def web_server(var_dir: Path, **env: str) -> Iterator[tuple[httpx.Client, Path]]:
    """gunicorn (2 sync workers, as deployed) on a socket bound to 127.0.0.1:0."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=_environment(var_dir),
        check=True,
        timeout=300,
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    log = var_dir / "gunicorn.log"
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{listener.fileno()}",
        "--workers",
        "2",
        "--timeout",
        "30",
        "advisor.wsgi:application",
    ]
    if SETPRIV:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=_environment(var_dir, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
        )
    listener.close()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield client, log
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def timed_readyz(client: httpx.Client) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get("/readyz")
    return response, time.monotonic() - started


def assert_pages_work_without_redis(client: httpx.Client) -> None:
    """Everything a visitor does that needs neither the cache nor the broker."""
    assert client.get("/healthz").text == "ok"
    for path in ("/", "/knowledge", "/accounts/login", "/accounts/signup", "/api/docs"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
    created = client.post("/api/recommendations", json=DOCUMENT)
    assert created.status_code == 201, created.text[:500]
    share_path = httpx.URL(created.json()["share_url"]).path
    share = client.get(share_path)
    assert share.status_code == 200 and "Orders" in share.text
    assert client.get(share_path + "/recommendation.json").status_code == 200
    assert client.get("/s/no-such-token").status_code == 404


def assert_not_ready(response: httpx.Response, elapsed: float, checks: dict[str, str]) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"status": "not ready", "checks": checks}
    assert "127.0.0.1" not in response.text
    assert elapsed < READYZ_BUDGET_S, f"/readyz took {elapsed:.2f} s"


def test_the_web_while_redis_hangs(tmp_path: Path) -> None:
    with hung_peer() as port:
        url = f"redis://127.0.0.1:{port}/0"
        with web_server(tmp_path, REDIS_URL=url) as (client, log):
            assert_pages_work_without_redis(client)
            for _ in range(3):  # every time, not only the first
                response, elapsed = timed_readyz(client)
                assert_not_ready(
                    response, elapsed, {"database": "ok", "cache": "timeout", "broker": "timeout"}
                )
                assert str(port) not in response.text
            # Pages still answer after /readyz: no worker is left stuck behind it.
            assert client.get("/").status_code == 200
        text = log.read_text()
        assert "skipping the cache" in text
        assert "WORKER TIMEOUT" not in text and "Internal Server Error" not in text, text[-3000:]


def test_the_web_while_redis_is_down(tmp_path: Path) -> None:
    port = closed_port()
    with web_server(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0") as (client, log):
        assert_pages_work_without_redis(client)
        response, elapsed = timed_readyz(client)
        assert_not_ready(
            response,
            elapsed,
            {"database": "ok", "cache": "connection refused", "broker": "connection refused"},
        )
        assert str(port) not in response.text
    # Said in the log, with the details the answers leave out.
    assert "skipping the cache" in log.read_text()


def test_the_web_while_the_database_hangs(tmp_path: Path) -> None:
    """A PostgreSQL that accepts and never answers: /readyz says so within 2 s, /healthz
    (which touches nothing) still answers, so the orchestrator does not restart a
    healthy web process for its database's sake, and requests that need the database
    get a 503 with Retry-After after the connect timeout, never a 500 or a hang."""
    with hung_peer() as port:
        # web_server migrates the embedded database, then serves on the hung one.
        url = f"postgres://switchboard@127.0.0.1:{port}/switchboard"
        with web_server(tmp_path, DATABASE_URL=url, DATABASE_CONNECT_TIMEOUT="2") as (
            client,
            log,
        ):
            response, elapsed = timed_readyz(client)
            assert_not_ready(
                response, elapsed, {"database": "timeout", "cache": "ok", "broker": "ok"}
            )
            assert str(port) not in response.text
            assert client.get("/healthz").text == "ok"
            created = client.post("/api/recommendations", json=DOCUMENT)
            assert created.status_code == 503, created.text[:500]
            assert created.json() == {
                "detail": "Switchboard cannot reach its database just now. Try again in a minute."
            }
            assert created.headers["Retry-After"] == "30"
            share = client.get("/s/some-token")
            assert share.status_code == 503 and share.headers["Retry-After"] == "30"
            assert "database" in share.text and str(port) not in share.text
        text = log.read_text()
        assert "database unavailable" in text
        assert "Internal Server Error" not in text and "WORKER TIMEOUT" not in text, text[-3000:]


def _manage(var_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_environment(var_dir),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def test_a_probe_run_asked_for_while_the_broker_hangs(tmp_path: Path) -> None:
    """The run is stored and answered at once (202); its jobs wait for the sweeper to
    send them when the broker is back, instead of holding the request for the broker's
    timeouts and retries."""
    with hung_peer() as port:
        url = f"redis://127.0.0.1:{port}/0"
        with web_server(tmp_path, REDIS_URL=url, PROBE_ALLOWED_NETWORKS="127.0.0.0/8") as (
            client,
            log,
        ):
            _manage(
                tmp_path,
                "shell",
                "-c",
                "from django.contrib.auth.models import User;"
                "User.objects.create_user('ops', password='a-long-test-password-1')",
            )
            token = _manage(tmp_path, "create_api_token", "ops").split()[-1]
            auth = {"Authorization": f"Bearer {token}"}
            created = client.post("/api/recommendations", json=DOCUMENT, headers=auth)
            assert created.status_code == 201, created.text[:500]
            body = {"recommendation": created.json()["id"], "targets": ["tcp://127.0.0.1:9"]}
            started = time.monotonic()
            run = client.post("/api/probe-runs", json=body, headers=auth)
            elapsed = time.monotonic() - started
            assert run.status_code == 202, run.text[:500]
            # A bound against a hang, not a speed figure: the broker's own timeouts and
            # publish retries took 15 s here.
            assert elapsed < 5.0, f"POST /api/probe-runs took {elapsed:.1f} s"
            state = client.get(f"/api/probe-runs/{run.json()['id']}", headers=auth)
            assert state.status_code == 200 and state.json()["status"] == "queued"
        text = log.read_text()
        assert "Internal Server Error" not in text and "WORKER TIMEOUT" not in text, text[-3000:]
