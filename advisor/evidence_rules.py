"""Weighing evidence: measurements of the user's own servers, read by the KB's rules.

Pure, like the engine: it reads :class:`advisor.evidence.Measurement` objects
and the evidence rules of ``advisor/knowledge/evidence.yaml`` and says what
they change: methods (or one implementation of a method) ruled out or demoted,
caveats, warnings, and one :class:`~advisor.evidence.EvidenceNote` per thing
changed, whose source is the measurement (target, vantage point, time) beside
the rule's own source.

Each rule ``kind`` is read here; the thresholds, effects, weights, words and
sources are data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from advisor.evidence import EvidenceNote, Measurement
from advisor.knowledge import EvidenceRule, KnowledgeBase
from advisor.usecase import UseCase
from advisor.vocabulary import format_bytes, format_duration

# One sample of these schemes is one round trip (a TCP connect, a UDP echo); for
# the others a sample holds handshakes too, so their median connect time stands
# for the round trip instead.
ONE_ROUND_TRIP_SCHEMES = frozenset({"tcp", "udp"})

FAILURE_WORDS = {
    "refused": "refused the connection",
    "timeout": "did not answer in time (something on the path drops the packets)",
    "wrong_protocol": "answered in another protocol",
    "tls": "failed the TLS handshake",
    "dns": "has a name that did not resolve",
    "not_allowed": "is not an allowed target",
    "other": "failed",
}


@dataclass(frozen=True)
class EvidenceReason:
    """A measured reason for or against one method (or one of its implementations)."""

    method: str
    implementation: str | None
    weight: float
    text: str
    rule: str
    source: str


@dataclass
class EvidenceOutcome:
    """Everything the measurements change, per method, ready for the engine to apply."""

    ruled_out: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)
    reasons: list[EvidenceReason] = field(default_factory=list)
    caveats: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[EvidenceNote] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ruled_out or self.reasons or self.caveats or self.warnings)


def format_bits(bps: float) -> str:
    """A throughput a person reads: "80 Mbit/s", "1.2 Gbit/s"."""
    for unit, factor in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= factor:
            return f"{bps / factor:,.3g} {unit}"
    return f"{bps:,.0f} bit/s"


def _when(m: Measurement) -> str:
    return f"{m.measured_at:%Y-%m-%d %H:%M} UTC"


def _round_trip(m: Measurement) -> tuple[float, str] | None:
    """The measured round trip and how it was read, or None when not measured."""
    if not m.ok:
        return None
    if m.scheme in ONE_ROUND_TRIP_SCHEMES and m.p95_ms is not None:
        return m.p95_ms, f"{format_duration(m.p95_ms)} at the 95th percentile"
    if m.connect_ms is not None:
        return m.connect_ms, f"{format_duration(m.connect_ms)} (median TCP connect)"
    return None


class _Notes:
    def __init__(self, outcome: EvidenceOutcome, labels: Mapping[str, str]) -> None:
        self.outcome = outcome
        self.labels = labels

    def text(self, rule: EvidenceRule, m: Measurement, **values: Any) -> str:
        words = {
            "target": m.target,
            "vantage_point": m.vantage_point,
            "when": _when(m),
            "method": self.labels.get(m.method, m.method),
            **values,
        }
        return " ".join(rule.text.format_map(words).split())

    def note(self, rule: EvidenceRule, m: Measurement, text: str, method: str | None) -> None:
        self.outcome.notes.append(
            EvidenceNote(
                rule=rule.id,
                method=method,
                effect=rule.effect,
                text=text,
                target=m.target,
                vantage_point=m.vantage_point,
                measured_at=m.measured_at,
                source=rule.source,
            )
        )

    def apply(self, rule: EvidenceRule, m: Measurement, text: str, method: str | None) -> None:
        """Record the rule's effect on ``method`` (None: on the whole recommendation)."""
        out = self.outcome
        if rule.effect == "ruled_out" and method is not None:
            out.ruled_out.setdefault(method, []).append((m.implementation, text))
        elif rule.effect in ("demoted", "promoted") and method is not None:
            out.reasons.append(
                EvidenceReason(
                    method, m.implementation, float(rule.weight or 0), text, rule.id, rule.source
                )
            )
        elif rule.effect == "caveat" and method is not None:
            out.caveats.setdefault(method, []).append(text)
        elif rule.effect == "warning":
            out.warnings.append(text)
        self.note(rule, m, text, method)


def weigh(
    usecase: UseCase,
    measurements: Iterable[Measurement],
    kb: KnowledgeBase,
    labels: Mapping[str, str],
) -> EvidenceOutcome:
    """What the measurements change for this use case, by the knowledge base's rules."""
    measured = [m for m in measurements if isinstance(m, Measurement)]
    outcome = EvidenceOutcome()
    if not measured:
        return outcome
    notes = _Notes(outcome, labels)
    answered = {m.method for m in measured if m.ok}
    for rule in kb.evidence:
        reader = _READERS[rule.kind]
        reader(rule, usecase, measured, notes, answered)
    return outcome


