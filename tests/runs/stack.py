"""A real Switchboard stack for tests and benchmarks: web, workers and beat as processes.

Each stack has a folder of its own (``SWITCHBOARD_VAR_DIR``: SQLite file in WAL
mode, filesystem broker folders, beat schedule) and names of its own (queues,
worker node names), so stacks of several tests, or of several engineers on the
same machine, never share a queue. Its broker is the Redis it is given (a
database number and queue names of its own, cleaned up at the end) or, with
``redis_url=None``, kombu's filesystem transport.

Processes are started in sessions of their own, so a test can SIGKILL a
worker with every process of its pool, as a lost machine would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.0/8"
SECRET = "switchboard-test-secret-key-for-probe-runs-0123456789"


# util-linux's setpriv makes a process get SIGKILL when the test process dies, so
# a test run killed half way leaves no worker behind on a shared machine.
SETPRIV = shutil.which("setpriv")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or TimeoutError naming ``what``."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Stack:
    def __init__(
        self,
        folder: Path,
        *,
        redis_url: str | None,
        env: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name or f"sbtest-{uuid.uuid4().hex[:10]}"
        self.redis_url = redis_url
        self.database = folder / "switchboard.sqlite3"
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.web_url = ""
        # The stack's own SQLite file, whatever database the caller's environment names.
        inherited = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env = {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "advisor.settings",
            "SWITCHBOARD_VAR_DIR": str(folder),
            "DJANGO_SECRET_KEY": SECRET,
            "DJANGO_DEBUG": "true",
            # Plain http on loopback, also when a caller turns DEBUG off (bench/e2e.py).
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": redis_url or "",
            "PROBE_ALLOWED_NETWORKS": LOOPBACK,
            "CELERY_DEFAULT_QUEUE": self.name,
            "PROBE_SWEEP_QUEUE": f"{self.name}.sweep",
            "CELERY_REMOTE_CONTROL": "false",
            "CACHE_KEY_PREFIX": self.name,  # rate-limit counters of its own, cleaned up
            "PROBE_HEARTBEAT_S": "0.5",
            "PROBE_STALE_AFTER_S": "3",
            "PROBE_JOB_LOST_AFTER_S": "3",
            "PROBE_RESEND_AFTER_S": "3",
            "PROBE_SWEEP_EVERY_S": "1",
            "RATE_LIMIT_SCALE": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    # --- processes ---------------------------------------------------------------

    def _start(self, label: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{label}.log", "ab")  # noqa: SIM115 - closed with the process
        if SETPRIV:
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append((label, process))
        return process

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def migrate(self, template: Path | None = None) -> None:
        """Migrate the stack's database, or copy an already migrated one (faster)."""
        if template is None:
            self.manage("migrate", "--noinput", "-v", "0")
            if self.database.exists():  # SQLite (not a DATABASE_URL the caller gave)
                with contextlib.closing(sqlite3.connect(self.database)) as db:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        shutil.copyfile(template, self.database)

    def web(self, *, gunicorn: bool = False) -> str:
        """Django's runserver (static files and all), or gunicorn as in production."""
        port = free_port()
        if gunicorn:
            argv = [
                str(BIN / "gunicorn"),
                "advisor.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
            ]
        else:
            argv = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        self._start("web", argv)
        self.web_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{self.web_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the web server")
        return self.web_url

    def worker(
        self,
        queues: list[str] | None = None,
        *,
        label: str = "worker",
        concurrency: int = 4,
        beat: bool = False,
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        """``celery -A advisor worker -Q ...``; waits until it registered its vantage points."""
        queues = queues or [self.name]
        node = f"{label}-{uuid.uuid4().hex[:6]}@{self.name}"
        argv = [
            str(BIN / "celery"),
            "-A",
            "advisor",
            "worker",
            "-Q",
            ",".join(queues),
            "-n",
            node,
            "-c",
            str(concurrency),
            "--without-mingle",
            "--without-gossip",
            "-l",
            "INFO",
        ]
        if beat:
            argv += ["-B", "-s", str(self.folder / f"beat-{label}")]
        started = time.time()
        process = self._start(label, argv)
        if wait:
            wait_for(
                lambda: all(self.seen_since(q, started) for q in queues),
                90,
                f"worker {label} to register {queues}",
            )
        return process

    def beat(self) -> subprocess.Popen[bytes]:
        argv = [
            str(BIN / "celery"),
            "-A",
            "advisor",
            "beat",
            "-s",
            str(self.folder / "beat-schedule"),
            "-l",
            "INFO",
        ]
        return self._start("beat", argv)

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process and every process of its session (its pool)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        if sig == signal.SIGKILL:
            process.wait(timeout=30)

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """A clean stop: SIGTERM to the main process only (Celery's warm shutdown)."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of its pool

    def close(self) -> None:
        # The test is over: no process has anything left to finish cleanly, and a
        # worker's warm shutdown on the filesystem transport takes seconds.
        for _label, process in self.processes:
            self.kill(process)
        self.processes.clear()
        self._clean_redis()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, label: str) -> str:
        path = self.folder / f"{label}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _clean_redis(self) -> None:
        """Remove this stack's queues and bindings from the shared Redis (never FLUSH)."""
        if not self.redis_url:
            return
        import redis

        with contextlib.suppress(redis.RedisError):
            client = redis.Redis.from_url(self.redis_url, socket_timeout=3)
            for key in client.scan_iter(match=f"*{self.name}*"):
                client.delete(key)
            for key in client.scan_iter(match="_kombu.binding.*"):
                for member in client.smembers(key):
                    if self.name.encode() in member:
                        client.srem(key, member)
            for field, value in client.hscan_iter("unacked"):
                if self.name.encode() in value:
                    client.hdel("unacked", field)
                    client.zrem("unacked_index", field)

    # --- the database, read directly --------------------------------------------

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the stack's database directly (``?`` placeholders), SQLite or PostgreSQL."""
        url = self.env.get("DATABASE_URL")
        if url:
            import psycopg

            with psycopg.connect(url) as connection:
                return list(connection.execute(query.replace("?", "%s"), params).fetchall())
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db:
            return list(db.execute(query, params).fetchall())

    def seen_since(self, name: str, since: float) -> bool:
        rows = self.sql("SELECT last_seen FROM probes_vantagepoint WHERE name = ?", name)
        if not rows:
            return False
        value = rows[0][0]
        # Django keeps SQLite datetimes as UTC text without an offset.
        seen = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
        return seen.timestamp() >= since - 1

    # --- users and the API ---------------------------------------------------------

    def user(self, username: str, password: str = "a-long-test-password-1") -> str:
        """Create a user; return a fresh API token of theirs."""
        script = (
            "from django.contrib.auth.models import User; "
            "from django.core.management import call_command; "
            f"User.objects.create_user({username!r}, password={password!r}); "
            f"call_command('create_api_token', {username!r})"
        )
        return self.manage("shell", "-v", "0", "-c", script).stdout.strip().splitlines()[-1]

    def login(self, username: str, password: str = "a-long-test-password-1") -> httpx.Client:
        """A client logged in through the login form, as a browser would be."""
        client = httpx.Client(base_url=self.web_url, timeout=30, follow_redirects=False)
        client.get("/accounts/login")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/accounts/login",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text
        return client

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.web_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


def recommendation(client: httpx.Client, usecase: dict[str, Any] | None = None) -> int:
    document = usecase or {"interaction": "fire_and_forget", "receiver_may_be_offline": True}
    response = client.post("/api/recommendations", content=json.dumps(document))
    response.raise_for_status()
    return int(response.json()["id"])


def wait_run(
    client: httpx.Client, run_id: int, timeout: float = 120, stack: Stack | None = None
) -> dict[str, Any]:
    """Poll the run until it has ended; its last answer. On a timeout, the failure
    carries the run's last answer, its jobs and the ends of the stack's logs."""
    last: dict[str, Any] = {}

    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/probe-runs/{run_id}").json()
        last.update(body)
        return body if body["status"] in ("done", "failed") else None

    try:
        result: dict[str, Any] = wait_for(ended, timeout, f"run {run_id} to end", every=0.1)
    except TimeoutError as exc:
        details = [f"last answer: {json.dumps(last)[:2000]}"]
        if stack is not None:
            jobs = stack.sql(
                "SELECT id, status, attempts, worker, sent_at, claimed_at, heartbeat_at, reason "
                "FROM probes_probejob WHERE run_id = ?",
                run_id,
            )
            details.append(f"jobs: {jobs}")
            for label, _process in stack.processes:
                details.append(f"--- {label}.log ---\n{stack.log(label)[-3000:]}")
        raise TimeoutError(f"{exc}\n" + "\n".join(details)) from None
    return result


@contextlib.contextmanager
def own_redis(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder)
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """A redis-server of the test's own, on a free port, keeping nothing on disk:
    a restart loses every message, the worst a broker can do."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(up, 20, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
