"""``/api/probe-runs`` (``docs/usecase.md`` section 6), a router of the site's API.

``POST /api/probe-runs`` queues a run on one of the caller's recommendations and
answers 202 ``{"id", "status": "queued"}``; ``GET /api/probe-runs/ID`` answers
its status, results, evidence and (once ended) the advice recomputed with the
evidence. Both need a user: ``Authorization: Bearer TOKEN`` (from
``manage.py create_api_token``) or a logged-in session, which must send the
CSRF token to POST. Someone else's recommendation or run is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from ninja.utils import check_csrf

from advisor import apitokens, ratelimit
from advisor.models import Decision
from probes import selectors, services
from probes.registry import schemes

router = Router(tags=["probe runs"])

MAX_BODY_BYTES = 64 * 1024
FIELDS = {
    "recommendation",
    "targets",
    "count",
    "interval",
    "timeout",
    "vantage_points",
    "throughput",
    "insecure",
}


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    loc: list[str]
    msg: str
    type: str


class InvalidRunOut(Schema):
    detail: list[FieldErrorOut]
    errors: dict[str, str]


class RunQueuedOut(Schema):
    id: int
    status: str


class RunOut(Schema):
    id: int
    status: str
    recommendation: int
    vantage_points: list[str]
    count: int
    interval: float
    timeout: float
    created_at: str
    finished_at: str | None
    progress: dict[str, int]
    results: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    advice: dict[str, Any] | None
    reason: str | None


def _any_case(word: str) -> str:
    # ECMA-262 patterns have no case-insensitive flag; schemes are read in any case.
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else f"\\{c}" for c in word)


# A target URL starts with a scheme the registry knows and names a host; whether the
# guard allows its address is only known once it is resolved (a 422 naming it, if not).
TARGET_PATTERN = "^(?:" + "|".join(_any_case(s) for s in schemes()) + r")://[^/?#\s]"

# The body POST /api/probe-runs reads (by hand, in probe_run_create), for the spec.
RUN_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "ProbeRunIn",
    "type": "object",
    "properties": {
        "recommendation": {
            "type": "integer",
            "description": "The id of one of your recommendations (the 201's `id`).",
        },
        "targets": {
            "type": "array",
            "items": {
                "type": "string",
                "maxLength": services.MAX_URL_LENGTH,
                "pattern": TARGET_PATTERN,
            },
            "minItems": 1,
            "maxItems": services.MAX_TARGETS,
            "uniqueItems": True,
            "description": "Target URLs, as for `manage.py probe`. One the probe guard "
            "refuses (an address not allowed) is a 422 naming it.",
        },
        "count": {"type": "integer", "minimum": 1, "maximum": services.MAX_COUNT},
        "interval": {
            "type": "number",
            "minimum": services.MIN_INTERVAL_MS,
            "maximum": services.MAX_INTERVAL_MS,
            "description": "Milliseconds between samples.",
        },
        "timeout": {
            "type": "number",
            "minimum": 0.1,
            "maximum": services.MAX_TIMEOUT_S,
            "description": "Seconds each sample may take.",
        },
        "vantage_points": {
            "type": "array",
            "items": {"type": "string"},
            "maxItems": services.MAX_VANTAGE_POINTS,
        },
        "throughput": {"type": "boolean"},
        "insecure": {"type": "boolean"},
    },
    "required": ["recommendation", "targets"],
    "additionalProperties": False,
}


def _user(request: HttpRequest, *, write: bool) -> User:
    try:
        user, by_token = apitokens.request_user(request)
    except apitokens.InvalidToken as exc:
        raise HttpError(401, str(exc)) from None
    if not user.is_authenticated or not isinstance(user, User):
        raise HttpError(
            401,
            "log in, or send 'Authorization: Bearer TOKEN' with a token from "
            "'python manage.py create_api_token USERNAME'",
        )
    if write and not by_token and check_csrf(request) is not None:
        raise HttpError(
            403, "CSRF check failed: a logged-in session must send the X-CSRFToken header"
        )
    return user


def _body(request: HttpRequest) -> dict[str, Any]:
    content_type = request.content_type or ""
    if content_type and content_type not in {"application/json", "text/plain"}:
        raise HttpError(
            415, f"the body must be JSON (Content-Type: application/json), got {content_type}"
        )
    raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object with recommendation and targets")
    return data


def _invalid(errors: dict[str, str]) -> dict[str, Any]:
    detail = [
        {"loc": ["body", *field.replace("]", "").split("[")], "msg": msg, "type": "invalid_run"}
        for field, msg in errors.items()
    ]
    return {"detail": detail, "errors": errors}


def _too_many(exc: ratelimit.RateLimited) -> HttpResponse:
    response = JsonResponse({"detail": str(exc), "retry_after": exc.retry_after}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@router.post(
    "",
    response={
        202: RunQueuedOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        413: ErrorOut,
        415: ErrorOut,
        422: InvalidRunOut,
        429: ErrorOut,
    },
    summary="Queue a probe run on a recommendation",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RUN_REQUEST_SCHEMA}},
        }
    },
)
def probe_run_create(request: HttpRequest, response: HttpResponse) -> Any:
    """Probe the targets from the workers of the given vantage points.

    Body: `{"recommendation": ID, "targets": [URL, ...], "count": N}` with optional
    `vantage_points` (worker queues; default the default queue), `interval` (ms),
    `timeout` (s), `throughput` and `insecure`. At most 20 targets, count <= 100,
    timeout <= 10 s. 202: `{"id", "status": "queued"}`. 404: no such recommendation
    of yours. 422: what is wrong, per field. 429: over a rate limit (Retry-After).
    """
    user = _user(request, write=True)
    data = _body(request)
    errors = {key: "is not a field of a probe run" for key in data if key not in FIELDS}
    decision_id = data.get("recommendation")
    # JSON Schema counts 1000.0 an integer; so does this id (exact doubles only).
    if isinstance(decision_id, float) and decision_id.is_integer() and abs(decision_id) <= 2**53:
        decision_id = int(decision_id)
    if isinstance(decision_id, bool) or not isinstance(decision_id, int):
        errors["recommendation"] = "must be the id of one of your recommendations"
    targets = data.get("targets")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        errors["targets"] = "must be a list of target URLs"
    for flag in ("throughput", "insecure"):
        if flag in data and not isinstance(data[flag], bool):
            errors[flag] = "must be true or false"
    if errors:
        return Status(422, _invalid(errors))
    decision = Decision.objects.filter(pk=int(str(decision_id)), owner_id=user.pk).first()
    if decision is None:
        raise HttpError(404, "no recommendation of yours has this id")
    try:
        run = services.run_create(
            user=user,
            decision=decision,
            targets=[services.TargetSpec(url=url) for url in targets or []],
            count=data.get("count", services.DEFAULT_COUNT),
            interval_ms=data.get("interval", services.DEFAULT_INTERVAL_MS),
            timeout_s=data.get("timeout", services.DEFAULT_TIMEOUT_S),
            vantage_points=data.get("vantage_points"),
            throughput=bool(data.get("throughput", False)),
            insecure=bool(data.get("insecure", False)),
        )
    except services.RunInvalid as exc:
        return Status(422, _invalid(exc.errors))
    except ratelimit.RateLimited as exc:
        return _too_many(exc)
    response["Location"] = request.build_absolute_uri(f"{request.path.rstrip('/')}/{run.pk}")
    return Status(202, {"id": run.pk, "status": run.status})


@router.get(
    "/{run_id}",
    response={200: RunOut, 401: ErrorOut, 404: ErrorOut},
    summary="A probe run: status, results, evidence and the advice with it",
)
def probe_run_get(request: HttpRequest, run_id: int) -> Any:
    """`status` is queued, running, done or failed; `results` holds the section 4 object
    of each ended target (plus `vantage_point`); `evidence` says what the measurements
    changed; `advice` is the advise JSON recomputed with them, once the run has ended."""
    user = _user(request, write=False)
    run = selectors.run_get_for_user(user=user, run_id=run_id)
    if run is None:
        raise HttpError(404, "no probe run of yours has this id")
    response = JsonResponse(selectors.run_api_json(run))
    response["Cache-Control"] = "private, no-store"
    return response
