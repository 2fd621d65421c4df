"""The JSON API: ``POST /api/recommendations`` (contract section 5), GET by share token,
the OpenAPI spec and the docs page. Real engine, real database, Django's test client."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client, RequestFactory
from django.utils import timezone
from ninja.errors import HttpError
from openapi_spec_validator import validate
from pytest_django.fixtures import Settings

from advisor.api import MAX_BODY_BYTES, api
from advisor.engine import METHODS
from advisor.models import Decision, ShareLink
from advisor.usecase import FIELDS, UseCaseError, parse_usecase

pytestmark = pytest.mark.django_db

URL = "/api/recommendations"
DOCUMENT: dict[str, Any] = {
    "title": "Orders to the warehouse",
    "interaction": "fire_and_forget",
    "receiver_may_be_offline": True,
    "rate_per_second": 50,
}


def post_json(client: Client, body: Any, **extra: Any) -> Any:
    return client.post(URL, data=json.dumps(body), content_type="application/json", **extra)


def stored() -> tuple[int, int]:
    return Decision.objects.count(), ShareLink.objects.count()


def test_post_answers_201_with_the_advise_json_id_and_share_url() -> None:
    response = post_json(Client(), DOCUMENT)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["version"] == 1
    methods = [entry["method"] for entry in body["ranking"]]
    assert len(methods) == 11
    assert sorted(methods) == sorted(METHODS)  # each method exactly once
    scores = [entry["score"] for entry in body["ranking"]]
    assert scores == sorted(scores, reverse=True)  # best first
    for entry in body["ranking"][:3]:
        assert entry["reasons"], f"{entry['method']} is in the top three without a reason"
    assert isinstance(body["warnings"], list)

    decision = Decision.objects.get()
    assert body["id"] == decision.pk
    assert decision.owner is None
    # What is stored is what was answered, minus the three fields about where it lives.
    assert decision.result == {
        k: v for k, v in body.items() if k not in {"id", "token", "share_url"}
    }
    # The token is a field of its own: clients need not parse it out of share_url.
    assert body["share_url"].endswith(f"/s/{body['token']}")
    assert Client().get(f"{URL}/{body['token']}").json()["token"] == body["token"]
    assert decision.usecase["interaction"] == "fire_and_forget"

    assert body["share_url"].startswith("http://testserver/s/")
    page = Client().get(body["share_url"].removeprefix("http://testserver"))
    assert page.status_code == 200
    assert body["ranking"][0]["method"].encode() in page.content


def test_share_url_follows_the_host_the_caller_used() -> None:
    response = post_json(Client(), DOCUMENT, HTTP_HOST="localhost")
    assert response.status_code == 201
    assert response.json()["share_url"].startswith("http://localhost/s/")


def test_only_interaction_is_required() -> None:
    response = post_json(Client(), {"interaction": "streaming"})
    assert response.status_code == 201, response.content
    assert Decision.objects.get().usecase["message_bytes"] == 1024  # the default, stored


INVALID_DOCUMENTS = [
    pytest.param({**DOCUMENT, "colour": "blue"}, "colour", "not a field", id="unknown-field"),
    pytest.param({**DOCUMENT, "consumers": "3"}, "consumers", "whole number", id="wrong-type"),
    pytest.param({**DOCUMENT, "realtime": "yes"}, "realtime", "true or false", id="bool-as-text"),
    pytest.param({**DOCUMENT, "latency_ms": 0}, "latency_ms", "> 0", id="out-of-range-low"),
    pytest.param(
        {**DOCUMENT, "latency_ms": 86_400_001}, "latency_ms", "86,400,000", id="out-of-range-high"
    ),
    pytest.param({**DOCUMENT, "message_bytes": 0}, "message_bytes", ">= 1", id="zero-bytes"),
    pytest.param({"title": "no interaction"}, "interaction", "is required", id="missing"),
    pytest.param(
        {**DOCUMENT, "interaction": "telepathy"}, "interaction", "request_response", id="bad-enum"
    ),
    pytest.param({**DOCUMENT, "title": "x" * 201}, "title", "200 characters", id="title-long"),
    pytest.param({**DOCUMENT, "version": 2}, "version", "the number 1", id="version"),
]


@pytest.mark.parametrize(("document", "field", "says"), INVALID_DOCUMENTS)
def test_invalid_document_is_422_naming_the_field_and_stores_nothing(
    document: dict[str, Any], field: str, says: str
) -> None:
    response = post_json(Client(), document)

    assert response.status_code == 422, response.content
    body = response.json()
    assert field in body["errors"]
    assert says in body["errors"][field]
    assert {"loc": ["body", field], "msg": body["errors"][field], "type": "invalid_document"} in (
        body["detail"]
    )
    # The same words the form and `manage.py advise` use: one validator for all.
    with pytest.raises(UseCaseError) as parsed:
        parse_usecase(document)
    assert body["errors"] == parsed.value.errors
    assert stored() == (0, 0)


def test_several_bad_fields_are_all_reported() -> None:
    response = post_json(Client(), {"interaction": "streaming", "consumers": 0, "peers": "aliens"})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"consumers", "peers"}


@pytest.mark.parametrize("document", [[DOCUMENT], "streaming", 3, None], ids=str)
def test_a_json_value_that_is_not_an_object_is_422_on_the_body(document: Any) -> None:
    response = post_json(Client(), document)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["detail"][0]["loc"] == ["body"]
    assert "must be an object" in body["detail"][0]["msg"]
    assert stored() == (0, 0)


BAD_BODIES = [
    pytest.param(b'{"interaction": ', "not valid JSON", id="truncated"),
    pytest.param(b"interaction=streaming", "not valid JSON", id="not-json"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"   \n", "empty", id="blank"),
    pytest.param(b'{"interaction": "streaming", "title": "\xff\xfe"}', "not valid JSON", id="utf8"),
    pytest.param(b"[" * 50_000, "not valid JSON", id="deep-nesting"),
    pytest.param(
        b'{"interaction": "streaming", "message_bytes": ' + b"9" * 5000 + b"}",
        "not valid JSON",
        id="huge-integer",
    ),
]


@pytest.mark.parametrize(("raw", "says"), BAD_BODIES)
def test_a_body_that_is_not_json_is_400_with_a_clear_message(raw: bytes, says: str) -> None:
    response = Client().post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert says in response.json()["detail"]
    assert stored() == (0, 0)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_422_not_stored(number: bytes) -> None:
    # Python's json accepts these spellings; the use case must not.
    raw = b'{"interaction": "streaming", "latency_ms": ' + number + b"}"
    response = Client().post(URL, data=raw, content_type="application/json")
    assert response.status_code == 422, response.content
    assert set(response.json()["errors"]) == {"latency_ms"}
    assert stored() == (0, 0)


def test_an_oversized_body_is_413() -> None:
    padding = "x" * MAX_BODY_BYTES
    response = post_json(Client(), {**DOCUMENT, "notes": padding})
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    assert stored() == (0, 0)


def test_a_form_encoded_body_is_415_not_parsed_as_a_form() -> None:
    response = Client().post(URL, data={"interaction": "streaming"})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert stored() == (0, 0)


@pytest.mark.parametrize(
    "content_type", ["", "text/plain", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_is_read_under_any_json_or_plain_content_type(content_type: str) -> None:
    # Some HTTP clients send no type, and fetch() with a string body sends text/plain.
    raw = json.dumps(DOCUMENT).encode()
    response = Client().generic("POST", URL, raw, content_type=content_type)
    assert response.status_code == 201, response.content


def test_other_methods_on_the_collection_are_405() -> None:
    assert Client().get(URL).status_code == 405
    assert Client().delete(URL).status_code == 405


def test_a_logged_in_session_owns_its_recommendation_when_it_sends_the_csrf_token() -> None:
    user = User.objects.create_user("ada", password="correct horse battery staple")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    forged = post_json(client, DOCUMENT)
    assert forged.status_code == 403
    assert "X-CSRFToken" in forged.json()["detail"]
    assert stored() == (0, 0)

    client.get("/api/docs")  # any page of ours that renders a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = post_json(client, DOCUMENT, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content
    assert Decision.objects.get(pk=response.json()["id"]).owner == user


def test_an_anonymous_caller_needs_no_csrf_token() -> None:
    response = post_json(Client(enforce_csrf_checks=True), DOCUMENT)
    assert response.status_code == 201


def _create(client: Client) -> tuple[dict[str, Any], str]:
    response = post_json(client, DOCUMENT)
    assert response.status_code == 201
    body = response.json()
    token = body["share_url"].rsplit("/", 1)[1]
    # The 201 names the created resource: this API's own GET for it.
    assert response["Location"] == f"http://testserver{URL}/{token}"
    return body, token


def test_get_by_share_token_returns_the_same_json() -> None:
    created, token = _create(Client())

    response = Client().get(f"{URL}/{token}")

    assert response.status_code == 200
    assert response.json() == created
    assert response.json()["share_url"].endswith(f"/s/{token}")
    assert response["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response["X-Robots-Tag"]


def test_get_by_token_shows_the_frozen_result_not_a_new_run() -> None:
    created, token = _create(Client())
    decision = Decision.objects.get(pk=created["id"])
    # As if the engine had said something else back then: the API must not re-run it.
    frozen = {**decision.result, "warnings": ["said by an older engine"], "kb_version": "old"}
    Decision.objects.filter(pk=decision.pk).update(result=frozen)

    body = Client().get(f"{URL}/{token}").json()

    assert body["warnings"] == ["said by an older engine"]
    assert body["kb_version"] == "old"


def test_unknown_revoked_and_expired_tokens_get_the_same_404() -> None:
    _, revoked = _create(Client())
    _, expired = _create(Client())
    now = timezone.now()
    ShareLink.objects.filter(decision__pk=Decision.objects.order_by("pk")[0].pk).update(
        revoked_at=now
    )
    ShareLink.objects.filter(decision__pk=Decision.objects.order_by("pk")[1].pk).update(
        expires_at=now - timedelta(seconds=1)
    )

    answers = [
        Client().get(f"{URL}/{token}") for token in (revoked, expired, "no-such-token", "x" * 5000)
    ]

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert len({a.content for a in answers}) == 1
    for answer in answers:  # the share headers on the 404 too, as on the share page
        assert answer["Referrer-Policy"] == "no-referrer"
        assert "noindex" in answer["X-Robots-Tag"]
        assert answer.json() == {"detail": "No recommendation is shared under this token."}


def test_a_link_that_expires_later_still_works() -> None:
    _, token = _create(Client())
    ShareLink.objects.update(expires_at=timezone.now() + timedelta(days=1))
    assert Client().get(f"{URL}/{token}").status_code == 200


def test_openapi_spec_is_valid_and_documents_the_endpoint() -> None:
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)  # raises on anything that is not a valid OpenAPI document

    post = spec["paths"][URL]["post"]
    assert set(post["responses"]) >= {"201", "400", "422"}
    assert "Location" in post["responses"]["201"]["headers"]
    schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    usecase = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(usecase["properties"]) == set(FIELDS)
    assert usecase["required"] == ["interaction"]
    assert usecase["additionalProperties"] is False
    created_ref = post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    created = spec["components"]["schemas"][created_ref.rsplit("/", 1)[1]]
    assert {"ranking", "warnings", "id", "share_url"} <= set(created["properties"])
    assert "get" in spec["paths"][f"{URL}/{{token}}"]


@pytest.mark.parametrize("field", ["message_bytes", "file_bytes", "consumers", "version"])
def test_the_api_takes_a_number_with_a_zero_fraction_as_an_integer(field: str) -> None:
    # JSON Schema counts 1000868.0 an integer (the spec says "integer"), so the API does.
    value = 1.0 if field == "version" else 1000868.0
    response = Client().post(
        URL,
        data=f'{{"interaction": "file_transfer", "{field}": {value!r}}}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert Decision.objects.get().usecase[field] == int(value)


def test_the_api_shows_a_huge_float_as_written_and_refuses_it() -> None:
    response = Client().post(
        URL, data='{"interaction": "streaming", "message_bytes": 1e23}', content_type="text/plain"
    )
    assert response.status_code == 422
    assert response.json()["errors"]["message_bytes"].startswith("got 1e+23; accepted: ")


def test_openapi_example_request_is_a_valid_use_case() -> None:
    spec = Client().get("/api/openapi.json").json()
    example = spec["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert post_json(Client(), example).status_code == 201


def test_docs_page_loads_swagger_from_our_static_files_only() -> None:
    response = Client().get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    # Hashed names (CompressedManifestStaticFilesStorage), served far-future cached.
    assert re.search(r"/static/ninja/swagger-ui-bundle\.[0-9a-f]{12}\.js", html)
    assert "cdn" not in html.lower()
    assert "https://" not in html and "http://" not in html
    # "Try it out" while logged in needs the CSRF token (see test above): the page has it.
    assert 'data-api-csrf="true"' in html
    assert 'data-csrf-token=""' not in html
    for asset in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"):
        assert finders.find(asset), f"{asset} is not among the static files"


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_failure_answers_json_not_an_html_page(
    settings: Settings, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DEBUG = debug
    request = RequestFactory().post(URL, data="{}", content_type="application/json")
    response = api.on_exception(request, RuntimeError("the engine tripped"))
    assert response.status_code == 500
    if debug:  # a developer gets the traceback, as ninja gives it
        assert "RuntimeError: the engine tripped" in response.content.decode()
    else:
        assert response["Content-Type"].startswith("application/json")
        assert "problem in Switchboard" in json.loads(response.content)["detail"]
        assert "tripped" not in response.content.decode()
    assert "RuntimeError: the engine tripped" in caplog.text  # always in the log
    # The API's own errors keep their status and shape.
    refused = api.on_exception(request, HttpError(415, "not JSON"))
    assert refused.status_code == 415 and json.loads(refused.content) == {"detail": "not JSON"}


def test_many_unknown_fields_get_a_bounded_422() -> None:
    body = {"interaction": "streaming", **{f"colour{i}": i for i in range(500)}}
    response = post_json(Client(), body)
    assert response.status_code == 422
    answer = response.json()
    assert len(answer["errors"]) == 31
    assert answer["errors"]["(more)"].startswith("470 more fields have errors")
    assert answer["detail"][-1]["loc"] == ["body"]
    assert not stored()[0]
