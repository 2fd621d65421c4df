"""Evidence: measurements of the user's own servers, weighed by the KB's evidence rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from advisor.engine import recommend
from advisor.evidence import Measurement
from advisor.knowledge import KNOWLEDGE
from advisor.recommendation import Recommendation
from advisor.usecase import parse_usecase

WHEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def measured(**values: Any) -> Measurement:
    base: dict[str, Any] = {
        "method": "rpc",
        "implementation": "grpc",
        "scheme": "grpc",
        "target": "grpc://orders.internal:50051",
        "vantage_point": "eu-west",
        "measured_at": WHEN,
        "ok": True,
        "samples": 10,
        "succeeded": 10,
    }
    base.update(values)
    return Measurement(**base)


def advise(doc: dict[str, Any], *evidence: Measurement) -> Recommendation:
    return recommend(parse_usecase(doc), evidence=list(evidence))


def row(rec: Recommendation, method: str) -> Any:
    found = rec.method(method)
    assert found is not None
    return found


INTERNAL_CALL = {"interaction": "request_response", "latency_ms": 20, "strict_contract": True}


def test_every_evidence_rule_cites_a_known_source_and_every_kind_has_a_rule() -> None:
    kinds = {rule.kind for rule in KNOWLEDGE.evidence}
    assert kinds == {
        "probe_failed",
        "latency_over_budget",
        "budget_below_round_trip",
        "file_time",
        "udp_loss",
        "tls_unverified",
        "cert_expiring",
    }
    for rule in KNOWLEDGE.evidence:
        assert rule.source in KNOWLEDGE.sources, rule.id
        assert KNOWLEDGE.sources[rule.source].url.startswith("https://"), rule.id


def test_without_evidence_nothing_is_noted() -> None:
    assert advise(INTERNAL_CALL).evidence == []


@pytest.mark.parametrize("failure", ["refused", "timeout", "wrong_protocol"])
def test_a_probe_that_got_no_answer_rules_its_method_out_with_the_failure(failure: str) -> None:
    before = advise(INTERNAL_CALL)
    assert not row(before, "rpc").excluded
    failed = measured(ok=False, failure=failure, succeeded=0, loss=1.0, error="no")
    after = advise(INTERNAL_CALL, failed)
    rpc = row(after, "rpc")
    assert rpc.excluded and not rpc.feasible and rpc.score == 0.0
    (reason,) = rpc.exclusions
    assert "grpc://orders.internal:50051" in reason and "eu-west" in reason
    assert "2026-12-01 10:00 UTC" in reason
    assert after.ranking[0].method != "rpc"
    (note,) = after.evidence
    assert note.method == "rpc" and note.effect == "ruled_out"
    assert (note.target, note.vantage_point, note.measured_at) == (
        failed.target,
        failed.vantage_point,
        failed.measured_at,
    )
    assert note.source in KNOWLEDGE.sources


def test_a_failure_beside_a_success_for_the_same_method_only_demotes_it() -> None:
    failed = measured(ok=False, failure="timeout", succeeded=0, loss=1.0, vantage_point="us-east")
    after = advise(INTERNAL_CALL, failed, measured(p95_ms=3, connect_ms=1))
    rpc = row(after, "rpc")
    assert not rpc.excluded
    assert any("us-east" in r.text for r in rpc.reasons_against)
    assert rpc.score < row(advise(INTERNAL_CALL), "rpc").score


def test_a_failed_tls_handshake_demotes_but_does_not_rule_out() -> None:
    before = row(advise(INTERNAL_CALL), "rpc")
    after = row(advise(INTERNAL_CALL, measured(ok=False, failure="tls", succeeded=0)), "rpc")
    assert not after.excluded
    assert after.score < before.score
    assert any("TLS handshake" in r.text and r.weight < 0 for r in after.reasons_against)


def test_a_budget_below_the_measured_round_trip_warns_that_no_method_can_meet_it() -> None:
    doc = {"interaction": "request_response", "latency_ms": 5}
    probe = measured(scheme="tcp", method="tcp", implementation=None, p95_ms=38, p50_ms=36)
    rec = advise(doc, probe)
    warning = next(w for w in rec.warnings if w.startswith("No method can meet"))
    assert "No method can meet 5 ms here: the round trip measured 38 ms" in warning
    assert "from eu-west" in warning
    assert any(n.effect == "warning" and n.method is None for n in rec.evidence)
    relaxed = advise({**doc, "latency_ms": 50}, probe)
    assert not any(w.startswith("No method can meet") for w in relaxed.warnings)


def test_the_round_trip_of_a_handshaking_probe_is_its_connect_time() -> None:
    # An HTTPS sample holds TCP and TLS handshakes: its connect time is the round trip.
    https = measured(
        method="rest",
        implementation=None,
        scheme="https",
        target="https://api.example/",
        p95_ms=90,
        connect_ms=30,
    )
    rec = advise({"interaction": "request_response", "latency_ms": 20}, https)
    assert any("30 ms (median TCP connect)" in w for w in rec.warnings)
    fine = advise({"interaction": "request_response", "latency_ms": 40}, https)
    assert not any(w.startswith("No method can meet") for w in fine.warnings)


def test_a_method_slower_than_the_budget_is_demoted_with_the_measured_p95() -> None:
    doc = {"interaction": "request_response", "latency_ms": 100}
    slow = measured(method="rest", implementation=None, scheme="https", p95_ms=180)
    before = row(advise(doc), "rest")
    after = row(advise(doc, slow), "rest")
    assert after.score < before.score
    (reason,) = [r for r in after.reasons_against if r.rule == "method-slower-than-budget"]
    assert "180 ms" in reason.text and "100 ms" in reason.text
    quick = row(advise(doc, slow.model_copy(update={"p95_ms": 60})), "rest")
    assert quick.score == before.score


def test_file_transfer_time_is_estimated_from_the_measured_throughput() -> None:
    doc = {"interaction": "file_transfer", "file_bytes": 2_000_000_000, "latency_ms": 60_000}
    link = measured(
        method="file_transfer",
        implementation="sftp",
        scheme="sftp",
        target="sftp://u@h/",
        throughput_bps=100e6,
        connect_ms=20,
    )
    # 2 GB * 8 / 100 Mbit/s = 160 s, more than a one-minute budget.
    rec = advise(doc, link)
    warning = next(w for w in rec.warnings if "takes about" in w)
    assert "2 GB" in warning and "2.7 min" in warning and "100 Mbit/s" in warning
    relaxed = advise({**doc, "latency_ms": 3_600_000}, link)
    assert not any("takes about" in w for w in relaxed.warnings)
    (note,) = [n for n in relaxed.evidence if n.rule == "file-time-estimate"]
    assert "within the time budget of 1 h" in note.text
    faster = advise(doc, link.model_copy(update={"throughput_bps": 1e9}))
    assert not any("takes about" in w for w in faster.warnings)


@pytest.mark.parametrize("tolerant", [False, True])
def test_measured_udp_loss_is_weighed_against_loss_tolerance(tolerant: bool) -> None:
    doc = {
        "interaction": "streaming",
        "delivery": "best_effort",
        "loss_tolerant": tolerant,
        "message_bytes": 200,
        "latency_ms": 30,
    }
    lossy = measured(
        method="udp",
        implementation=None,
        scheme="udp",
        target="udp://relay:9000",
        loss=0.03,
        succeeded=97,
        samples=100,
        p95_ms=12,
    )
    before = row(advise(doc), "udp")
    rec = advise(doc, lossy)
    after = row(rec, "udp")
    (note,) = [n for n in rec.evidence if n.method == "udp"]
    assert "3.0%" in note.text
    if tolerant:
        assert note.effect == "confirmed" and after.score == before.score
    else:
        assert note.effect == "demoted" and after.score < before.score
        assert any("3.0%" in r.text for r in after.reasons_against)


def test_a_certificate_that_does_not_verify_is_a_caveat() -> None:
    rec = advise(INTERNAL_CALL, measured(scheme="grpcs", tls_verified=False))
    assert any("did not verify" in c for c in row(rec, "rpc").caveats)
    verified = advise(INTERNAL_CALL, measured(scheme="grpcs", tls_verified=True))
    assert not any("did not verify" in c for c in row(verified, "rpc").caveats)


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (12, "expires in 12 days"),
        (0.5, "expires within a day"),
        (-3, "expired 3 days ago"),
        (45, None),
    ],
)
def test_a_certificate_near_expiry_is_a_caveat(days: float, words: str | None) -> None:
    rec = advise(INTERNAL_CALL, measured(scheme="grpcs", cert_expires_in_days=days))
    caveats = [c for c in row(rec, "rpc").caveats if "certificate" in c]
    if words is None:
        assert caveats == []
    else:
        (caveat,) = caveats
        assert words in caveat


@pytest.mark.parametrize(
    ("lifetime", "days", "flagged"),
    [
        # Let's Encrypt: renew with a third of the lifetime left (half under 10 days).
        (90, 31, False),
        (90, 29, True),
        (45, 16, False),  # a healthy 45-day certificate is not 30 days from trouble
        (45, 14, True),
        (6, 3.5, False),
        (6, 2.5, True),
        (None, 29, True),  # lifetime unknown: 30 days
        (None, 31, False),
    ],
)
def test_a_certificate_is_due_with_a_third_of_its_lifetime_left(
    lifetime: float | None, days: float, flagged: bool
) -> None:
    m = measured(scheme="grpcs", cert_expires_in_days=days, cert_lifetime_days=lifetime)
    caveats = [c for c in row(advise(INTERNAL_CALL, m), "rpc").caveats if "certificate" in c]
    assert bool(caveats) is flagged


def test_evidence_travels_in_the_json_with_its_measurement() -> None:
    failed = measured(ok=False, failure="refused", succeeded=0, loss=1.0)
    data = recommend(parse_usecase(INTERNAL_CALL), evidence=[failed]).contract_json()
    (note,) = data["evidence"]
    assert note["target"] == failed.target and note["vantage_point"] == "eu-west"
    assert note["measured_at"].startswith("2026-12-01T10:00")
    assert Recommendation.model_validate(data).evidence[0].rule == note["rule"]
