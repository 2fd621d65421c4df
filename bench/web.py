"""Latency of the web app behind a real HTTP server, on a fresh SQLite database.

    .venv/bin/python bench/web.py [--requests 200] [--warmup 20]

Starts gunicorn (one sync worker, as a small production deployment would; Django's
runserver when gunicorn is not installed, and the output says which) in a
subprocess on a socket this script binds to 127.0.0.1:0, with ``SWITCHBOARD_VAR_DIR``
in a temporary folder so the database is new and migrated, and ``DJANGO_DEBUG=0``.
Then it sends sequential requests with httpx and prints the median and p95
latency per endpoint. Target: share page and POST median at most 50 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TARGET_MS = 50.0

DOCUMENT = {
    "title": "Orders to the warehouse",
    "interaction": "fire_and_forget",
    "receiver_may_be_offline": True,
    "rate_per_second": 50,
    "delivery": "at_least_once",
}


@dataclass
class Result:
    name: str
    latencies_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _environment(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # the bench is about the embedded defaults: SQLite
    env.update(
        SWITCHBOARD_VAR_DIR=str(var_dir),
        DJANGO_DEBUG="0",
        # Plain http on loopback: secure-only cookies would never come back, and
        # the form POST needs its CSRF cookie.
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        # DEBUG off needs a key of its own: a fresh one per run.
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        # WhiteNoise warns that STATIC_ROOT (made by collectstatic) is missing; the
        # bench requests no static files, so the warning is noise here.
        PYTHONWARNINGS="ignore:No directory at:UserWarning",
    )
    return env


@contextmanager
def serve(var_dir: Path) -> Iterator[tuple[str, str]]:
    """Migrate a fresh database and serve the app; yields (base URL, server name)."""
    env = _environment(var_dir)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if importlib.util.find_spec("gunicorn") is not None:
        # gunicorn takes the already bound socket: no window where another
        # process could take the port between choosing and binding it.
        listener.listen(128)
        listener.set_inheritable(True)
        name = "gunicorn (1 sync worker)"
        command = [
            PYTHON,
            "-m",
            "gunicorn",
            "--bind",
            f"fd://{listener.fileno()}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            "advisor.wsgi:application",
        ]
        pass_fds: tuple[int, ...] = (listener.fileno(),)
    else:
        listener.close()  # runserver binds by itself
        name = "django runserver (gunicorn not installed)"
        command = [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        pass_fds = ()
    process = subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=pass_fds)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base, name
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        listener.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the server did not answer /healthz within {deadline_s:.0f} s")


def measure(
    name: str, call: Callable[[], httpx.Response], expect: int, n: int, warmup: int
) -> Result:
    for _ in range(warmup):
        call()
    latencies: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        response = call()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != expect:
            raise SystemExit(
                f"{name}: expected {expect}, got {response.status_code}: {response.text[:300]}"
            )
        latencies.append(elapsed)
    return Result(name, latencies)


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def form_fields() -> dict[str, str]:
    """DOCUMENT as a browser submits the questionnaire: every field, checkboxes as "on"."""
    from advisor.usecase import UseCase  # plain pydantic: no Django setup needed

    answers = {
        name: info.default for name, info in UseCase.model_fields.items() if not info.is_required()
    }
    answers.update(DOCUMENT)
    data: dict[str, str] = {}
    for name, value in answers.items():
        if value is False:
            continue  # an unticked checkbox is not sent
        data[name] = "on" if value is True else ("" if value is None else str(value))
    return data


def form_post(client: httpx.Client) -> Callable[[], httpx.Response] | None:
    """The questionnaire's plain (no-JS) POST, with the CSRF token a browser would send."""
    match = CSRF_INPUT.search(client.get("/").text)
    if match is None:
        return None
    data = {**form_fields(), "csrfmiddlewaretoken": match.group(1)}

    def call() -> httpx.Response:
        # A success redirects to the new decision's page; the redirect is not followed.
        return client.post("/", data=data)

    return call


def run(n: int, warmup: int) -> list[Result]:
    with (
        tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp,
        serve(Path(tmp)) as (
            base,
            server,
        ),
    ):
        print(f"server: {server} at {base}, SQLite in {tmp}")
        # Latency on a shared machine moves with its load: say what it was.
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)")
        results: list[Result] = []
        with httpx.Client(base_url=base, timeout=30.0) as client:
            created = client.post("/api/recommendations", json=DOCUMENT)
            if created.status_code != 201:
                raise SystemExit(f"POST /api/recommendations: {created.status_code} {created.text}")
            share_path = httpx.URL(created.json()["share_url"]).path
            results.append(measure("GET /healthz", lambda: client.get("/healthz"), 200, n, warmup))
            results.append(
                measure("GET / (questionnaire)", lambda: client.get("/"), 200, n, warmup)
            )
            results.append(
                measure(
                    "POST /api/recommendations",
                    lambda: client.post("/api/recommendations", json=DOCUMENT),
                    201,
                    n,
                    warmup,
                )
            )
            post = form_post(client)
            if post is not None:
                results.append(measure("POST / (form, no JS)", post, 302, n, warmup))
            else:
                print("POST / (form): no CSRF token on /, form POST not measured")
            token = share_path.rsplit("/", 1)[1]
            results.append(
                measure(
                    "GET /api/recommendations/<token>",
                    lambda: client.get(f"/api/recommendations/{token}"),
                    200,
                    n,
                    warmup,
                )
            )
            results.append(
                measure(
                    "GET /s/<token> (share page)",
                    lambda: client.get(share_path),
                    200,
                    n,
                    warmup,
                )
            )
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests first")
    args = parser.parse_args(argv)
    results = run(args.requests, args.warmup)
    print(f"\n{'endpoint':32} {'n':>5} {'min ms':>8} {'median ms':>10} {'p95 ms':>10}")
    for result in results:
        print(
            f"{result.name:32} {len(result.latencies_ms):>5} {min(result.latencies_ms):>8.2f} "
            f"{result.median:>10.2f} {result.p95:>10.2f}"
        )
    # The target is about the share page and the POSTs.
    watched = [r for r in results if r.name.startswith(("POST", "GET /s/"))]
    slow = [r.name for r in watched if r.median > TARGET_MS]
    verdict = "all within" if not slow else "over target: " + ", ".join(slow)
    print(f"\ntarget: share page and POST median <= {TARGET_MS:.0f} ms -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
