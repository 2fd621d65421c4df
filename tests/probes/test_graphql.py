"""graphql+http(s) probe against real endpoints on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest

from probes import graphql, tlsinfo
from probes.base import ProbeConfig
from probes.runner import run_probe
from tests.probes.servers_http import (
    Server,
    certificates,
    probe_now,
    running,
    start_http,
)


def gql_url(server: Server, path: str, scheme: str = "graphql+http") -> str:
    return f"{scheme}://localhost:{server.port}{path}"


def test_graphql_endpoint_answers_typename(web: Server) -> None:
    before = len(web.requests)
    sample = probe_now(graphql, gql_url(web, "/graphql"))

    assert sample.ok, sample.error
    assert sample.details["graphql"] == {"typename": "Query", "errors": False}
    assert sample.phases_ms["ttfb"] is not None
    request = web.requests[before]
    assert request.method == "POST" and request.target == "/graphql"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"query": "{__typename}"}


def test_graphql_errors_without_data_fail_with_the_server_message(web: Server) -> None:
    sample = probe_now(graphql, gql_url(web, "/graphql-errors"))

    assert not sample.ok
    assert sample.error == "GraphQL endpoint refused the query: not authorised"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/json", "not a GraphQL endpoint: JSON without a data object (keys: items, status)"),
        ("/html", "not a GraphQL endpoint: the response is not JSON (HTTP 200, text/html)"),
        ("/missing", "not a GraphQL endpoint: the response is not JSON (HTTP 404"),
    ],
)
def test_non_graphql_endpoints_fail_clearly(web: Server, path: str, error: str) -> None:
    sample = probe_now(graphql, gql_url(web, path))

    assert not sample.ok
    assert (sample.error or "").startswith(error)


def test_graphql_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    with certificates() as certs:
        monkeypatch.setenv(tlsinfo.ENV_CA_FILE, str(certs.ca_file))
        with running(start_http(certs.trusted())) as server:
            sample = probe_now(graphql, gql_url(server, "/graphql", "graphql+https"))
    assert sample.ok, sample.error
    assert sample.details["tls"]["verified"] is True
    assert sample.details["graphql"]["typename"] == "Query"


def test_run_probe_graphql(web: Server, allow_loopback: str) -> None:
    result = asyncio.run(
        run_probe(
            gql_url(web, "/graphql"),
            ProbeConfig(count=2, interval_ms=10, timeout_s=2),
            allowed_networks=allow_loopback,
        )
    )
    assert result.ok and result.kind == "graphql+http" and result.succeeded == 2

    refused = asyncio.run(
        run_probe(
            gql_url(web, "/json"),
            ProbeConfig(count=2, interval_ms=10, timeout_s=2),
            allowed_networks=allow_loopback,
        )
    )
    assert not refused.ok and refused.loss == 1.0
    assert (refused.error or "").startswith("not a GraphQL endpoint")
