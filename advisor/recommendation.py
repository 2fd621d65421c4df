"""The recommendation as typed objects: what the engine gives and every consumer reads.

Pure: pydantic only. The engine builds a :class:`Recommendation`; the pages, the
API, the MADR export, the text report and probe runs read it. Its JSON
(:meth:`Recommendation.contract_json`) is the ``advise --format json`` object of
``docs/usecase.md`` section 3, plus the fields below (added, never removed).

A stored decision keeps that JSON. :meth:`Recommendation.from_stored` reads it
back once per load, also when it was stored by an older engine (which wrote
``factors`` instead of ``reasons_for``/``reasons_against`` and had no
confidence), so old share links keep working.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from advisor.evidence import EvidenceNote

__all__ = [
    "Confidence",
    "EvidenceNote",
    "Flip",
    "MethodResult",
    "Pattern",
    "Reason",
    "Recommendation",
    "SourceRef",
    "points_text_of",
]


class _Model(BaseModel):
    # Extra keys are ignored, so results stored by older (or newer) engines still load.
    model_config = ConfigDict(extra="ignore")


class SourceRef(_Model):
    """Where a statement comes from: an id in the knowledge base's sources."""

    id: str
    title: str = ""
    url: str = ""
    checked: str = Field("", description="The date the source was last read for this fact.")


class Reason(_Model):
    """One answer (or measurement) speaking for or against a method, in plain words."""

    text: str = Field(description="Why it matters for this method, in the user's units.")
    fields: list[str] = Field(default_factory=list, description="The answers it rests on.")
    answer: str = Field("", description="Those answers as a person reads them.")
    weight: float = Field(description="How much it counted; positive for, negative against.")
    source: SourceRef
    rule: str = ""


class Pattern(_Model):
    """A named pattern from the guides: how to use the method for this case."""

    id: str
    name: str
    how: str = Field(description="What to do, concretely.")
    source: SourceRef


class Flip(_Model):
    """The smallest change to one answer that would change the first pick."""

    for_method: str = Field(description="The method the flip concerns (the first pick).")
    field: str
    label: str = Field("", description="The question's short name.")
    current: Any = None
    value: Any = Field(None, description="A value at which the flip happens (the threshold).")
    threshold: Any = Field(None, description="The boundary itself, in the field's base unit.")
    change: str = Field("", description="The change in the user's units.")
    winner: str = Field(description="The method that would then rank first.")
    text: str = ""


class Confidence(_Model):
    level: Literal["clear", "likely", "close"]
    label: str
    margin: float = Field(description="The first pick's lead over the runner-up, in points.")
    text: str = ""


