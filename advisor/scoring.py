"""The knowledge base compiled for the engine, and the one way answers are scored.

Pure: no ORM, no I/O. :class:`Compiled` turns the YAML conditions into
predicates once, at import; :func:`evaluate` scores a set of answers in the
order the guides decide (``docs/knowledge.md``, "How the engine decides"):

1. feasibility: every exclusion whose condition holds rules its methods out;
2. fixed interfaces: the feasible method that speaks ``existing_interface``
   goes first;
3. fit: the interaction's row and every matching rule add their weights (a
   rule with a ramp adds a fraction of them that follows the answer smoothly).

:func:`rank_key` orders methods by exactly that, and :func:`partial` scores
only the rules that read given answers, which is what "what would change"
(:mod:`advisor.whatif`) needs to try other values of one answer quickly.
Nothing here is mutable after import.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from advisor.knowledge import DERIVED, KNOWLEDGE, METHODS, KnowledgeBase
from advisor.usecase import UseCase

Values = dict[str, Any]
Pred = Callable[[Values], bool]

METHOD_INDEX = {m: i for i, m in enumerate(METHODS)}
N = len(METHODS)
FIELD_ORDER = {name: i for i, name in enumerate(UseCase.model_fields)}


# --------------------------------------------------------------------------
# Compiling conditions.


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
        return _conjunction([_comparison(key, op, bound) for op, bound in test.items()])
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
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda v: a(v) and b(v)
    pred_tuple = tuple(preds)
    return lambda v: all(p(v) for p in pred_tuple)


def answers_of(names: Iterable[str]) -> frozenset[str]:
    """The use-case fields behind condition names (derived values expand to their inputs)."""
    out: set[str] = set()
    for name in names:
        out.update(DERIVED.get(name, (name,)))
    return frozenset(out)


# Where a comparison switches, relative to its bound: just after it (``lte``, ``gt``),
# just before it (``lt``, ``gte``), or on both sides; a ramp's point is continuous (0).
_SIDES = {"lte": (1,), "gt": (1,), "lt": (-1,), "gte": (-1,), "ne": (-1, 1)}
Edge = tuple[float, int]


def bounds_of(cond: Any, into: dict[str, set[Edge]]) -> None:
    """Every number a condition compares an answer with, per answer, with the side of
    the number on which the condition switches."""
    if isinstance(cond, list):
        for sub in cond:
            bounds_of(sub, into)
        return
    if not isinstance(cond, dict):
        return
    for key, test in cond.items():
        if key in ("any", "all", "not"):
            bounds_of(test, into)
        elif isinstance(test, dict) and key not in DERIVED:
            for op, bound in test.items():
                if op in _SIDES and isinstance(bound, int | float) and not isinstance(bound, bool):
                    for side in _SIDES[op]:
                        into.setdefault(key, set()).add((float(bound), side))


def in_order(answers: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(answers, key=FIELD_ORDER.__getitem__))


# --------------------------------------------------------------------------
# The compiled knowledge base.


@dataclass(frozen=True)
class Effect:
    method: int
    weight: float
    text: str
    source: str  # an id in sources.yaml


@dataclass(frozen=True)
class Ramp:
    field: str
    logs: tuple[float, ...]  # log10 of the points' values
    fractions: tuple[float, ...]

    def fraction(self, value: Any) -> float:
        if value is None:
            return 0.0
        x = math.log10(value) if value > 0 else -math.inf
        logs, fractions = self.logs, self.fractions
        if x <= logs[0]:
            return fractions[0]
        if x >= logs[-1]:
            return fractions[-1]
        for i in range(1, len(logs)):
            if x <= logs[i]:
                t = (x - logs[i - 1]) / (logs[i] - logs[i - 1])
                return fractions[i - 1] + t * (fractions[i] - fractions[i - 1])
        return fractions[-1]  # pragma: no cover (the loop always returns)


@dataclass(frozen=True)
class Rule:
    index: int
    rule_id: str
    pred: Pred
    answers: frozenset[str]  # the use-case fields it reads (derived values expanded)
    fields: tuple[str, ...]  # the same, in document order, for display
    effects: tuple[Effect, ...]
    ramp: Ramp | None = None

    def factor(self, values: Values) -> float:
        """How much of its weights the rule adds for these answers (0 when it does not hold)."""
        if not self.pred(values):
            return 0.0
        return 1.0 if self.ramp is None else self.ramp.fraction(values[self.ramp.field])


@dataclass(frozen=True)
class Exclusion:
    index: int
    rule_id: str
    pred: Pred
    answers: frozenset[str]
    fields: tuple[str, ...]
    methods: tuple[int, ...]
    text: str
    source: str


@dataclass(frozen=True)
class Attached:
    """A caveat (for some methods, maybe some implementations) or a warning."""

    rule_id: str
    pred: Pred
    methods: frozenset[int]
    template: str
    source: str | None  # None: a warning that checks the answers against each other
    names: tuple[str, ...]  # fields and derived values the template shows
    implementations: frozenset[str] | None = None


@dataclass(frozen=True)
class Choice:
    impl: str
    pred: Pred
    text: str
    source: str


@dataclass(frozen=True)
class PatternRule:
    pattern_id: str
    name: str
    methods: frozenset[int]
    pred: Pred
    how: str
    source: str


@dataclass(frozen=True)
class AdapterRule:
    interfaces: frozenset[str]
    pred: Pred
    text: str
    source: str


def _template_names(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


class Compiled:
    """The knowledge base turned into predicates and index tables, built once at import."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        bounds: dict[str, set[Edge]] = {}
        self.fit: dict[str, tuple[Effect, ...]] = {
            interaction: tuple(
                Effect(METHOD_INDEX[m], e.weight, e.text or row.text, e.source or row.source)
                for m, e in row.effects.items()
            )
            for interaction, row in kb.fit.items()
        }
        self.fit_source = {interaction: row.source for interaction, row in kb.fit.items()}
        rules: list[Rule] = []
        for rule in kb.rules:
            pred, names = compile_condition(rule.when)
            bounds_of(rule.when, bounds)
            answers = set(answers_of(names))
            ramp = None
            if rule.ramp is not None:
                answers.add(rule.ramp.field)
                ramp = Ramp(
                    rule.ramp.field,
                    tuple(math.log10(x) for x, _ in rule.ramp.points),
                    tuple(f for _, f in rule.ramp.points),
                )
                for x, _ in rule.ramp.points:
                    bounds.setdefault(rule.ramp.field, set()).add((float(x), 0))
            shown = set(answers_of(rule.show or ()))
            if ramp is not None:
                shown.add(ramp.field)
            rules.append(
                Rule(
                    index=len(rules),
                    rule_id=rule.id,
                    pred=pred,
                    answers=frozenset(answers),
                    fields=in_order(answers if rule.show is None else shown),
                    effects=tuple(
                        Effect(
                            METHOD_INDEX[m], e.weight, e.text or rule.text, e.source or rule.source
                        )
                        for m, e in rule.effects.items()
                        if e.weight != 0
                    ),
                    ramp=ramp,
                )
            )
        self.rules = tuple(rules)
        exclusions: list[Exclusion] = []
        for excl in kb.exclusions:
            pred, names = compile_condition(excl.when)
            bounds_of(excl.when, bounds)
            excl_answers = answers_of(names)
            exclusions.append(
                Exclusion(
                    index=len(exclusions),
                    rule_id=excl.id,
                    pred=pred,
                    answers=excl_answers,
                    fields=in_order(excl_answers),
                    methods=tuple(METHOD_INDEX[m] for m in excl.methods),
                    text=excl.text,
                    source=excl.source,
                )
            )
        self.exclusions = tuple(exclusions)
        self.choices: dict[int, tuple[Choice, ...]] = {
            METHOD_INDEX[method]: tuple(
                Choice(c.impl, compile_condition(c.when)[0], c.text, c.source) for c in choices
            )
            for method, choices in kb.implementations.items()
        }
        impl_caveats = kb.stages.implementation_caveats
        self.caveats = tuple(
            Attached(
                c.id,
                compile_condition(c.when)[0],
                frozenset(METHOD_INDEX[m] for m in c.methods),
                c.text,
                c.source,
                _template_names(c.text),
                frozenset(impl_caveats[c.id]) if c.id in impl_caveats else None,
            )
            for c in kb.caveats
        )
        self.warnings = tuple(
            Attached(
                w.id,
                compile_condition(w.when)[0],
                frozenset(),
                w.text,
                w.source,
                _template_names(w.text),
            )
            for w in kb.warnings
        )
        self.patterns = tuple(
            PatternRule(
                p.id,
                p.name,
                frozenset(METHOD_INDEX[m] for m in p.methods),
                compile_condition(p.when)[0],
                p.how,
                p.source,
            )
            for p in kb.stages.patterns
        )
        self.speaks = {iface: METHOD_INDEX[m] for iface, m in kb.stages.speaks.items()}
        self.adapters = tuple(
            AdapterRule(frozenset(a.interface), compile_condition(a.when)[0], a.text, a.source)
            for a in kb.stages.adapters
        )
        self.labels = {m: kb.methods[m].label for m in METHODS}
        # (rule id, method, implementation) -> that implementation's own (text, source).
        self.impl_texts: dict[tuple[str, int, str | None], tuple[str, str]] = {
            (rule_id, METHOD_INDEX[method], impl): (fact.text, fact.source)
            for rule_id, per_method in kb.stages.implementation_texts.items()
            for method, per_impl in per_method.items()
            for impl, fact in per_impl.items()
        }
        # Per answer: the rules and exclusions that read it, and the numbers its
        # conditions and ramps compare it with (the edges of its bands).
        self.rules_reading = {
            f: tuple(r for r in self.rules if f in r.answers) for f in UseCase.model_fields
        }
        self.exclusions_reading = {
            f: tuple(e for e in self.exclusions if f in e.answers) for f in UseCase.model_fields
        }
        for warning in kb.warnings:
            bounds_of(warning.when, bounds)
        self.bounds: dict[str, tuple[Edge, ...]] = {f: tuple(sorted(b)) for f, b in bounds.items()}
        # Per answer, the most its rules can move each method (for "what would change").
        self.reach: dict[str, list[float]] = {}
        for f, reading in self.rules_reading.items():
            reach = [0.0] * N
            for reader in reading:
                for effect in reader.effects:
                    reach[effect.method] += abs(effect.weight)
            self.reach[f] = reach
        read = {n for r in kb.rules for n in compile_condition(r.when)[1]} | {
            n for e in kb.exclusions for n in compile_condition(e.when)[1]
        }
        self.derived_inputs = frozenset(
            f for name, inputs in DERIVED.items() if name in read for f in inputs
        )
        # Per method, the per-message limits of its common implementations, smallest first.
        self.limits: dict[int, tuple[tuple[int, str, str], ...]] = {
            METHOD_INDEX[m]: tuple(
                sorted(
                    (lim.max_message_bytes, lim.name, lim.source) for lim in kb.methods[m].limits
                )
            )
            for m in METHODS
            if kb.methods[m].limits
        }


