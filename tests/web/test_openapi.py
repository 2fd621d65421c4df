"""Schemathesis against the served OpenAPI description: every check, a bounded run.

The spec is read from ``/api/openapi.json`` and every request goes to the Django
app in this process through its WSGI entry point (no socket, no network). Each
operation is tested in all of schemathesis's phases (examples, coverage, fuzzing;
valid and invalid data) with every registered check, and the stateful test
follows the spec's links: POST /api/recommendations, then GET by the 201's token.
Rate limits are switched off by setting (``RATE_LIMIT_SCALE=0``): this tests the
contract, ``tests/web/test_ratelimit.py`` tests the limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck
from pytest_django.fixtures import Settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES

from advisor import apitokens
from advisor.wsgi import application

load_all_checks()
ALL_CHECKS: list[Any] = CHECKS.get_all()

# Invalid data may also be refused for its size before it is read: 413 is a rejection.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
            }
        }
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application, config=CONFIG)

# Bounded so the test runs in CI in well under a minute per operation.
EXAMPLES = hypothesis.settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits_off(settings: Settings) -> Iterator[None]:
    settings.RATE_LIMIT_SCALE = 0
    yield


@pytest.fixture
def bearer() -> dict[str, str]:
    """A user's API token, so the probe-run operations are tested past their 401.

    The user owns no recommendation, so every generated run stops at the 404 of the
    ownership check: none is queued and no generated host name is ever resolved
    (which could send DNS queries off loopback).
    """
    user = User.objects.create_user("schemathesis", password="not-used-here-1")
    return {"Authorization": f"Bearer {apitokens.api_token_create(user=user)[1]}"}


def test_every_check_is_run() -> None:
    names = {getattr(check, "__name__", type(check).__name__) for check in ALL_CHECKS}
    assert {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
        "unsupported_method",
    } <= names


@schema.parametrize()
@EXAMPLES
def test_each_operation_conforms_to_the_spec(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=ALL_CHECKS)


@schema.include(path_regex="^/api/probe-runs").parametrize()
@EXAMPLES
def test_probe_run_operations_conform_with_a_valid_token(
    case: schemathesis.Case, bearer: dict[str, str]
) -> None:
    case.call_and_validate(headers=bearer, checks=ALL_CHECKS)


class Stateful(schema.as_state_machine()):  # type: ignore[misc]
    def validate_response(
        self,
        response: Any,
        case: schemathesis.Case,
        additional_checks: Any = None,
        **kwargs: Any,
    ) -> None:
        case.validate_response(
            response,
            checks=ALL_CHECKS,
            transport_kwargs=kwargs or None,
            recorder=self.recorder,
        )


def test_the_spec_links_post_to_get_by_token() -> None:
    spec = schema.raw_schema
    post = spec["paths"]["/api/recommendations"]["post"]
    link = post["responses"]["201"]["links"]["GetRecommendation"]
    get = spec["paths"]["/api/recommendations/{token}"]["get"]
    assert link["operationId"] == get["operationId"]
    assert link["parameters"] == {"token": "$response.body#/token"}
    created = spec["components"]["schemas"]["RecommendationOut"]
    assert {"id", "token", "share_url"} <= set(created["required"])


def test_stateful_post_then_get_by_the_link() -> None:
    Stateful.run(
        settings=hypothesis.settings(
            max_examples=15,
            stateful_step_count=4,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_a_probe_run_takes_a_zero_fraction_id_as_the_integer_it_is(
    bearer: dict[str, str],
) -> None:
    from django.test import Client

    from advisor import services
    from advisor.usecase import parse_usecase

    owner = User.objects.get(username="schemathesis")
    decision = services.decision_create(
        usecase=parse_usecase({"interaction": "streaming"}), owner=owner
    )[0]
    client = Client(headers=bearer)
    for recommendation, expected in ((f"{decision.pk}.0", 422), ("1.5", 422), ("99999.0", 404)):
        response = client.post(
            "/api/probe-runs",
            data=f'{{"recommendation": {recommendation}, "targets": ["not a url"]}}',
            content_type="application/json",
        )
        assert response.status_code == expected, response.content
        if recommendation.endswith(".0") and expected == 422:
            # Found and judged: only the target is wrong, not the id.
            assert set(response.json()["errors"]) == {"targets[0]"}, response.content
        elif expected == 422:
            assert "recommendation" in response.json()["errors"]