class MethodResult(_Model):
    method: str
    label: str = ""
    implementation: str | None = None
    implementation_label: str | None = None
    implementation_reason: str | None = None
    pattern: Pattern | None = None
    score: float = Field(0.0, description="0..1, the contract's; 0 for a method ruled out.")
    points: float | None = Field(
        None,
        description="What the answers add for the method minus what they take away; None when "
        "it is ruled out, or in a result stored before points were kept.",
    )
    feasible: bool = True
    excluded: bool = False
    exclusions: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="The contract's plain strings.")
    reasons_for: list[Reason] = Field(default_factory=list)
    reasons_against: list[Reason] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)

    @property
    def points_text(self) -> str:
        """The method's standing as a table shows it: "+9.5", "-2", "ruled out".

        People read points and the margin, not the contract's squashed 0..1 score; a
        result stored before points were kept shows its score instead.
        """
        if self.excluded:
            return "ruled out"
        points = self._shown_points
        return _two_places(self.score) if points is None else _signed(points)

    @property
    def standing(self) -> str:
        """The same in a sentence's words: "+9.5 points", "ruled out", "score 0.91"."""
        text = self.points_text
        if self.excluded:
            return text
        return f"score {text}" if self._shown_points is None else f"{text} points"

    @property
    def _shown_points(self) -> float | None:
        # None for a result stored before points were kept (or a non-finite value).
        return self.points if self.points is not None and math.isfinite(self.points) else None

    @model_validator(mode="before")
    @classmethod
    def _from_older_engines(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "feasible" not in data and "excluded" in data:
            data["feasible"] = not data["excluded"]
        if "factors" in data and "reasons_for" not in data and "reasons_against" not in data:
            pros: list[dict[str, Any]] = []
            cons: list[dict[str, Any]] = []
            for factor in data.get("factors") or []:
                reason = _legacy_reason(factor)
                if reason is not None:
                    (pros if reason["weight"] > 0 else cons).append(reason)
            data["reasons_for"], data["reasons_against"] = pros, cons
        return data


def points_text_of(item: Any) -> str:
    """:attr:`MethodResult.points_text` of a stored ranking entry; "–" when unreadable."""
    if not isinstance(item, dict):
        return "–"
    try:
        return MethodResult.model_validate(item).points_text
    except ValidationError:
        return "–"


def _two_places(value: float) -> str:
    # Half up, as Django's floatformat rounds: the page, the chart and the record agree.
    try:
        number = Decimal(repr(float(value)))
    except (TypeError, ValueError, ArithmeticError):
        return "?"
    if not number.is_finite():
        return "?"
    return str(number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _signed(points: float) -> str:
    # One decimal, half up, trailing ".0" dropped: "+9.5", "+12", "-2", "0".
    number = Decimal(repr(float(points))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    text = f"{abs(number):f}".removesuffix(".0")
    if number > 0:
        return "+" + text
    return "-" + text if number < 0 else "0"


def _legacy_reason(factor: Any) -> dict[str, Any] | None:
    """A factor stored by the first engine, as a Reason; None when unreadable or zero."""
    if not isinstance(factor, dict):
        return None
    try:
        weight = float(factor.get("weight") or 0)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(weight) or weight == 0:
        return None
    fields = factor.get("fields")
    return {
        "text": str(factor.get("text") or ""),
        "fields": [str(f) for f in fields] if isinstance(fields, list) else [],
        "answer": str(factor.get("answer") or ""),
        "weight": weight,
        "source": {
            "id": str(factor.get("source") or ""),
            "title": str(factor.get("source_title") or ""),
            "url": str(factor.get("source_url") or ""),
        },
        "rule": str(factor.get("rule") or ""),
    }


CONFIDENCE_LABELS = {
    "clear": "Clear choice",
    "likely": "Likely choice",
    "close": "Close call: see what would change",
}


class Recommendation(_Model):
    version: int = 1
    kb_version: str = ""
    ranking: list[MethodResult]
    warnings: list[str] = Field(default_factory=list)
    what_would_change: list[Flip] = Field(default_factory=list)
    confidence: Confidence
    conflicts: list[str] = Field(
        default_factory=list, description="When nothing is feasible: which answers conflict."
    )
    evidence: list[EvidenceNote] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _confidence_of_older_results(cls, data: Any) -> Any:
        if isinstance(data, dict) and "confidence" not in data:
            data = dict(data)
            data["confidence"] = _legacy_confidence(data.get("ranking"))
        return data

    @property
    def first(self) -> MethodResult | None:
        return self.ranking[0] if self.ranking else None

    def method(self, method: str) -> MethodResult | None:
        return next((r for r in self.ranking if r.method == method), None)

    def contract_json(self) -> dict[str, Any]:
        """The ``advise --format json`` object: the contract's fields plus ours."""
        return self.model_dump(mode="json")

    @classmethod
    def from_stored(cls, data: Any) -> Recommendation | None:
        """A stored result read back; None when it is not one (never raises)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls.model_validate(data)
        except (ValidationError, ValueError, TypeError):
            return None


def _legacy_confidence(ranking: Any) -> dict[str, Any]:
    """Older results carried no confidence: say so rather than invent one."""
    scores: list[float] = []
    if isinstance(ranking, list):
        for item in ranking[:2]:
            try:
                scores.append(float(item.get("score") or 0) if isinstance(item, dict) else 0.0)
            except (TypeError, ValueError):
                scores.append(0.0)
    margin = scores[0] - scores[1] if len(scores) == 2 else 0.0
    return {
        "level": "likely",
        "label": CONFIDENCE_LABELS["likely"],
        "margin": round(margin if math.isfinite(margin) else 0.0, 3),
        "text": "Recommended by an earlier version of Switchboard, which did not rate its "
        "confidence.",
    }
