"""Measurements as the engine reads them: evidence, as plain data.

The engine stays pure (no ORM, no probes, no I/O): a probe run turns what its
jobs measured into :class:`Measurement` objects (``probes.evidence`` does), and
``engine.recommend(usecase, evidence=[...])`` weighs them with the knowledge
base's evidence rules. What the evidence changed comes back as
:class:`EvidenceNote` objects in the recommendation, each naming the
measurement it rests on: that measurement is its source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Why a probe did not get an answer, in the words the rules match on.
Failure = Literal["refused", "timeout", "wrong_protocol", "tls", "dns", "not_allowed", "other"]


class Measurement(BaseModel):
    """What one probe job measured: one target, standing for one candidate method,
    from one vantage point."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(description="The method id this target stands for, e.g. 'rpc'.")
    implementation: str | None = Field(None, description="e.g. 'grpc', 'amqp', 'mqtt'.")
    scheme: str = Field(description="The probe scheme, e.g. 'grpc', 'https', 'udp'.")
    target: str = Field(description="The target URL with any password masked.")
    vantage_point: str = Field(description="The worker queue the job ran on.")
    measured_at: datetime
    ok: bool = Field(description="The target answered (the probe's exit 0).")
    failure: Failure | None = Field(None, description="Why it did not answer, when it did not.")
    error: str | None = Field(None, description="The probe's error in words.")
    samples: int = 0
    succeeded: int = 0
    loss: float = Field(0.0, ge=0, le=1, description="Share of samples without an answer.")
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    jitter_ms: float | None = None
    connect_ms: float | None = Field(None, description="Median TCP connect time.")
    throughput_bps: float | None = Field(None, description="Bits per second, when measured.")
    tls_verified: bool | None = Field(None, description="None when the target has no TLS.")
    cert_expires_in_days: float | None = None
    cert_lifetime_days: float | None = Field(
        None, description="The certificate's whole validity period (not after - not before)."
    )

    def where(self) -> str:
        """The measurement as a source: "grpc://h:50051 from eu-west, 2026-12-01 10:00 UTC"."""
        return f"{self.target} from {self.vantage_point}, {self.measured_at:%Y-%m-%d %H:%M} UTC"


Effect = Literal["ruled_out", "demoted", "promoted", "warning", "caveat", "confirmed"]


class EvidenceNote(BaseModel):
    """One thing the evidence changed, in words, with the measurement as its source."""

    model_config = ConfigDict(frozen=True)

    rule: str = Field(description="The evidence rule's id in the knowledge base.")
    method: str | None = Field(None, description="The method it concerns; None for all.")
    effect: Effect
    text: str = Field(description="What changed and why, in words, with the measured numbers.")
    target: str
    vantage_point: str
    measured_at: datetime
    source: str = Field("", description="The rule's own source id, beside the measurement.")