COMPILED = Compiled(KNOWLEDGE)


# --------------------------------------------------------------------------
# Scoring.


def as_float(number: float) -> float:
    # The document bounds integers below only; one too large for a float is infinite here.
    try:
        return float(number)
    except OverflowError:
        return math.inf


def with_derived(values: Values) -> Values:
    values["wan"] = values["peers"] != "internal"
    bandwidth = values["rate_per_second"] * as_float(values["message_bytes"]) * 8
    values["bandwidth_bps"] = bandwidth
    values["bandwidth_gbps"] = round(bandwidth / 1e9, 1)
    file_bytes = values["file_bytes"]
    file_ms = None if file_bytes is None else round(as_float(file_bytes) * 8 / 1e10 * 1000, 1)
    values["file_min_ms_10g"] = file_ms
    latency = values["latency_ms"]
    values["file_exceeds_budget"] = (
        file_ms is not None and latency is not None and file_ms > latency
    )
    return values


@dataclass
class State:
    """One scoring of a set of answers."""

    values: Values
    raw: list[float]
    factors: list[float]  # per rule: the fraction of its weights it added (0: no match)
    excluded_by: list[int]  # per method: how many constraints rule it out
    excl_matched: list[bool]
    speaker: int | None  # the method that speaks the fixed interface, if any


def evaluate(values: Values, c: Compiled = COMPILED) -> State:
    raw = [0.0] * N
    for effect in c.fit[values["interaction"]]:
        raw[effect.method] += effect.weight
    factors = [0.0] * len(c.rules)
    for rule in c.rules:
        f = rule.factor(values)
        if f:
            factors[rule.index] = f
            for effect in rule.effects:
                raw[effect.method] += effect.weight * f
    excluded_by = [0] * N
    excl_matched = [False] * len(c.exclusions)
    for excl in c.exclusions:
        if excl.pred(values):
            excl_matched[excl.index] = True
            for m in excl.methods:
                excluded_by[m] += 1
    return State(
        values, raw, factors, excluded_by, excl_matched, c.speaks.get(values["existing_interface"])
    )


# Points equal to this many decimals are a tie (broken by METHODS order), whatever
# order the weights were added in.
TIE_DIGITS = 9


def rank_key(raw: list[float], excluded_by: list[int], speaker: int | None) -> Callable[[int], Any]:
    """Feasible methods first (then those ruled out by the fewest constraints); among
    them the one that speaks the fixed interface; then by score; ties keep METHODS
    order, so equal answers rank alike."""

    def key(m: int) -> tuple[int, bool, float, int]:
        return (excluded_by[m], m != speaker, -round(raw[m], TIE_DIGITS), m)

    return key


def order(raw: list[float], excluded_by: list[int], speaker: int | None) -> list[int]:
    return sorted(range(N), key=rank_key(raw, excluded_by, speaker))


def winner(raw: list[float], excluded_by: list[int], speaker: int | None) -> int:
    """``order(...)[0]``, without sorting (what "what would change" asks most)."""
    if speaker is not None and not excluded_by[speaker]:
        return speaker
    best, best_raw = -1, -math.inf
    for m in range(N):
        if not excluded_by[m]:
            points = round(raw[m], TIE_DIGITS)
            if points > best_raw:
                best, best_raw = m, points
    if best >= 0:
        return best
    return min(range(N), key=rank_key(raw, excluded_by, speaker))


def partial(
    values: Values, rules: tuple[Rule, ...], exclusions: tuple[Exclusion, ...]
) -> tuple[list[float], list[int]]:
    """What the given rules add to each method, and how often the given exclusions rule
    each out, for these answers."""
    raw = [0.0] * N
    for rule in rules:
        f = rule.factor(values)
        if f:
            for effect in rule.effects:
                raw[effect.method] += effect.weight * f
    excluded = [0] * N
    for excl in exclusions:
        if excl.pred(values):
            for m in excl.methods:
                excluded[m] += 1
    return raw, excluded
