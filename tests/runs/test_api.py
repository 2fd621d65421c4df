"""``/api/probe-runs`` as section 6 of docs/usecase.md says, API tokens, and ownership.

Django's test client against the real views and database; the runs are left
queued (the tests run inside a transaction, so nothing reaches a broker) or
ended by calling the services as a worker would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from advisor.api import api
from advisor.models import ApiToken, Decision
from advisor.selectors import token_hash
from probes import services
from probes.models import ProbeRun

pytestmark = pytest.mark.django_db

RUNS = "/api/probe-runs"
DOCUMENT = {"interaction": "fire_and_forget", "receiver_may_be_offline": True}


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    cache.clear()


def token_for(username: str) -> str:
    User.objects.create_user(username, password="a-long-test-password-1")
    return _command_token(username)


def _command_token(username: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("create_api_token", username, stdout=out)
    return out.getvalue().strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: Client, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        path, data=json.dumps(body), content_type="application/json", headers=headers
    )


def recommendation(client: Client, token: str) -> int:
    response = post(client, "/api/recommendations", DOCUMENT, headers=bearer(token))
    assert response.status_code == 201, response.content
    return int(response.json()["id"])


def test_create_api_token_prints_it_once_and_stores_only_its_hash() -> None:
    token = token_for("alice")
    assert token.startswith("sb_") and len(token) > 40
    row = ApiToken.objects.get()
    assert row.token_hash == token_hash(token) and token not in row.token_hash
    assert _command_token("alice") != token  # a second one is a new token
    with pytest.raises(CommandError) as caught:
        call_command("create_api_token", "nobody")
    assert caught.value.returncode == 2


def test_a_recommendation_made_with_a_bearer_token_belongs_to_its_user() -> None:
    token = token_for("alice")
    decision_id = recommendation(Client(enforce_csrf_checks=True), token)
    assert Decision.objects.get(pk=decision_id).owner == User.objects.get(username="alice")
    wrong = post(Client(), "/api/recommendations", DOCUMENT, headers=bearer("sb_not-a-token"))
    assert wrong.status_code == 401
    assert Decision.objects.count() == 1


def test_post_answers_202_queued_and_get_answers_the_section_6_shape() -> None:
    token = token_for("alice")
    client = Client(enforce_csrf_checks=True)  # a bearer token needs no CSRF token
    decision_id = recommendation(client, token)
    body = {"recommendation": decision_id, "targets": ["tcp://127.0.0.1:9"], "count": 3}
    response = post(client, RUNS, body, headers=bearer(token))
    assert response.status_code == 202, response.content
    created = response.json()
    assert created == {"id": created["id"], "status": "queued"}
    assert response["Location"].endswith(f"{RUNS}/{created['id']}")
    got = client.get(f"{RUNS}/{created['id']}", headers=bearer(token)).json()
    assert {"id", "status", "results", "evidence", "advice"} <= set(got)
    assert (got["status"], got["results"], got["evidence"], got["advice"]) == (
        "queued",
        [],
        [],
        None,
    )
    assert got["progress"] == {"targets": 1, "targets_done": 0, "samples": 3, "samples_done": 0}


def test_once_ended_the_answer_has_results_per_target_evidence_and_advice() -> None:
    token = token_for("alice")
    client = Client()
    decision_id = recommendation(client, token)
    body = {"recommendation": decision_id, "targets": ["tcp://127.0.0.1:9"], "count": 2}
    run_id = post(client, RUNS, body, headers=bearer(token)).json()["id"]
    job = ProbeRun.objects.get(pk=run_id).jobs.get()
    attempt = services.job_claim(job_id=job.pk, worker="w")
    assert attempt is not None
    result = {
        "kind": "tcp",
        "target": "tcp://127.0.0.1:9",
        "address": "127.0.0.1",
        "ok": False,
        "samples": 2,
        "succeeded": 0,
        "loss": 1.0,
        "latency_ms": None,
        "jitter_ms": None,
        "phases_ms": dict.fromkeys(("dns", "connect", "tls", "ttfb", "transfer")),
        "throughput_bps": None,
        "details": {},
        "error": "connection refused",
    }
    services.job_complete(job_id=job.pk, attempt=attempt, result=result, series=[[0, None]])
    got = client.get(f"{RUNS}/{run_id}", headers=bearer(token)).json()
    assert got["status"] == "done"
    [one] = got["results"]
    assert one["vantage_point"] == services.default_vantage_point()
    assert one["error"] == "connection refused" and one["failure"] == "refused"
    assert len(got["advice"]["ranking"]) == 11
    # What the refusal changed, in words, naming the measurement.
    [note] = got["evidence"]
    assert note["effect"] in {"ruled_out", "demoted"} and note["method"] == job.method
    assert "tcp://127.0.0.1:9 refused the connection" in note["text"]
    assert note["vantage_point"] == services.default_vantage_point()


def test_someone_elses_decision_or_run_is_not_found() -> None:
    alice, bob = token_for("alice"), token_for("bob")
    client = Client()
    alices = recommendation(client, alice)
    body = {"recommendation": alices, "targets": ["tcp://127.0.0.1:9"]}
    assert post(client, RUNS, body, headers=bearer(bob)).status_code == 404
    run_id = post(client, RUNS, body, headers=bearer(alice)).json()["id"]
    assert client.get(f"{RUNS}/{run_id}", headers=bearer(bob)).status_code == 404
    assert client.get(f"{RUNS}/{run_id + 1000}", headers=bearer(alice)).status_code == 404
    # An anonymous recommendation belongs to nobody: nobody probes for it.
    anonymous = post(client, "/api/recommendations", DOCUMENT).json()["id"]
    body["recommendation"] = anonymous
    assert post(client, RUNS, body, headers=bearer(alice)).status_code == 404


def test_probing_needs_a_user_and_a_session_needs_its_csrf_token() -> None:
    token = token_for("alice")
    decision_id = recommendation(Client(), token)
    body = {"recommendation": decision_id, "targets": ["tcp://127.0.0.1:9"]}
    assert post(Client(), RUNS, body).status_code == 401
    assert Client().get(f"{RUNS}/1").status_code == 401
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="alice", password="a-long-test-password-1")
    assert post(browser, RUNS, body).status_code == 403
    browser.get(f"/d/{decision_id}")  # sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    assert post(browser, RUNS, body, headers={"X-CSRFToken": csrf}).status_code == 202
    assert ProbeRun.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"targets": ["tcp://127.0.0.1:9"] * 1, "count": 101}, "count", "1 to 100"),
        ({"targets": ["tcp://127.0.0.1:9"], "timeout": 11}, "timeout", "10 s"),
        ({"targets": [f"tcp://127.0.0.1:{p}" for p in range(1, 22)]}, "targets", "at most 20"),
        ({"targets": "tcp://127.0.0.1:9"}, "targets", "list of target URLs"),
        ({"targets": ["ftp://[::1"]}, "targets[0]", "invalid URL"),
        ({"targets": ["tcp://127.0.0.1:9"], "colour": "red"}, "colour", "not a field"),
        ({"targets": ["tcp://127.0.0.1:9"], "vantage_points": "x"}, "vantage_points", "list"),
        ({"targets": ["tcp://127.0.0.1:9"], "insecure": "yes"}, "insecure", "true or false"),
    ],
)
def test_a_bad_run_is_a_422_naming_the_field(body: dict[str, Any], field: str, words: str) -> None:
    token = token_for("alice")
    client = Client()
    body = {"recommendation": recommendation(client, token), **body}
    response = post(client, RUNS, body, headers=bearer(token))
    assert response.status_code == 422, response.content
    assert words in response.json()["errors"][field]
    assert ProbeRun.objects.count() == 0


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_count_beyond_any_float_is_a_422_not_a_500(number: str) -> None:
    token = token_for("alice")
    client = Client()
    decision_id = recommendation(client, token)
    text = (
        f'{{"recommendation": {decision_id}, "targets": ["tcp://127.0.0.1:9"], "count": {number}}}'
    )
    response = client.post(RUNS, data=text, content_type="application/json", headers=bearer(token))
    assert response.status_code == 422, response.content
    assert "whole number" in response.json()["errors"]["count"]
    assert ProbeRun.objects.count() == 0


def test_a_body_that_is_not_a_json_object_is_a_400() -> None:
    token = token_for("alice")
    client = Client()
    for text in ("{", "[1]"):
        response = client.post(
            RUNS, data=text, content_type="application/json", headers=bearer(token)
        )
        assert response.status_code == 400
    assert response.status_code == 400


@override_settings(RATE_LIMIT_SCALE=1)
def test_too_many_runs_answer_429_with_retry_after() -> None:
    token = token_for("alice")
    client = Client()
    body = {"recommendation": recommendation(client, token), "targets": ["tcp://127.0.0.1:9"]}
    for _ in range(services.RUNS_PER_USER.count):
        assert post(client, RUNS, body, headers=bearer(token)).status_code == 202
    refused = post(client, RUNS, body, headers=bearer(token))
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert ProbeRun.objects.count() == services.RUNS_PER_USER.count


def test_the_spec_describes_the_probe_run_endpoints() -> None:
    paths = api.get_openapi_schema()["paths"]
    assert {"post"} <= set(paths["/api/probe-runs"])
    assert {"get"} <= set(paths["/api/probe-runs/{run_id}"])
    responses = paths["/api/probe-runs"]["post"]["responses"]
    assert {"202", "401", "404", "422", "429"} <= {str(code) for code in responses}
