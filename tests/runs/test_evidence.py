"""What jobs measured, as the engine's evidence; and which target tests which method."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from advisor.evidence import Measurement
from probes import targets
from probes.evidence import failure_of, measurement_of, tls_facts
from probes.models import ProbeJob, ProbeJobResult, Status

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _job(result: dict[str, Any], status: str = Status.DONE, **fields: Any) -> ProbeJob:
    job = ProbeJob(
        url=fields.pop("url", "grpcs://h:443"),
        scheme=fields.pop("scheme", "grpcs"),
        method=fields.pop("method", "rpc"),
        implementation=fields.pop("implementation", "grpc"),
        vantage_point="eu-west",
        status=status,
        finished_at=NOW,
        **fields,
    )
    job.outcome = ProbeJobResult(job=job, attempt=1, result=result, created_at=NOW)
    return job


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("connection refused", "refused"),
        ("timed out after 5 s", "timeout"),
        ("could not resolve 'x.invalid': [Errno -2] Name or service not known", "dns"),
        ("TLS handshake failed: certificate has expired", "tls"),
        ("not an MQTT broker: it answered b'HTTP/1.1'", "wrong_protocol"),
        ("connection closed before any response (not an HTTP server?)", "wrong_protocol"),
        ("authentication failed", "other"),
    ],
)
def test_a_failure_is_named_in_the_engines_words(error: str, kind: str) -> None:
    assert failure_of({"ok": False, "error": error}) == kind


def test_the_instruments_own_failure_kind_wins_and_a_refusal_is_not_allowed() -> None:
    assert failure_of({"ok": False, "error": "timed out", "failure": "tls"}) == "tls"
    assert failure_of({"ok": False, "error": "x", "details": {"refused": True}}) == "not_allowed"
    assert failure_of({"ok": True, "error": None}) is None


def test_a_measurement_carries_the_numbers_and_the_tls_facts() -> None:
    result = {
        "ok": True,
        "samples": 20,
        "succeeded": 19,
        "loss": 0.05,
        "latency_ms": {"p50": 10.0, "p95": 38.25, "p99": 40.5},
        "jitter_ms": 1.5,
        "phases_ms": {"connect": 4.0},
        "throughput_bps": 8e6,
        "details": {"tls": {"verified": False, "days_to_expiry": 12}},
        "error": None,
    }
    measurement = measurement_of(_job(result))
    assert measurement == Measurement(
        method="rpc",
        implementation="grpc",
        scheme="grpcs",
        target="grpcs://h:443",
        vantage_point="eu-west",
        measured_at=NOW,
        ok=True,
        failure=None,
        error=None,
        samples=20,
        succeeded=19,
        loss=0.05,
        p50_ms=10.0,
        p95_ms=38.25,
        p99_ms=40.5,
        jitter_ms=1.5,
        connect_ms=4.0,
        throughput_bps=8e6,
        tls_verified=False,
        cert_expires_in_days=12.0,
    )
    assert measurement.where() == "grpcs://h:443 from eu-west, 2026-12-01 10:00 UTC"
    # The tls probe puts its facts at the top of details.
    assert tls_facts({"verified": True, "days_to_expiry": 3}) == {
        "verified": True,
        "days_to_expiry": 3,
    }
    assert tls_facts({"banner": "SSH-2.0"}) == {}


@pytest.mark.parametrize(
    ("tls", "lifetime"),
    [
        # As probes/tlsinfo.py reports a certificate.
        (
            {
                "days_to_expiry": 14,
                "not_before": "2026-11-01T00:00:00+00:00",
                "not_after": "2026-12-16T00:00:00+00:00",
            },
            45.0,
        ),
        (
            {
                "days_to_expiry": 14,
                "not_before": "2026-12-16T00:00:00+00:00",
                "not_after": "2026-11-01T00:00:00+00:00",
            },
            None,
        ),
        (
            {
                "days_to_expiry": 14,
                "not_before": "yesterday",
                "not_after": "2026-12-16T00:00:00+00:00",
            },
            None,
        ),
        ({"days_to_expiry": 12}, None),
    ],
)
def test_the_certificate_lifetime_comes_from_its_validity_dates(
    tls: dict[str, Any], lifetime: float | None
) -> None:
    result = {"ok": True, "samples": 1, "succeeded": 1, "loss": 0.0, "details": {"tls": tls}}
    measurement = measurement_of(_job(result))
    assert measurement is not None
    assert measurement.cert_lifetime_days == lifetime


def test_a_job_that_gave_up_is_no_evidence() -> None:
    assert measurement_of(_job({"ok": False, "error": "x"}, status=Status.FAILED)) is None
    failed = measurement_of(_job({"ok": False, "samples": 3, "error": "connection refused"}))
    assert failed is not None and failed.failure == "refused" and failed.loss == 1.0


@pytest.mark.parametrize(
    ("method", "implementation", "url"),
    [
        ("message_queue", "amqp", "amqp://db.example:5672/"),
        ("message_queue", "mqtt", "mqtt://db.example:1883"),
        ("rpc", "grpc", "grpc://db.example:50051"),
        ("rest", None, "https://db.example/"),
        ("http", "webhook", "https://db.example/"),
        ("websocket", None, "wss://db.example/"),
        ("udp", None, "udp://db.example:7007"),
        ("file_transfer", "sftp", "sftp://db.example/"),
        ("ssh", None, "ssh://db.example"),
    ],
)
def test_each_candidate_gets_its_usual_scheme_and_port(
    method: str, implementation: str | None, url: str
) -> None:
    ranking = [{"method": method, "implementation": implementation, "label": method}]
    [proposal] = targets.proposals(ranking, ["db.example"])
    assert (proposal.url, proposal.method) == (url, method)


def test_hosts_are_typed_once_and_checked() -> None:
    assert targets.split_hosts(" a.example, 10.0.0.1  2001:db8::1 a.example") == [
        "a.example",
        "10.0.0.1",
        "[2001:db8::1]",
    ]
    for bad, words in (
        ("https://a.example/", "not a host"),
        ("a.example:8080", "has a port"),
        ("1.2.3.4.5", "too many parts"),
    ):
        with pytest.raises(ValueError, match=words):
            targets.split_hosts(bad)


def test_a_url_names_the_method_the_decision_ranks_highest_among_those_it_can_test() -> None:
    ranking = [{"method": "rpc", "implementation": "grpc"}, {"method": "http"}, {"method": "rest"}]
    assert targets.method_for("https", ranking) == ("http", None)
    json_rpc = [{"method": "rpc", "implementation": "json_rpc"}, {"method": "rest"}]
    assert targets.method_for("https", json_rpc) == ("rpc", "json_rpc")
    assert targets.method_for("https", ranking, "rest") == ("rest", None)
    assert targets.method_for("grpc", ranking, "rest") == ("rpc", "grpc")
    assert targets.method_for("mqtt", ranking) == ("message_queue", "mqtt")


def test_the_before_and_after_table_reads_points_and_says_ruled_out() -> None:
    from probes.selectors import advice_compare

    def ranking(rpc_points: float) -> dict[str, Any]:
        return {
            "ranking": [
                {"method": "rpc", "label": "RPC", "score": 0.7, "points": rpc_points},
                {"method": "udp", "label": "UDP", "score": 0.0, "points": None, "excluded": True},
            ]
        }

    same = advice_compare(ranking(3.5), ranking(3.5))
    assert [(r["before_points"], r["after_points"], r["changed"]) for r in same] == [
        ("+3.5", "+3.5", False),
        ("ruled out", "ruled out", False),
    ]
    moved = advice_compare(ranking(3.5), ranking(1.25))
    assert (moved[0]["after_points"], moved[0]["changed"]) == ("+1.3", True)
