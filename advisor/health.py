"""Liveness and readiness endpoints for load balancers and orchestrators.

``/healthz`` proves the process serves requests and touches nothing else, so a
slow database never makes the orchestrator kill healthy web processes.
``/readyz`` checks what a request may need: the database, the cache and the
broker, side by side, each in a thread of its own, and answers within
``READYZ_DEADLINE_S`` (1.5 s) whatever they do: a check that has not finished by
then is reported as ``timeout``. Every check also has a socket timeout of its own
(settings), so a thread left behind by a hung peer ends soon after.

The reasons are short words ("timeout", "connection refused", "unavailable"):
the exceptions' own text names hosts and ports, which /readyz, answering anyone,
must not reveal. The full error goes to the log.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

# Threads for the checks. Bounded: while a peer hangs, checks that cannot get a
# thread wait in the queue and are reported as a timeout like the others.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


class CheckFailed(Exception):
    """A check's reason, already safe to show."""


# GET and HEAD: many load balancers check with HEAD, and a 405 would mark the
# process down.
@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def reason(exc: BaseException) -> str:
    """A short reason for a failed check, naming no host, port or path."""
    if isinstance(exc, CheckFailed):
        return str(exc)
    seen: set[int] = set()
    current: BaseException | None = exc
    texts: list[str] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | socket.timeout):
            return "timeout"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        texts.append(f"{type(current).__name__} {current}".lower())
        current = current.__cause__ or current.__context__
    text = " ".join(texts)
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "refused" in text:
        return "connection refused"
    if "authentication" in text or "password" in text or "noauth" in text:
        return "authentication failed"
    return "unavailable"


def database_check() -> None:
    """``SELECT 1`` on a connection of this thread's own, closed afterwards."""
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


def cache_check() -> None:
    """Ask the cache's server itself (the app's cache fails soft and would hide it)."""
    cache = caches["default"]
    backend = type(cache).__module__
    if not backend.startswith(("django.core.cache.backends.redis", "advisor.cache")):
        return  # local memory: nothing to be down
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    if not client.ping():
        raise CheckFailed("unavailable")


def broker_check() -> None:
    """Connect to the Celery broker, with a connect timeout and a single try."""
    url: str = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckFailed("broker folder not writable") from exc
        if not os.access(folder, os.W_OK):
            raise CheckFailed("broker folder not writable")
        return
    from kombu import Connection

    timeout = float(settings.READYZ_DEADLINE_S)
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    options["socket_timeout"] = timeout
    options["socket_connect_timeout"] = timeout
    with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        # Redis accepts the TCP connection before it answers anything: make it answer.
        if conn.transport.driver_type == "redis":
            conn.default_channel.client.ping()  # type: ignore[attr-defined]


CHECKS: dict[str, Callable[[], None]] = {
    "database": database_check,
    "cache": cache_check,
    "broker": broker_check,
}


def run_checks(deadline_s: float | None = None) -> dict[str, str]:
    """Every check at once; "ok" or a short reason for each, within the deadline."""
    deadline = float(settings.READYZ_DEADLINE_S if deadline_s is None else deadline_s)
    futures = {name: _POOL.submit(check) for name, check in CHECKS.items()}
    concurrent.futures.wait(futures.values(), timeout=deadline)
    results: dict[str, str] = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()  # still queued: never runs; running: ends at its own timeout
            log.warning("readyz: %s check did not answer within %.1f s", name, deadline)
            results[name] = "timeout"
            continue
        exc = future.exception()
        if exc is None:
            results[name] = "ok"
        else:
            log.warning("readyz: %s check failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = reason(exc)
    return results


@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    ready = all(problem == "ok" for problem in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


# --- requests while a dependency is gone -----------------------------------------------

RETRY_AFTER_S = 30


def unavailable(exc: BaseException) -> str | None:
    """ "database" or "broker" when exc says that peer could not be reached (or timed out)."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return "database"
    try:
        from kombu.exceptions import OperationalError as BrokerError
    except ImportError:  # pragma: no cover - kombu is a dependency
        return None
    if isinstance(exc, BrokerError):
        return "broker"
    return None


def unavailable_message(what: str) -> str:
    return f"Switchboard cannot reach its {what} just now. Try again in a minute."


class DependencyUnavailableMiddleware:
    """A page whose database (or broker) is down or hung answers 503 with Retry-After
    and a sentence, not a 500 with a traceback in the log for every visitor; the
    error, with its host and port, goes to the log once per request as a warning."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        what = unavailable(exception)
        if what is None:
            return None
        log.warning(
            "%s unavailable for %s %s: %s: %s",
            what,
            request.method,
            request.path,
            type(exception).__name__,
            exception,
        )
        response = HttpResponse(
            unavailable_message(what) + "\n", status=503, content_type="text/plain; charset=utf-8"
        )
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
