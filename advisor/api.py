"""The JSON API (``docs/usecase.md`` section 5), served by django-ninja at ``/api/``.

``POST /api/recommendations`` takes a use-case document and answers 201 with the
``advise`` JSON plus ``id`` and ``share_url``; ``GET /api/recommendations/{token}``
gives back what a share link froze. The spec is at ``/api/openapi.json`` and the
interactive docs at ``/api/docs`` (Swagger UI from django-ninja's own static files,
never a CDN: that needs ``ninja`` in ``INSTALLED_APPS``).

The body is read and validated by hand with :func:`advisor.usecase.parse_usecase`
rather than by a ninja ``Schema`` argument, so an API caller gets exactly the
messages the form and ``manage.py advise`` give; the OpenAPI request schema is the
same :class:`~advisor.usecase.UseCase` model, added to the spec below.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import HttpError
from ninja.openapi.docs import Swagger
from ninja.openapi.schema import OpenAPISchema
from ninja.utils import check_csrf

from advisor import apitokens, health, ratelimit, selectors, services
from advisor.engine import Recommendation
from advisor.models import Decision
from advisor.usecase import UseCase, UseCaseError, parse_usecase

# A use-case document is a few hundred bytes (notes <= 5000 chars); anything far
# bigger is not one, and refusing it early keeps the parser's work bounded.
MAX_BODY_BYTES = 64 * 1024

# The example request body on the docs page; a test checks it is a valid use case.
EXAMPLE_DOCUMENT: dict[str, Any] = {
    "title": "Orders to the warehouse",
    "interaction": "fire_and_forget",
    "receiver_may_be_offline": True,
    "rate_per_second": 50,
}

_NOT_FOUND = "No recommendation is shared under this token."
# Django's logger for failed requests, so API failures land where the others do.
logger = logging.getLogger("django.request")


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    loc: list[str]
    msg: str
    type: str


class InvalidDocumentOut(Schema):
    """422: one entry per field, in ninja's usual ``detail`` list and as a plain map."""

    detail: list[FieldErrorOut]
    errors: dict[str, str]


class RecommendationOut(Recommendation):
    """The ``advise --format json`` object plus where to find it again."""

    id: int
    token: str = Field(
        description="The share token: GET /api/recommendations/{token} answers this object again."
    )
    share_url: str


# The OpenAPI link from the 201 to the GET that reads it back, by its token.
GET_BY_TOKEN_LINK: dict[str, Any] = {
    "operationId": "advisor_api_recommendation_get",
    "parameters": {"token": "$response.body#/token"},
    "description": "The recommendation just made, read back by its share token.",
}

# ninja answers 422 with its own body when a path parameter is not of its type
# (``/api/probe-runs/abc``); the spec says so for every operation that has one.
PATH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "PathErrorOut",
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
                "required": ["type", "loc", "msg"],
            },
        }
    },
    "required": ["detail"],
}


class _LocalSwagger(Swagger):
    """Swagger UI from django-ninja's bundled static files, always sending the CSRF token.

    ninja falls back to a CDN page when ``ninja`` is not an installed app; rendering
    the local template directly makes a missing app an error instead of a silent
    CDN load. The token is always added because a logged-in visitor trying
    ``POST /api/recommendations`` from this page sends the session cookie, and then
    the endpoint asks for it (see :func:`_owner`); ninja only adds it when an auth
    class asks for CSRF.
    """

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            "add_csrf": True,
        }
        return render(request, self.template, context)


class SwitchboardAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        # The request body is parsed by hand (see the module docstring), so ninja
        # does not know its model; the spec gets it from the one source of truth.
        schemas = schema["components"].setdefault("schemas", {})
        schemas["UseCase"] = USECASE_SCHEMA
        schemas["PathErrorOut"] = PATH_ERROR_SCHEMA
        for operations in schema["paths"].values():
            for operation in operations.values():
                typed = [
                    p
                    for p in operation.get("parameters", [])
                    if p.get("in") == "path" and p.get("schema", {}).get("type") != "string"
                ]
                if typed:
                    operation["responses"].setdefault(
                        422,
                        {
                            "description": "A path parameter is not of its type",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/PathErrorOut"}
                                }
                            },
                        },
                    )
        return schema