def _probe_failed(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    for m in measured:
        if m.ok or m.failure not in rule.failures:
            continue
        text = notes.text(rule, m, failure=FAILURE_WORDS.get(m.failure or "other", "failed"))
        if rule.effect == "ruled_out" and m.method in answered:
            # The method got through to another target or from another vantage point:
            # this failure is about that target, not about the method.
            demoted = rule.model_copy(update={"effect": "demoted", "weight": -3.0})
            notes.apply(demoted, m, text, m.method)
        else:
            notes.apply(rule, m, text, m.method)


def _latency_over_budget(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    budget = usecase.latency_ms
    if budget is None:
        return
    for m in measured:
        if m.ok and m.p95_ms is not None and m.p95_ms > budget:
            text = notes.text(
                rule, m, p95=format_duration(m.p95_ms), budget=format_duration(budget)
            )
            notes.apply(rule, m, text, m.method)


def _budget_below_round_trip(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    budget = usecase.latency_ms
    if budget is None:
        return
    # Per vantage point, the fastest round trip any target showed: no method can
    # answer in less than one round trip.
    fastest: dict[str, tuple[float, str, Measurement]] = {}
    for m in measured:
        trip = _round_trip(m)
        if trip is not None and (
            m.vantage_point not in fastest or trip[0] < fastest[m.vantage_point][0]
        ):
            fastest[m.vantage_point] = (trip[0], trip[1], m)
    for rtt, words, m in fastest.values():
        if budget < rtt:
            text = notes.text(rule, m, budget=format_duration(budget), rtt=words)
            notes.apply(rule, m, text, None)


def _file_time(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    size = usecase.file_bytes
    rates = [m for m in measured if m.ok and m.throughput_bps]
    if size is None or not rates:
        return
    best = max(rates, key=lambda m: m.throughput_bps or 0.0)
    rate = float(best.throughput_bps or 0.0)
    trip = _round_trip(best)
    # Size over throughput, plus a round trip to ask for it (RFC 6349's ideal transfer
    # time, which real transfers only approach).
    ms = size * 8 / rate * 1000 + (trip[0] if trip else 0.0)
    budget = usecase.latency_ms
    over = budget is not None and ms > budget
    if rule.over_budget is not None and rule.over_budget != over:
        return
    within = f", within the time budget of {format_duration(budget)}" if budget else ""
    text = notes.text(
        rule,
        best,
        file=format_bytes(size),
        seconds=format_duration(ms),
        throughput=format_bits(rate),
        budget=format_duration(budget) if budget else "none",
        within=within,
    )
    notes.apply(rule, best, text, None)


def _udp_loss(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    if rule.loss_tolerant is not None and rule.loss_tolerant != usecase.loss_tolerant:
        return
    for m in measured:
        if m.scheme != "udp" or m.succeeded == 0 or m.loss <= 0:
            continue
        text = notes.text(rule, m, loss=f"{m.loss:.1%}")
        notes.apply(rule, m, text, "udp")


def _tls_unverified(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    for m in measured:
        if m.tls_verified is False:
            notes.apply(rule, m, notes.text(rule, m), m.method)


def renewal_window_days(lifetime: float | None, fallback: float) -> float:
    """How many days before expiry a certificate is due for renewal.

    Let's Encrypt's integration guide: renew "when they have a third of their total
    lifetime left", and halfway through for lifetimes under 10 days; 30 days of a 90-day
    certificate. Lifetimes are shrinking (64 days, then 45), so a fixed 30 days would
    flag every healthy short-lived certificate. Without a known lifetime, ``fallback``.
    """
    if lifetime is None or lifetime <= 0:
        return fallback
    return lifetime / 2 if lifetime < 10 else lifetime / 3


def _cert_expiring(
    rule: EvidenceRule,
    usecase: UseCase,
    measured: list[Measurement],
    notes: _Notes,
    answered: set[str],
) -> None:
    fallback = rule.days if rule.days is not None else 30
    for m in measured:
        days = m.cert_expires_in_days
        if days is None or days > renewal_window_days(m.cert_lifetime_days, fallback):
            continue
        if days < 0:
            expiry = f"expired {max(1, int(-days))} days ago"
        elif days < 1:
            expiry = "expires within a day"
        else:
            expiry = f"expires in {int(days)} days"
        notes.apply(rule, m, notes.text(rule, m, expiry=expiry), m.method)


_READERS = {
    "probe_failed": _probe_failed,
    "latency_over_budget": _latency_over_budget,
    "budget_below_round_trip": _budget_below_round_trip,
    "file_time": _file_time,
    "udp_loss": _udp_loss,
    "tls_unverified": _tls_unverified,
    "cert_expiring": _cert_expiring,
}
