"""graphql+http:// and graphql+https:// probes: POST ``{__typename}`` and require ``data``.

The request goes through :func:`probes.http.fetch` (same connection, phases and
TLS handling as the http probe): a ``POST`` of ``{"query": "{__typename}"}``
as JSON to the URL's path. ``__typename`` is valid against every GraphQL schema
and is not introspection, so servers that disable introspection still answer.

The endpoint answered only when the body is a JSON object with a ``data``
object (``{"data": {"__typename": "Query"}}``), whatever the HTTP status (the
GraphQL-over-HTTP spec allows 4xx with a GraphQL body). A JSON body with only
``errors`` is a GraphQL server refusing the query: the sample fails with its
first message. Anything else fails as "not a GraphQL endpoint".
"""

from __future__ import annotations

import json
from typing import Any

from probes import http, tlsinfo
from probes.base import ProbeConfig, Sample, Target

QUERY = b'{"query":"{__typename}"}'
HEADERS = (
    ("Content-Type", "application/json"),
    ("Accept", "application/graphql-response+json, application/json;q=0.9"),
)


def judge(response: http.HttpResponse) -> Sample:
    """The sample for a response to the ``{__typename}`` query."""
    where = f"HTTP {response.status}, {response.header('content-type') or 'no content type'}"
    if response.truncated:
        return response.sample(
            ok=False, error=f"not a GraphQL endpoint: response over the cap ({where})"
        )
    try:
        document: Any = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        snippet = response.body[:40]
        return response.sample(
            ok=False,
            error=f"not a GraphQL endpoint: the response is not JSON ({where}): {snippet!r}",
        )
    if not isinstance(document, dict):
        return response.sample(
            ok=False, error=f"not a GraphQL endpoint: JSON is not an object ({where})"
        )
    data = document.get("data")
    errors = document.get("errors")
    if isinstance(data, dict):
        facts = {"typename": data.get("__typename"), "errors": bool(errors)}
        return response.sample(graphql=facts)
    if isinstance(errors, list) and errors:
        first = errors[0]
        message = first.get("message") if isinstance(first, dict) else first
        return response.sample(
            ok=False,
            error=f"GraphQL endpoint refused the query: {str(message)[:200]}",
            graphql={"errors": len(errors)},
        )
    keys = ", ".join(sorted(map(str, document))[:5]) or "none"
    return response.sample(
        ok=False, error=f"not a GraphQL endpoint: JSON without a data object (keys: {keys})"
    )


async def probe(target: Target, config: ProbeConfig, deadline: float) -> Sample:
    # The answer is parsed whole, so it is kept whole: with --throughput's
    # 256 MiB cap a 100 MB answer took over 200 MB of memory. It transfers
    # nothing, so it reads what it does without --throughput: 64 KiB.
    config = config.model_copy(update={"throughput": False})
    try:
        response = await http.fetch(
            target,
            config,
            deadline,
            method="POST",
            headers=HEADERS,
            body=QUERY,
            keep_body=config.read_cap,
        )
    except tlsinfo.CertificateVerifyError as exc:
        return http.verify_failure(exc)
    return judge(response)
