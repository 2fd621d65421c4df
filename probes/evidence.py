"""What probe jobs measured, as the engine's evidence.

:func:`measurement_of` turns one ended job into an
:class:`advisor.evidence.Measurement` (plain data: method, implementation,
vantage point, time, failure, percentiles, jitter, loss, throughput, TLS
facts). :func:`advise` hands them to the engine, which alone decides what they
change (its evidence rules live in the knowledge base), and returns the advice
recomputed with them and the engine's notes of what changed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from advisor import engine
from advisor.evidence import Failure, Measurement
from advisor.usecase import UseCaseError, parse_usecase
from probes.models import ProbeJob, Status

logger = logging.getLogger(__name__)

# Why a probe got no answer, read from its error until every result names it
# itself (the instrument's ``failure``): the first pattern that matches wins.
_FAILURE_PATTERNS: tuple[tuple[Failure, re.Pattern[str]], ...] = (
    ("dns", re.compile(r"could not resolve|has no A or AAAA|resolving .* timed out", re.I)),
    ("refused", re.compile(r"connection refused", re.I)),
    ("timeout", re.compile(r"timed out", re.I)),
    ("tls", re.compile(r"\bTLS\b|\bSSL\b|certificate", re.I)),
    (
        "wrong_protocol",
        re.compile(
            r"not an? [\w-]+ (server|broker|response)|not an? HTTP|malformed|unexpected"
            r"|no health service|reset before any response|closed before any response",
            re.I,
        ),
    ),
)


def failure_of(result: dict[str, Any]) -> Failure | None:
    """Why the target did not answer, in the words the engine's rules match on."""
    if result.get("ok"):
        return None
    given = result.get("failure")
    if isinstance(given, str) and given in _KINDS:
        return given  # type: ignore[return-value]  # checked against the Literal's values
    details = result.get("details")
    if isinstance(details, dict) and details.get("refused"):
        return "not_allowed"
    error = str(result.get("error") or "")
    for kind, pattern in _FAILURE_PATTERNS:
        if pattern.search(error):
            return kind
    return "other"


_KINDS = frozenset({"refused", "timeout", "wrong_protocol", "tls", "dns", "not_allowed", "other"})


def tls_facts(details: Any) -> dict[str, Any]:
    """The TLS facts a result carries, wherever its probe put them."""
    if not isinstance(details, dict):
        return {}
    nested = details.get("tls")
    if isinstance(nested, dict) and ("verified" in nested or "days_to_expiry" in nested):
        return nested
    if "verified" in details or "days_to_expiry" in details:
        return details
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def measurement_of(job: ProbeJob) -> Measurement | None:
    """The evidence one job gives: None unless it ended with a measurement.

    A job that gave up (its worker was lost every time) measured nothing about
    its target, so it is no evidence either way.
    """
    outcome = getattr(job, "outcome", None)
    if job.status != Status.DONE or outcome is None:
        return None
    result = outcome.data
    raw_latency, raw_phases = result.get("latency_ms"), result.get("phases_ms")
    latency = raw_latency if isinstance(raw_latency, dict) else {}
    phases = raw_phases if isinstance(raw_phases, dict) else {}
    tls = tls_facts(result.get("details"))
    verified = tls.get("verified")
    loss = _number(result.get("loss"))
    return Measurement(
        method=job.method,
        implementation=job.implementation or None,
        scheme=job.scheme,
        target=job.url,
        vantage_point=job.vantage_point,
        measured_at=job.finished_at or outcome.created_at,
        ok=bool(result.get("ok")),
        failure=failure_of(result),
        error=str(result["error"]) if result.get("error") else None,
        samples=int(result.get("samples") or 0),
        succeeded=int(result.get("succeeded") or 0),
        loss=min(1.0, max(0.0, loss if loss is not None else 1.0)),
        p50_ms=_number(latency.get("p50")),
        p95_ms=_number(latency.get("p95")),
        p99_ms=_number(latency.get("p99")),
        jitter_ms=_number(result.get("jitter_ms")),
        connect_ms=_number(phases.get("connect")),
        throughput_bps=_number(result.get("throughput_bps")),
        tls_verified=verified if isinstance(verified, bool) else None,
        cert_expires_in_days=_number(tls.get("days_to_expiry")),
        cert_lifetime_days=_lifetime_days(tls),
    )


def _lifetime_days(tls: Mapping[str, Any]) -> float | None:
    """The certificate's validity period in days, from the probe's not_before/not_after."""
    try:
        start = datetime.fromisoformat(str(tls["not_before"]))
        end = datetime.fromisoformat(str(tls["not_after"]))
    except (KeyError, TypeError, ValueError):
        return None
    days = (end - start).total_seconds() / 86400
    return days if days > 0 else None


def measurements_of(jobs: Iterable[ProbeJob]) -> list[Measurement]:
    found = (measurement_of(job) for job in jobs)
    return [m for m in found if m is not None]


def advise(
    usecase: dict[str, Any], measurements: Sequence[Measurement]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(advise JSON recomputed with the evidence, what the evidence changed).

    The engine weighs the evidence; this only hands it over. The decision's own
    frozen result is never touched: the run keeps the new advice beside it.
    """
    try:
        parsed = parse_usecase(usecase)
    except UseCaseError as exc:
        # A decision stored under an older contract that no longer validates.
        logger.warning("the decision's use case no longer validates: %s", exc.errors)
        return None, []
    advice = engine.recommend_json(parsed, evidence=measurements)
    notes = advice.get("evidence")
    return advice, [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []
