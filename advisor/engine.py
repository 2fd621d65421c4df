"""The recommendation engine: UseCase -> Recommendation. Pure: no ORM, no I/O.

The knowledge base (``advisor/knowledge/*.yaml``) holds every rule; this module
compiles its conditions once into predicates and applies them:

1. each matching scoring rule adds its weight to a method's raw score and
   leaves a *factor* (which answer, how much, why, which source);
2. matching exclusions rule methods out whatever they score;
3. the first matching implementation choice names the concrete technology;
4. caveats and warnings are attached where their conditions hold;
5. for the top two methods, every single answer is changed in turn to find
   the changes that would flip the recommendation ("what would change").

Scores are a logistic squash of the raw score, ``1 / (1 + e^(-raw/4))``: an
absolute scale, so a rule that adds to a method can never lower its score,
whatever happens to the other methods.
"""

from __future__ import annotations

import math
import operator
import string
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from advisor import evidence_rules, vocabulary
from advisor.evidence import Measurement
from advisor.knowledge import DERIVED, KB_VERSION, KNOWLEDGE, METHODS, KnowledgeBase
from advisor.recommendation import (
    CONFIDENCE_LABELS,
    Confidence,
    Flip,
    MethodResult,
    Reason,
    Recommendation,
    SourceRef,
)
from advisor.usecase import BOOLEAN_FIELDS, CHOICES, MAX_LATENCY_MS, UseCase

__all__ = [
    "KB_VERSION",
    "METHODS",
    "Confidence",
    "Flip",
    "MethodResult",
    "Reason",
    "Recommendation",
    "SourceRef",
    "method_label",
    "recommend",
    "recommend_json",
]

SCORE_SCALE = 4.0
# A ruled-out method's handicap when "what would change" compares score vectors:
# larger than any sum of weights, so it only decides between ruled-out methods.
PENALTY = 1e6
MAX_FLIPS_PER_METHOD = 6
ROW_CACHE_SIZE = 512  # per rule; numbers make the distinct answers unbounded


# --------------------------------------------------------------------------
# Compiling conditions.

Values = dict[str, Any]
Pred = Callable[[Values], bool]


def _always(values: Values) -> bool:
    return True


def _comparison(key: str, op: str, bound: Any) -> Pred:
    # None (no budget, no file) satisfies no numeric bound.
    if op == "is_null":
        want_null = bool(bound)
        return lambda v: (v[key] is None) is want_null
    if op == "ne":
        return lambda v: v[key] != bound
    if op == "lt":
        return lambda v: v[key] is not None and v[key] < bound
    if op == "lte":
        return lambda v: v[key] is not None and v[key] <= bound
    if op == "gt":
        return lambda v: v[key] is not None and v[key] > bound
    if op == "gte":
        return lambda v: v[key] is not None and v[key] >= bound
    raise ValueError(f"unknown operator {op!r}")  # the knowledge loader refuses these first


def _compile_test(key: str, test: Any) -> Pred:
    if isinstance(test, list):
        members = frozenset(test)
        return lambda v: v[key] in members
    if isinstance(test, dict):
        checks = [_comparison(key, op, bound) for op, bound in test.items()]
        return _conjunction(checks)
    if isinstance(test, bool):
        return lambda v: v[key] is test
    return lambda v: v[key] == test


def compile_condition(cond: dict[str, Any]) -> tuple[Pred, frozenset[str]]:
    """A predicate over the answers, and the names (answers or derived values) it reads."""
    preds: list[Pred] = []
    names: set[str] = set()
    for key, test in cond.items():
        if key in ("any", "all"):
            subs = [compile_condition(sub) for sub in test]
            for _, sub_names in subs:
                names |= sub_names
            sub_preds = tuple(pred for pred, _ in subs)
            preds.append(_some(sub_preds) if key == "any" else _conjunction(list(sub_preds)))
        elif key == "not":
            inner, inner_names = compile_condition(test)
            names |= inner_names
            preds.append(_negation(inner))
        else:
            names.add(key)
            preds.append(_compile_test(key, test))
    if not preds:
        return _always, frozenset()
    return _conjunction(preds), frozenset(names)


def _negation(pred: Pred) -> Pred:
    return lambda v: not pred(v)


def _some(preds: tuple[Pred, ...]) -> Pred:
    return lambda v: any(p(v) for p in preds)


def _conjunction(preds: list[Pred]) -> Pred:
    # Unrolled for the common short cases: this runs thousands of times per second.
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda v: a(v) and b(v)
    if len(preds) == 3:
        a, b, c = preds
        return lambda v: a(v) and b(v) and c(v)
    pred_tuple = tuple(preds)
    return lambda v: all(p(v) for p in pred_tuple)


def _sign(weight: float) -> str:
    return "+" if weight > 0 else ("-" if weight < 0 else "±")


def _answers_of(names: Iterable[str]) -> frozenset[str]:
    """The use-case fields behind condition names (derived values expand to their inputs)."""
    out: set[str] = set()
    for name in names:
        out.update(DERIVED.get(name, (name,)))
    return frozenset(out)


def _thresholds(cond: Any, into: dict[str, set[float]]) -> None:
    """Collect values on both sides of each numeric bound (for 'what would change')."""
    if isinstance(cond, list):
        for sub in cond:
            _thresholds(sub, into)
        return
    if not isinstance(cond, dict):
        return
    for key, test in cond.items():
        if key in ("any", "all", "not"):
            _thresholds(test, into)
        elif isinstance(test, dict):
            for op, bound in test.items():
                # The values on either side of the bound: the bound itself falls on the
                # side its operator includes, half or double of it on the other.
                if key in DERIVED:
                    continue
                if op in ("gte", "lt"):
                    into[key].update((float(bound) / 2, float(bound)))
                elif op in ("gt", "lte"):
                    into[key].update((float(bound), float(bound) * 2))


# --------------------------------------------------------------------------
# The compiled knowledge base.

METHOD_INDEX = {m: i for i, m in enumerate(METHODS)}
N = len(METHODS)
_FIELD_ORDER = {name: i for i, name in enumerate(UseCase.model_fields)}

# (method index, weight, text, source id, source title, source url)
Effect = tuple[int, float, str, str, str, str]


@dataclass(frozen=True)
class ScoringRule:
    index: int
    rule_id: str
    pred: Pred
    answers: frozenset[str]
    fields: tuple[str, ...]  # the answers in document order, for display
    effects: tuple[Effect, ...]
    reads: frozenset[str]  # the names its condition reads, derived values included
    # Per answer seen, the rule's rows for _method_results: (method, sort key, factor,
    # reason). Few distinct answers occur (most fields have a few values), so worth
    # keeping; the factor dictionaries are copied out, never handed over.
    row_cache: dict[tuple[Any, ...], tuple[tuple[int, float, dict[str, Any], str], ...]] = field(
        default_factory=dict, compare=False
    )

    def rows(self, values: Values) -> tuple[tuple[int, float, dict[str, Any], str], ...]:
        key = tuple([values[name] for name in self.fields])
        rows = self.row_cache.get(key)
        if rows is None:
            answer = _answer_text(self.fields, values)
            rows = tuple(
                (m, weight, {**static, "answer": answer}, f"{answer}: {tail}")
                for m, weight, static, tail in self.display
            )
            if len(self.row_cache) < ROW_CACHE_SIZE:
                self.row_cache[key] = rows
        return rows

    @cached_property
    def display(self) -> tuple[tuple[int, float, dict[str, Any], str], ...]:
        """Per effect: method, weight, the reason without its answer, the string's tail.

        Built once per rule, so a recommendation only adds the answers it was given.
        Effects of no weight are no reason for or against anything: left out."""
        out = []
        for m, weight, text, sid, title, url in self.effects:
            if weight == 0:
                continue
            reason = {
                "rule": self.rule_id,
                "fields": list(self.fields),
                "weight": weight,
                "text": text,
                "source": {"id": sid, "title": title, "url": url},
            }
            out.append((m, weight, reason, f"{text} [{title}]"))
        return tuple(out)


