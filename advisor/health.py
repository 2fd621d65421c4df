"""Liveness and readiness endpoints for load balancers and orchestrators.

``/healthz`` proves the process serves requests and touches nothing else, so a
slow database never makes the orchestrator kill healthy web processes.
``/readyz`` checks the two things a request may need: the database and the broker.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


# GET and HEAD: many load balancers check with HEAD, and a 405 would mark the
# process down.
@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def database_check() -> str | None:
    """Return None when the database answers, else the reason it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}: {exc}"
    return None


def broker_check() -> str | None:
    """Return None when the Celery broker is reachable, else the reason."""
    url: str = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"broker folder {folder}: {exc}"
        if not os.access(folder, os.W_OK):
            return f"broker folder {folder} is not writable"
        return None
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:  # kombu raises many types; all mean "not ready"
        return f"{type(exc).__name__}: {exc}"
    return None


@never_cache
@require_safe
def readyz(request: HttpRequest) -> HttpResponse:
    checks = {"database": database_check(), "broker": broker_check()}
    ready = all(problem is None for problem in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
