"""The knowledge base: methods, rules and their sources, as data.

The YAML files beside this module are the product's knowledge; this module
only loads them and checks them strictly with pydantic, so a typo in a field
name, a method id or a source id fails at start-up (and in the tests), never
silently at scoring time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advisor.usecase import FIELDS, INTERACTIONS

KNOWLEDGE_DIR = Path(__file__).resolve().parent
FILES = ("sources.yaml", "methods.yaml", "rules.yaml", "evidence.yaml", "engine.yaml")

METHODS: tuple[str, ...] = (
    "http",
    "rest",
    "soap",
    "graphql",
    "rpc",
    "websocket",
    "message_queue",
    "tcp",
    "udp",
    "file_transfer",
    "ssh",
)

# Values the engine derives from the answers; conditions may read them too.
# Each maps to the answers it is computed from.
DERIVED: dict[str, tuple[str, ...]] = {
    "wan": ("peers",),
    "bandwidth_bps": ("rate_per_second", "message_bytes"),
    "bandwidth_gbps": ("rate_per_second", "message_bytes"),
    "file_min_ms_10g": ("file_bytes",),
    "file_exceeds_budget": ("file_bytes", "latency_ms"),
}
CONDITION_KEYS = frozenset(FIELDS) | frozenset(DERIVED)
OPERATORS = frozenset({"lt", "lte", "gt", "gte", "ne", "is_null"})

Condition = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    title: str
    url: str
    checked: Any
    says: str


class Fact(_Strict):
    text: str
    source: str


class Limit(_Strict):
    """A hard per-message limit of a common implementation, with where it is stated."""

    name: str
    max_message_bytes: int = Field(gt=0)
    source: str


class Method(_Strict):
    label: str
    family: str
    best_suited_for: str
    implementations: list[str]
    limits: list[Limit] = Field(default_factory=list)
    facts: dict[
        Literal[
            "delivery",
            "push_pull",
            "browser",
            "firewall",
            "latency_floor",
            "message_size",
            "ordering",
            "decoupling",
            "contract",
            "operations",
            "security",
        ],
        Fact,
    ]


class Effect(_Strict):
    weight: float
    text: str | None = None
    source: str | None = None


def _effects(value: dict[str, Any]) -> dict[str, Effect]:
    return {
        method: Effect(weight=spec) if isinstance(spec, int | float) else Effect(**spec)
        for method, spec in value.items()
    }


def check_condition(cond: Any, where: str) -> None:
    """Raise ValueError unless ``cond`` uses only known fields, operators and combinators."""
    if not isinstance(cond, dict):
        raise ValueError(f"{where}: a condition is a mapping, got {cond!r}")
    for key, test in cond.items():
        if key in ("any", "all"):
            if not isinstance(test, list) or not test:
                raise ValueError(f"{where}: '{key}' takes a non-empty list of conditions")
            for sub in test:
                check_condition(sub, where)
        elif key == "not":
            check_condition(test, where)
        elif key not in CONDITION_KEYS:
            raise ValueError(f"{where}: unknown field '{key}' in condition")
        elif isinstance(test, dict):
            unknown = set(test) - OPERATORS
            if unknown:
                raise ValueError(f"{where}: unknown operator(s) {sorted(unknown)} for '{key}'")


class FitRow(_Strict):
    text: str
    source: str
    effects: dict[str, Effect]

    _coerce = field_validator("effects", mode="before")(_effects)


class Ramp(_Strict):
    """A smooth band: the rule's weights count by a fraction that follows ``points``
    ((value, fraction) pairs, fractions in 0..1), linear in the logarithm of the
    answer between them and flat beyond them. The band's edges are sourced limits
    (a datagram that fits one MTU, a broker's per-message limit), so a rule grows
    in over a range instead of jumping at one byte."""

    field: str
    points: list[tuple[float, float]]

    @model_validator(mode="after")
    def _sane(self) -> Ramp:
        xs = [x for x, _ in self.points]
        if len(xs) < 2 or xs != sorted(xs) or len(set(xs)) != len(xs) or xs[0] <= 0:
            raise ValueError(f"ramp on {self.field}: points need 2+ increasing values > 0")
        if any(not 0 <= f <= 1 for _, f in self.points):
            raise ValueError(f"ramp on {self.field}: fractions are within 0..1")
        if self.field not in FIELDS:
            raise ValueError(f"ramp on unknown field {self.field!r}")
        return self


class Rule(_Strict):
    id: str
    when: Condition
    text: str
    source: str
    effects: dict[str, Effect]
    ramp: Ramp | None = None
    # The answers a reason names, when not every answer the condition reads: a rule
    # scoped to some interactions or peers names the answer that decides, not the scope.
    show: list[str] | None = None

    _coerce = field_validator("effects", mode="before")(_effects)


class Exclusion(_Strict):
    id: str
    when: Condition
    methods: list[str]
    text: str
    source: str


class ImplementationChoice(_Strict):
    impl: str
    when: Condition
    text: str
    source: str


class Caveat(_Strict):
    id: str
    when: Condition
    methods: list[str]
    text: str
    source: str


class Warning_(_Strict):
    """A warning about the answers. ``source`` is None only for a check of the answers
    against each other (two answers that contradict), which rests on no outside fact."""

    id: str
    when: Condition
    text: str
    source: str | None = None


EvidenceKind = Literal[
    "probe_failed",
    "latency_over_budget",
    "budget_below_round_trip",
    "file_time",
    "udp_loss",
    "tls_unverified",
    "cert_expiring",
]
EvidenceEffect = Literal["ruled_out", "demoted", "promoted", "warning", "caveat", "confirmed"]


class EvidenceRule(_Strict):
    """What a measurement of the user's own servers changes (evidence.yaml)."""

    id: str
    kind: EvidenceKind
    effect: EvidenceEffect
    text: str
    source: str
    weight: float | None = None
    failures: list[str] = Field(default_factory=list)  # probe_failed: which failures
    over_budget: bool | None = None  # file_time: the warning or the estimate
    loss_tolerant: bool | None = None  # udp_loss: for which answer
    days: float | None = None  # cert_expiring: how near expiry counts

    @model_validator(mode="after")
    def _weight_where_it_counts(self) -> EvidenceRule:
        if self.effect in ("demoted", "promoted") and not self.weight:
            raise ValueError(f"evidence rule {self.id}: {self.effect} needs a non-zero weight")
        if self.effect == "demoted" and self.weight is not None and self.weight > 0:
            raise ValueError(f"evidence rule {self.id}: a demotion has a negative weight")
        return self


class PatternSpec(_Strict):
    """A pattern from the guides: how to use a method in a case (engine.yaml)."""

    id: Literal[
        "async_request_reply",
        "claim_check",
        "webhook_queue",
        "notify_download",
        "grpc_web",
        "device_session",
        "ssh_tunnel",
    ]
    name: str
    methods: list[str]
    when: Condition
    how: str
    source: str


class Adapter(_Strict):
    """What a fixed interface takes when the method that speaks it is ruled out."""

    interface: list[str]
    when: Condition
    text: str
    source: str


class EngineStages(_Strict):
    extra_implementations: dict[str, list[str]] = Field(default_factory=dict)
    speaks: dict[str, str] = Field(default_factory=dict)
    adapters: list[Adapter] = Field(default_factory=list)
    patterns: list[PatternSpec] = Field(default_factory=list)
    implementation_caveats: dict[str, list[str]] = Field(default_factory=dict)
    implementation_texts: dict[str, dict[str, dict[str, Fact]]] = Field(default_factory=dict)
    implementation_labels: dict[str, str] = Field(default_factory=dict)


class KnowledgeBase(_Strict):
    version: str
    digest: str = ""
    sources: dict[str, Source]
    methods: dict[str, Method]
    fit: dict[str, FitRow]
    rules: list[Rule]
    exclusions: list[Exclusion]
    implementations: dict[str, list[ImplementationChoice]]
    caveats: list[Caveat]
    warnings: list[Warning_] = Field(default_factory=list)
    evidence: list[EvidenceRule] = Field(default_factory=list)
    stages: EngineStages = Field(default_factory=EngineStages)

    def implementations_of(self, method: str) -> list[str]:
        """Every implementation id of a method: methods.yaml's and the engine's own."""
        known = self.methods[method].implementations if method in self.methods else []
        return [*known, *self.stages.extra_implementations.get(method, [])]

    @property
    def full_version(self) -> str:
        return f"{self.version}+{self.digest}"

    @model_validator(mode="after")
    def _cross_check(self) -> KnowledgeBase:
        problems: list[str] = []
        if tuple(self.methods) != METHODS:
            problems.append(f"methods must be exactly {METHODS} in that order")
        if set(self.fit) != set(INTERACTIONS):
            problems.append(f"fit must have one row per interaction {INTERACTIONS}")

        def source(sid: str | None, where: str) -> None:
            if sid is not None and sid not in self.sources:
                problems.append(f"{where}: unknown source '{sid}'")

        def methods(ids: list[str] | dict[str, Any], where: str) -> None:
            for m in ids:
                if m not in METHODS:
                    problems.append(f"{where}: unknown method '{m}'")

        for name, method in self.methods.items():
            for fact_name, fact in method.facts.items():
                source(fact.source, f"methods.{name}.facts.{fact_name}")
            for limit in method.limits:
                source(limit.source, f"methods.{name}.limits.{limit.name}")
        for interaction, row in self.fit.items():
            where = f"fit.{interaction}"
            source(row.source, where)
            if set(row.effects) != set(METHODS):
                problems.append(f"{where}: needs an effect for each of the eleven methods")
            for m, eff in row.effects.items():
                source(eff.source, f"{where}.{m}")
        ids: set[str] = set()
        stages = self.stages
        for group in (self.rules, self.exclusions, self.caveats, self.warnings):
            for item in group:
                where = f"{type(item).__name__.rstrip('_').lower()} {item.id}"
                if item.id in ids:
                    problems.append(f"{where}: duplicate id")
                ids.add(item.id)
                source(item.source, where)
                try:
                    check_condition(item.when, where)
                except ValueError as exc:
                    problems.append(str(exc))
                if isinstance(item, Rule):
                    methods(item.effects, where)
                    for m, eff in item.effects.items():
                        source(eff.source, f"{where}.{m}")
                if isinstance(item, Exclusion | Caveat):
                    methods(item.methods, where)
        for rule in self.evidence:
            where = f"evidence {rule.id}"
            if rule.id in ids:
                problems.append(f"{where}: duplicate id")
            ids.add(rule.id)
            source(rule.source, where)
        for method_id, choices in self.implementations.items():
            methods([method_id], f"implementations.{method_id}")
            allowed = self.implementations_of(method_id)
            for choice in choices:
                where = f"implementations.{method_id}.{choice.impl}"
                if choice.impl not in allowed:
                    problems.append(f"{where}: not an implementation of {method_id}: {allowed}")
                source(choice.source, where)
                try:
                    check_condition(choice.when, where)
                except ValueError as exc:
                    problems.append(str(exc))
        for method_id in stages.extra_implementations:
            methods([method_id], f"engine.extra_implementations.{method_id}")
        for interface, method_id in stages.speaks.items():
            methods([method_id], f"engine.speaks.{interface}")
        for i, adapter in enumerate(stages.adapters):
            source(adapter.source, f"engine.adapters[{i}]")
            try:
                check_condition(adapter.when, f"engine.adapters[{i}]")
            except ValueError as exc:
                problems.append(str(exc))
        for i, pattern in enumerate(stages.patterns):
            where = f"engine.patterns[{i}] {pattern.id}"
            source(pattern.source, where)
            methods(pattern.methods, where)
            try:
                check_condition(pattern.when, where)
            except ValueError as exc:
                problems.append(str(exc))
        rule_ids = {r.id for r in self.rules} | {f"fit.{i}" for i in self.fit}
        for rule_id, per_method in stages.implementation_texts.items():
            if rule_id not in rule_ids:
                problems.append(f"engine.implementation_texts: unknown rule '{rule_id}'")
            for method_id, per_impl in per_method.items():
                allowed = self.implementations_of(method_id) if method_id in METHODS else []
                for impl, fact in per_impl.items():
                    if impl not in allowed:
                        problems.append(
                            f"engine.implementation_texts.{rule_id}.{method_id}: unknown "
                            f"implementation '{impl}'"
                        )
                    source(fact.source, f"engine.implementation_texts.{rule_id}.{method_id}")
        every_impl = {i for m in METHODS for i in self.implementations_of(m)}
        for impl in stages.implementation_labels:
            if impl not in every_impl:
                problems.append(f"engine.implementation_labels: unknown implementation '{impl}'")
        caveat_ids = {c.id for c in self.caveats}
        for cav_id in stages.implementation_caveats:
            if cav_id not in caveat_ids:
                problems.append(f"engine.implementation_caveats: unknown caveat '{cav_id}'")
        if problems:
            raise ValueError("knowledge base is inconsistent:\n  " + "\n  ".join(problems))
        return self


def load(directory: Path = KNOWLEDGE_DIR) -> KnowledgeBase:
    """Read and validate the knowledge base; raises ValueError/ValidationError if it is wrong."""
    texts = {name: (directory / name).read_text(encoding="utf-8") for name in FILES}
    digest = hashlib.sha256("".join(texts[n] for n in FILES).encode()).hexdigest()[:10]
    rules = yaml.safe_load(texts["rules.yaml"])
    evidence = yaml.safe_load(texts["evidence.yaml"])
    data = {
        "version": rules.pop("version"),
        "digest": digest,
        "sources": yaml.safe_load(texts["sources.yaml"]),
        "methods": yaml.safe_load(texts["methods.yaml"]),
        **rules,
        "evidence": evidence["rules"],
        "stages": yaml.safe_load(texts["engine.yaml"]),
    }
    return KnowledgeBase.model_validate(data)


KNOWLEDGE: KnowledgeBase = load()
KB_VERSION: str = KNOWLEDGE.full_version


_OPERATOR_WORDS = {"lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "ne": "≠"}


def _show_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}" if float(value).is_integer() else f"{value:g}"
    return str(value)


def describe(cond: Condition) -> str:
    """A condition in words, e.g. ``latency_ms ≤ 10 and peers is one of partner, public``."""
    parts: list[str] = []
    for key, test in cond.items():
        if key in ("any", "all"):
            joiner = " or " if key == "any" else " and "
            parts.append("(" + joiner.join(describe(sub) for sub in test) + ")")
        elif key == "not":
            parts.append(f"not ({describe(test)})")
        elif isinstance(test, list) and len(test) == 1:
            parts.append(f"{key} = {_show_value(test[0])}")
        elif isinstance(test, list):
            parts.append(f"{key} is one of {', '.join(_show_value(v) for v in test)}")
        elif isinstance(test, dict):
            for op, bound in test.items():
                if op == "is_null":
                    parts.append(f"{key} is {'' if bound else 'not '}null")
                else:
                    parts.append(f"{key} {_OPERATOR_WORDS[op]} {_show_value(bound)}")
        else:
            parts.append(f"{key} = {_show_value(test)}")
    return " and ".join(parts) if parts else "always"