@dataclass(frozen=True)
class ExclusionRule:
    index: int
    rule_id: str
    pred: Pred
    answers: frozenset[str]
    fields: tuple[str, ...]
    methods: tuple[int, ...]
    text: str  # already carries the source title
    reads: frozenset[str]


@dataclass(frozen=True)
class Choice:
    impl: str
    pred: Pred
    text: str


@dataclass(frozen=True)
class Attached:
    """A caveat (for some methods) or a warning (methods empty); text may use {field}."""

    rule_id: str
    pred: Pred
    methods: frozenset[int]
    template: str
    names: tuple[str, ...]  # fields and derived values the template shows


@dataclass(frozen=True)
class FieldPlan:
    """Everything "what would change" needs to try other values of one answer."""

    field: str
    candidates: tuple[tuple[Any, list[float]], ...]  # value, what one-answer rules add
    solo_rules: tuple[ScoringRule, ...]
    joint_rules: tuple[ScoringRule, ...]
    solo_exclusions: tuple[ExclusionRule, ...]
    joint_exclusions: tuple[ExclusionRule, ...]
    reach: list[float]
    may_exclude: frozenset[int]
    # For answers with a fixed set of values, every value is a candidate, so what the
    # one-answer rules add for the given answer can be looked up instead of computed.
    by_value: dict[Any, list[float]] | None


def _in_order(answers: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(answers, key=_FIELD_ORDER.__getitem__))