USECASE_SCHEMA: dict[str, Any] = UseCase.model_json_schema()

api = SwitchboardAPI(
    title="Switchboard API",
    version="1",
    description=(
        "Recommend how two servers should talk. Send a use-case document "
        "(docs/usecase.md section 1) to `POST /api/recommendations`; the answer "
        "ranks all eleven methods and carries a share link that opens without login."
    ),
    urls_namespace="api",
    docs=_LocalSwagger(),
)


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A failure of ours, as JSON: an API client must not get Django's HTML error page.

    The traceback goes to the log as Django's own handler would send it; under
    DEBUG the answer carries it, as ninja does, for whoever is developing.
    """
    if what := health.unavailable(exc):  # down or hung: 503, try again later
        logger.warning("%s unavailable for %s: %s: %s", what, request.path, type(exc).__name__, exc)
        response = api.create_response(
            request, {"detail": health.unavailable_message(what)}, status=503
        )
        response["Retry-After"] = str(health.RETRY_AFTER_S)
        return response
    logger.error("Internal Server Error: %s", request.path, exc_info=exc)
    if settings.DEBUG:
        trace = "".join(traceback.format_exception(exc))
        return HttpResponse(trace, status=500, content_type="text/plain; charset=utf-8")
    body = {
        "detail": "Switchboard failed on this request. Try again later; if the same "
        "document keeps failing, it has hit a problem in Switchboard itself."
    }
    return api.create_response(request, body, status=500)


def _json_body(request: HttpRequest) -> Any:
    """The request body as parsed JSON, or an HttpError that says what is wrong with it."""
    content_type = request.content_type or ""
    # JSON, or no type at all (some HTTP clients send none); text/plain is what a
    # browser's fetch() sends for a string body. A form encoding is refused rather
    # than guessed at, so `curl -d` without the header gets a clear answer.
    json_like = content_type in {"application/json", "text/plain"} or content_type.endswith("+json")
    if content_type and not json_like:
        raise HttpError(
            415, f"the body must be JSON (Content-Type: application/json), got {content_type}"
        )
    try:
        raw = request.body
    except RequestDataTooBig:
        raise HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise HttpError(400, "the body is empty; send a use-case document as a JSON object")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HttpError(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError) as exc:
        # Not UTF-8, an integer too long to convert, or nesting deep enough to
        # exhaust the parser: all are bad input, none is a server error.
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None


def _owner(request: HttpRequest) -> User | None:
    """Who owns the new decision: the bearer token's user, the session's user, or nobody.

    A bearer token (``manage.py create_api_token``) names its user and needs no
    CSRF token: no browser sends it by itself. An invalid one is a 401.

    The endpoint is CSRF-exempt for anonymous callers: it is meant for servers
    and scripts, and an anonymous recommendation changes nothing that belongs
    to anyone. A request that carries a session cookie would put the decision
    in that user's "My decisions", so, as for any cookie-authenticated write,
    it must prove it comes from our own pages with the CSRF token.
    """
    try:
        user, by_token = apitokens.request_user(request)
    except apitokens.InvalidToken as exc:
        raise HttpError(401, str(exc)) from None
    if by_token:
        return user if isinstance(user, User) else None
    if not user.is_authenticated:
        return None
    if check_csrf(request) is not None:
        raise HttpError(
            403,
            "CSRF check failed: a request made with a logged-in session must send the "
            "X-CSRFToken header (callers without a session need none)",
        )
    return user if isinstance(user, User) else None


def _invalid(errors: dict[str, str]) -> dict[str, Any]:
    detail = [
        {
            # "(document)" (the body as a whole) and "(more)" (the count of errors
            # not listed) are parse_usecase's names for what is not one field.
            "loc": ["body"] if field in {"(document)", "(more)"} else ["body", field],
            "msg": message,
            "type": "invalid_document",
        }
        for field, message in errors.items()
    ]
    return {"detail": detail, "errors": errors}


@api.post(
    "/recommendations",
    response={
        201: RecommendationOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        413: ErrorOut,
        415: ErrorOut,
        422: InvalidDocumentOut,
        429: ErrorOut,
    },
    summary="Recommend a method for a use case",
    openapi_extra={
        "responses": {
            201: {  # ninja keys its responses by int; a "201" key would be a second entry
                "links": {"GetRecommendation": GET_BY_TOKEN_LINK},
                "headers": {
                    "Location": {
                        "description": "This API's URL of the new recommendation "
                        "(GET /api/recommendations/{token}).",
                        "schema": {"type": "string", "format": "uri"},
                    }
                },
            }
        },
        "requestBody": {
            "required": True,
            "description": "A use-case document. Only `interaction` is required; "
            "unknown fields are an error.",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/UseCase"},
                    "example": EXAMPLE_DOCUMENT,
                }
            },
        },
    },
    tags=["recommendations"],
)
def recommendation_create(request: HttpRequest, response: HttpResponse) -> Status[dict[str, Any]]:
    """Rank all eleven methods for the use case, store the result and share it.

    201: the `advise --format json` object plus `id`, `token` (for the GET below) and
    `share_url` (opens read-only without login). 422: the document is not a valid use
    case; `errors` maps each field to what is wrong and what is accepted. 400: the body
    is not JSON. Nothing is stored unless the answer is 201.
    """
    document = _json_body(request)
    try:
        usecase = parse_usecase(document)
    except UseCaseError as exc:
        return Status(422, _invalid(exc.errors))
    owner = _owner(request)
    if owner is None and (limited := ratelimit.anonymous_recommendation(request)):
        response["Retry-After"] = str(limited.retry_after)
        return Status(429, {"detail": ratelimit.retry_message(limited)})
    decision, token = services.decision_create(usecase=usecase, owner=owner)
    # ninja hands in the response it will send, so the created resource can be named.
    response["Location"] = request.build_absolute_uri(f"{request.path}/{token}")
    return Status(201, _out(request, decision, token))


@api.get(
    "/recommendations/{token}",
    response={200: RecommendationOut, 404: ErrorOut, 429: ErrorOut},
    summary="A shared recommendation, as it was frozen",
    tags=["recommendations"],
)
def recommendation_get(request: HttpRequest, token: str) -> HttpResponse:
    """The recommendation a share link points to, exactly as stored when it was made.

    Unknown, revoked and expired tokens all get the same 404.
    """
    limited = ratelimit.share_lookup(request)
    link = None if limited else selectors.share_link_get_active(token=token)
    if limited:
        response = ratelimit.too_many_requests(limited, json=True)
    elif link is None:
        body: dict[str, Any] = {"detail": _NOT_FOUND}
        response = api.create_response(request, body, status=404)
    else:
        response = api.create_response(request, _out(request, link.decision, token), status=200)
    # Same rules as the share page, the 404 included: the token is a secret in the
    # URL, so it must not leak through Referer, and a shared result is not for
    # search engines.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    return response


def _out(request: HttpRequest, decision: Decision, token: str) -> dict[str, Any]:
    """The frozen ``advise`` JSON, as stored, plus the decision's id, token and share URL."""
    return {
        **decision.result,
        "id": decision.pk,
        "token": token,
        "share_url": request.build_absolute_uri(services.share_url(token)),
    }


# Probe runs (section 6) live with the probes; their router is mounted here.
from probes.api import router as probe_runs_router  # noqa: E402

api.add_router("/probe-runs", probe_runs_router)