def _template_names(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _field_plan(
    field: str,
    alternatives: tuple[Any, ...],
    rules: tuple[ScoringRule, ...],
    exclusions: tuple[ExclusionRule, ...],
    fit: dict[str, ScoringRule],
) -> FieldPlan:
    """What "what would change" needs to try other values of one answer.

    Most rules read one answer only. What they add to each method under every value
    worth trying is known in advance: one vector per value, in which exclusions that
    read only this answer are a penalty no score can make up for. Only the rules and
    exclusions that also read other answers are evaluated per use case."""
    only = frozenset({field})
    solo = tuple(r for r in rules if r.reads == only)
    solo_exclusions = tuple(e for e in exclusions if e.reads == only)
    candidates = []
    for value in alternatives:
        vector = [0.0] * N
        probe = {field: value}
        for rule in solo:
            if rule.pred(probe):
                for effect in rule.effects:
                    vector[effect[0]] += effect[1]
        for excl in solo_exclusions:
            if excl.pred(probe):
                for m in excl.methods:
                    vector[m] -= PENALTY
        if field == "interaction":
            for effect in fit[value].effects:
                vector[effect[0]] += effect[1]
        candidates.append((value, vector))
    # The most this answer can move each method: the sum of the weights of every rule
    # that reads it (for interaction, the spread of the fit rows). A change to it
    # cannot overturn a lead larger than that, so it need not be tried.
    reach = [0.0] * N
    for rule in rules:
        for effect in rule.effects:
            reach[effect[0]] += abs(effect[1])
    if field == "interaction":
        for m in range(N):
            weights = [e[1] for row in fit.values() for e in row.effects if e[0] == m]
            reach[m] += max(weights) - min(weights)
    return FieldPlan(
        field=field,
        candidates=tuple(candidates),
        solo_rules=solo,
        joint_rules=tuple(r for r in rules if r not in solo),
        solo_exclusions=solo_exclusions,
        joint_exclusions=tuple(e for e in exclusions if e not in solo_exclusions),
        reach=reach,
        # A change that may rule out the winner must always be tried.
        may_exclude=frozenset(m for excl in exclusions for m in excl.methods),
        by_value=dict(candidates) if field in CHOICES or field in BOOLEAN_FIELDS else None,
    )


class Compiled:
    """The knowledge base turned into predicates and index tables, built once at import."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        titled = {sid: f" [{src.title}]" for sid, src in kb.sources.items()}

        def make_effect(method: str, weight: float, text: str, sid: str) -> Effect:
            src = kb.sources[sid]
            return (METHOD_INDEX[method], weight, text, sid, src.title, src.url)

        thresholds: dict[str, set[float]] = defaultdict(set)
        # The fit rows are keyed by interaction: one lookup instead of seven predicates.
        self.fit: dict[str, ScoringRule] = {}
        for interaction, row in kb.fit.items():
            self.fit[interaction] = ScoringRule(
                index=-1,
                rule_id=f"fit.{interaction}",
                pred=_compile_test("interaction", interaction),
                answers=frozenset({"interaction"}),
                fields=("interaction",),
                effects=tuple(
                    make_effect(m, e.weight, e.text or row.text, e.source or row.source)
                    for m, e in row.effects.items()
                ),
                reads=frozenset({"interaction"}),
            )
        self.scoring: list[ScoringRule] = []
        for rule in kb.rules:
            pred, names = compile_condition(rule.when)
            _thresholds(rule.when, thresholds)
            answers = _answers_of(names)
            self.scoring.append(
                ScoringRule(
                    index=len(self.scoring),
                    rule_id=rule.id,
                    pred=pred,
                    answers=answers,
                    fields=_in_order(answers),
                    effects=tuple(
                        make_effect(m, e.weight, e.text or rule.text, e.source or rule.source)
                        for m, e in rule.effects.items()
                        if e.weight != 0 or e.text
                    ),
                    reads=names,
                )
            )
        self.exclusions: list[ExclusionRule] = []
        for excl in kb.exclusions:
            pred, names = compile_condition(excl.when)
            _thresholds(excl.when, thresholds)
            answers = _answers_of(names)
            self.exclusions.append(
                ExclusionRule(
                    index=len(self.exclusions),
                    rule_id=excl.id,
                    pred=pred,
                    answers=answers,
                    fields=_in_order(answers),
                    methods=tuple(METHOD_INDEX[m] for m in excl.methods),
                    text=excl.text + titled[excl.source],
                    reads=names,
                )
            )
        self.choices: dict[int, tuple[Choice, ...]] = {
            METHOD_INDEX[method]: tuple(
                Choice(c.impl, compile_condition(c.when)[0], c.text + titled[c.source])
                for c in choices
            )
            for method, choices in kb.implementations.items()
        }
        self.caveats = tuple(
            Attached(
                c.id,
                compile_condition(c.when)[0],
                frozenset(METHOD_INDEX[m] for m in c.methods),
                c.text + titled[c.source],
                _template_names(c.text),
            )
            for c in kb.caveats
        )
        self.warnings = tuple(
            Attached(
                w.id,
                compile_condition(w.when)[0],
                frozenset(),
                w.text + titled[w.source],
                _template_names(w.text),
            )
            for w in kb.warnings
        )
        # "What would change": for every answer worth changing, a plan of what to re-check.
        self.plans = tuple(
            _field_plan(
                field,
                alternatives,
                tuple(r for r in self.scoring if field in r.answers),
                tuple(e for e in self.exclusions if field in e.answers),
                self.fit,
            )
            for field, alternatives in _alternatives(thresholds).items()
        )
        # Derived values that scoring or exclusions read must be recomputed when one of
        # their inputs changes; those only warnings read need not be.
        read = {n for rule in self.scoring for n in rule.reads} | {
            n for excl in self.exclusions for n in excl.reads
        }
        self.derived_inputs = frozenset(
            field for name, inputs in DERIVED.items() if name in read for field in inputs
        )
        self.labels = {m: kb.methods[m].label for m in METHODS}
        # Per method, the per-message limits of its common implementations, smallest first.
        self.limits: dict[int, tuple[tuple[int, str, str], ...]] = {
            METHOD_INDEX[m]: tuple(
                sorted(
                    (lim.max_message_bytes, lim.name, kb.sources[lim.source].title)
                    for lim in kb.methods[m].limits
                )
            )
            for m in METHODS
            if kb.methods[m].limits
        }


_INT_FIELDS = frozenset({"message_bytes", "file_bytes", "consumers"})
_NULLABLE = frozenset({"latency_ms", "file_bytes"})
_BOUNDS: dict[str, tuple[float, float]] = {
    "latency_ms": (1e-3, MAX_LATENCY_MS),
    "message_bytes": (1, math.inf),
    "file_bytes": (1, math.inf),
    "rate_per_second": (0, math.inf),
    "consumers": (1, math.inf),
}


def _alternatives(thresholds: dict[str, set[float]]) -> dict[str, tuple[Any, ...]]:
    """Values worth trying for each answer: every other choice, and for numbers a value
    on each side of every bound a rule compares them with. Between two bounds every
    value scores alike, so these reach every outcome one number can produce."""
    alts: dict[str, tuple[Any, ...]] = dict(CHOICES)
    for name in BOOLEAN_FIELDS:
        alts[name] = (True, False)
    for name, (low, high) in _BOUNDS.items():
        candidates: set[float] = set()
        for value in thresholds.get(name, ()):
            if name in _INT_FIELDS:
                value = float(round(value))
            if low <= value <= high:
                candidates.add(value)
        ordered: list[Any] = [
            int(c) if name in _INT_FIELDS or c.is_integer() else c for c in sorted(candidates)
        ]
        if name in _NULLABLE:
            ordered.insert(0, None)
        alts[name] = tuple(ordered)
    return dict(sorted(alts.items(), key=lambda kv: _FIELD_ORDER[kv[0]]))


COMPILED = Compiled(KNOWLEDGE)


def method_label(method: str) -> str:
    return COMPILED.labels.get(method, method)


# --------------------------------------------------------------------------
# Scoring.


def _as_float(number: float) -> float:
    # The document bounds integers below only; one too large for a float is infinite here.
    try:
        return float(number)
    except OverflowError:
        return math.inf


def _with_derived(values: Values) -> Values:
    values["wan"] = values["peers"] != "internal"
    bandwidth = values["rate_per_second"] * _as_float(values["message_bytes"]) * 8
    values["bandwidth_bps"] = bandwidth
    values["bandwidth_gbps"] = round(bandwidth / 1e9, 1)
    file_bytes = values["file_bytes"]
    file_ms = None if file_bytes is None else round(_as_float(file_bytes) * 8 / 1e10 * 1000, 1)
    values["file_min_ms_10g"] = file_ms
    latency = values["latency_ms"]
    values["file_exceeds_budget"] = (
        file_ms is not None and latency is not None and file_ms > latency
    )
    return values


def _show(value: Any) -> str:
    """An answer as the user wrote it in the document."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else f"{value:.3g}"
    return str(value)


def _readable(value: Any) -> str:
    """A value inside a sentence: thousands separators for numbers."""
    if value is None or isinstance(value, bool | str):
        return _show(value)
    if isinstance(value, float) and math.isinf(value):
        return "more than 10^300"
    if isinstance(value, int) and value >= 10**15:
        return f"about 10^{int(value.bit_length() * math.log10(2))}"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    return f"{value:,.3g}"


def _fill(item: Attached, values: Values) -> str:
    if not item.names:
        return item.template
    return item.template.format_map({name: _readable(values[name]) for name in item.names})


def _answer_text(fields: tuple[str, ...], values: Values) -> str:
    return "; ".join(vocabulary.answer_text(name, values[name]) for name in fields)


@dataclass
class _State:
    values: Values
    raw: list[float]
    matched: list[bool]
    excluded_by: list[int]
    excl_matched: list[bool]
    fit: ScoringRule


def _score(values: Values, c: Compiled) -> _State:
    raw = [0.0] * N
    fit = c.fit[values["interaction"]]
    for effect in fit.effects:
        raw[effect[0]] += effect[1]
    matched = [False] * len(c.scoring)
    for rule in c.scoring:
        if rule.pred(values):
            matched[rule.index] = True
            for effect in rule.effects:
                raw[effect[0]] += effect[1]
    excluded_by = [0] * N
    excl_matched = [False] * len(c.exclusions)
    for excl in c.exclusions:
        if excl.pred(values):
            excl_matched[excl.index] = True
            for m in excl.methods:
                excluded_by[m] += 1
    return _State(values, raw, matched, excluded_by, excl_matched, fit)


def _order(raw: list[float], excluded_by: list[int]) -> list[int]:
    # Methods ruled out by fewer constraints first (all but the ruled-out ones have
    # none), then by score; ties keep METHODS order, so equal answers rank alike.
    return sorted(range(N), key=lambda m: (excluded_by[m], -raw[m], m))


def _by_weight(row: tuple[float, dict[str, Any], str]) -> float:
    return -abs(row[0])


def _method_results(
    state: _State, order: list[int], c: Compiled, weighed: evidence_rules.EvidenceOutcome
) -> list[dict[str, Any]]:
    values = state.values
    # per method: (weight, reason, contract string)
    rows: list[list[tuple[float, dict[str, Any], str]]] = [[] for _ in range(N)]
    rules = [state.fit] + [r for r in c.scoring if state.matched[r.index]]
    for rule in rules:
        for m, weight, reason, line in rule.rows(values):
            rows[m].append((weight, {**reason, "fields": list(reason["fields"])}, line))
    for ev in weighed.reasons:
        src = c.kb.sources[ev.source]
        reason = {
            "rule": ev.rule,
            "fields": [],
            "answer": "Measured",
            "weight": ev.weight,
            "text": ev.text,
            "source": {"id": ev.source, "title": src.title, "url": src.url},
        }
        rows[METHOD_INDEX[ev.method]].append((ev.weight, reason, f"{ev.text} [{src.title}]"))
    exclusions: list[list[str]] = [[] for _ in range(N)]
    for excl in c.exclusions:
        if state.excl_matched[excl.index]:
            line = f"{_answer_text(excl.fields, values)}: {excl.text}"
            for m in excl.methods:
                exclusions[m].append(line)
    for method, entries in weighed.ruled_out.items():
        exclusions[METHOD_INDEX[method]].extend(text for _, text in entries)
    caveats: list[list[str]] = [[] for _ in range(N)]
    for cav in c.caveats:
        if cav.pred(values):
            line = _fill(cav, values)
            for m in cav.methods:
                caveats[m].append(line)
    for method, texts in weighed.caveats.items():
        caveats[METHOD_INDEX[method]].extend(texts)
    size = values["message_bytes"]
    for m, limits in c.limits.items():
        exceeded = [limit for limit in limits if size > limit[0]]
        if exceeded:
            caveats[m].append(
                f"{vocabulary.format_bytes(size)} messages exceed the limit of "
                + ", ".join(
                    f"{name} ({vocabulary.format_exact_bytes(limit)})"
                    for limit, name, _ in exceeded
                )
                + " ["
                + "; ".join(dict.fromkeys(title for _, _, title in exceeded))
                + "]"
            )
    results = []
    for m in order:
        implementation = implementation_reason = None
        for choice in c.choices.get(m, ()):
            if choice.pred(values):
                implementation, implementation_reason = choice.impl, choice.text
                break
        excluded = state.excluded_by[m] > 0
        raw = round(state.raw[m], 3)
        ranked = sorted(rows[m], key=_by_weight)
        results.append(
            {
                "method": METHODS[m],
                "label": c.labels[METHODS[m]],
                "implementation": implementation,
                "implementation_label": implementation,
                "implementation_reason": implementation_reason,
                "pattern": None,
                "score": 0.0 if excluded else round(1.0 / (1.0 + math.exp(-raw / SCORE_SCALE)), 3),
                "feasible": not excluded,
                "excluded": excluded,
                "exclusions": exclusions[m],
                "reasons": [row[2] for row in ranked if row[0] > 0]
                + [row[2] for row in ranked if row[0] < 0],
                "reasons_for": [row[1] for row in ranked if row[0] > 0],
                "reasons_against": [row[1] for row in ranked if row[0] < 0],
                "caveats": exclusions[m] + caveats[m],
            }
        )
    return results


def _confidence(state: _State, order: list[int]) -> dict[str, Any]:
    first, second = order[0], order[1]
    if state.excluded_by[first]:
        level, text = "close", "Every method is ruled out: see the conflicts."
        margin = 0.0
    elif state.excluded_by[second]:
        level, margin = "clear", round(state.raw[first], 3)
        text = "It is the only method that meets every hard constraint."
    else:
        margin = round(state.raw[first] - state.raw[second], 3)
        level = "clear" if margin >= 3 else "likely" if margin >= 1 else "close"
        text = f"{margin:g} points ahead of the runner-up."
    return {"level": level, "label": CONFIDENCE_LABELS[level], "margin": margin, "text": text}


# --------------------------------------------------------------------------
# What would change the answer.


def _solo_now(plan: FieldPlan, state: _State) -> list[float]:
    """What the one-answer rules and exclusions reading the plan's answer contribute
    to each method for the answer as given."""
    vector = [0.0] * N
    matched = state.matched
    for rule in plan.solo_rules:
        if matched[rule.index]:
            for effect in rule.effects:
                vector[effect[0]] += effect[1]
    for excl in plan.solo_exclusions:
        if state.excl_matched[excl.index]:
            for m in excl.methods:
                vector[m] -= PENALTY
    if plan.field == "interaction":
        for effect in state.fit.effects:
            vector[effect[0]] += effect[1]
    return vector


def _apply_joint(
    plan: FieldPlan, value: Any, scores: list[float], state: _State, c: Compiled
) -> None:
    """Add what the rules and exclusions that also read other answers change when the
    plan's answer takes ``value``. The caller puts the answer back afterwards."""
    values = state.values
    if plan.field in c.derived_inputs:
        values = values.copy()
        values[plan.field] = value
        _with_derived(values)
    else:
        values[plan.field] = value
    matched = state.matched
    for rule in plan.joint_rules:
        now = rule.pred(values)
        if now is not matched[rule.index]:
            if now:
                for effect in rule.effects:
                    scores[effect[0]] += effect[1]
            else:
                for effect in rule.effects:
                    scores[effect[0]] -= effect[1]
    for excl in plan.joint_exclusions:
        now = excl.pred(values)
        if now is not state.excl_matched[excl.index]:
            step = -PENALTY if now else PENALTY
            for m in excl.methods:
                scores[m] += step


def _distance(current: Any, value: Any) -> float:
    """How far a changed answer is from the given one (log scale for positive numbers)."""
    if isinstance(current, bool) or isinstance(value, bool):
        return 0.0
    if isinstance(current, int | float) and isinstance(value, int | float):
        if current > 0 and value > 0:
            # log of each, not of the ratio: math.log takes integers of any size.
            return abs(math.log(value) - math.log(current))
        return abs(_as_float(value) - _as_float(current))
    return 0.0


def _flips(state: _State, order: list[int], c: Compiled) -> list[dict[str, Any]]:
    """For the top two: the single answers that, changed, put another method first.

    For the winner, every change that dethrones it; for the runner-up, every change
    that makes it the winner. Per answer and new winner, the smallest change is kept."""
    values = state.values
    first, second = order[0], order[1]
    found: dict[tuple[int, str, int], tuple[float, Any]] = {}
    raw = state.raw
    lead = [raw[first] - r for r in raw]
    # Scores with every exclusion as a penalty: the best of them is the winner.
    penalised = [r - PENALTY * e for r, e in zip(raw, state.excluded_by, strict=True)]
    for plan in c.plans:
        if first not in plan.may_exclude:
            # No value of this answer can overturn a lead larger than the most it can
            # lower the winner plus the most it can raise a rival.
            slack = list(map(operator.sub, lead, plan.reach))
            slack[first] = math.inf
            if min(slack) > plan.reach[first]:
                continue
        field = plan.field
        current = values[field]
        now = plan.by_value[current] if plan.by_value is not None else _solo_now(plan, state)
        base = list(map(operator.sub, penalised, now))
        joint = bool(plan.joint_rules or plan.joint_exclusions)
        for value, vector in plan.candidates:
            if value == current and type(value) is type(current):
                continue
            if not joint and vector == now:
                continue  # the same rules hold: the same ranking
            scores = list(map(operator.add, base, vector))
            if joint:
                _apply_joint(plan, value, scores, state, c)
                values[field] = current
            # Fewest exclusions, then the highest score, then the first listed: as _order.
            winner = scores.index(max(scores))
            if winner == first:
                continue
            distance = _distance(current, value) if plan.by_value is None else 0.0
            for target in (first, second) if winner == second else (first,):
                key = (target, field, winner)
                if key not in found or distance < found[key][0]:
                    found[key] = (distance, value)
    flips: list[dict[str, Any]] = []
    labels = c.labels
    for target in (first, second):
        rows = sorted(
            ((key, found[key]) for key in found if key[0] == target),
            # Changing the interaction changes the problem itself: list it last.
            key=lambda kv: (kv[0][1] == "interaction", _FIELD_ORDER[kv[0][1]], kv[1][0]),
        )
        for (_, field, winner), (_, value) in rows[:MAX_FLIPS_PER_METHOD]:
            current = values[field]
            short = vocabulary.FIELDS[field].short
            change = (
                f"{short.lower()} were {vocabulary.bound_text(field, value)}"
                if value is not None
                else f"{short.lower()} were {vocabulary.value_text(field, None)}"
            ) + f" (now {vocabulary.value_text(field, current)})"
            if target == first:
                text = (
                    f"If {change}, {labels[METHODS[winner]]} would rank first instead of "
                    f"{labels[METHODS[first]]}."
                )
            else:
                text = (
                    f"If {change}, {labels[METHODS[winner]]} would overtake "
                    f"{labels[METHODS[first]]}."
                )
            flips.append(
                {
                    "for_method": METHODS[target],
                    "field": field,
                    "label": short,
                    "current": current,
                    "value": value,
                    "threshold": value,
                    "winner": METHODS[winner],
                    "change": change,
                    "text": text,
                }
            )
    return flips


# --------------------------------------------------------------------------
# The entry point.


def recommend(
    usecase: UseCase,
    *,
    evidence: Iterable[Measurement] = (),
    explain_changes: bool = True,
) -> Recommendation:
    """Rank all eleven methods for a use case, weighing any measurements of its servers.

    ``explain_changes`` adds the single answers that would flip the first pick.
    """
    c = COMPILED
    state = _score(_with_derived(dict(usecase.__dict__)), c)
    weighed = evidence_rules.weigh(usecase, evidence, c.kb, c.labels)
    for ev in weighed.reasons:
        state.raw[METHOD_INDEX[ev.method]] += ev.weight
    for method in weighed.ruled_out:
        state.excluded_by[METHOD_INDEX[method]] += 1
    order = _order(state.raw, state.excluded_by)
    warnings = [_fill(w, state.values) for w in c.warnings if w.pred(state.values)]
    warnings += weighed.warnings
    conflicts: list[str] = []
    if all(state.excluded_by):
        warnings.insert(
            0,
            "Every method is ruled out by a hard constraint: the answers contradict each other. "
            "The ranking puts the methods ruled out by the fewest constraints first.",
        )
        conflicts = sorted(
            {
                vocabulary.FIELDS[f].short
                for e in c.exclusions
                if state.excl_matched[e.index]
                for f in e.fields
            }
        )
    data = {
        "version": 1,
        "kb_version": KB_VERSION,
        "ranking": _method_results(state, order, c, weighed),
        "warnings": warnings,
        "what_would_change": _flips(state, order, c) if explain_changes else [],
        "confidence": _confidence(state, order),
        "conflicts": conflicts,
        "evidence": weighed.notes,
    }
    return Recommendation.model_validate(data)


def recommend_json(
    usecase: UseCase,
    *,
    evidence: Iterable[Measurement] = (),
    explain_changes: bool = True,
) -> dict[str, Any]:
    """The ``advise --format json`` object of :func:`recommend`."""
    return recommend(usecase, evidence=evidence, explain_changes=explain_changes).contract_json()
