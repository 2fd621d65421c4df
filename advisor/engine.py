"""The recommendation engine: UseCase -> Recommendation. Pure: no ORM, no I/O.

It decides in the order the architecture guides do (``docs/knowledge.md``,
"How the engine decides"), on the knowledge base compiled by
:mod:`advisor.scoring`:

1. feasibility: hard constraints (who can reach whom, what crosses the path,
   what a datagram can carry) rule methods out with their reason; only feasible
   methods compete;
2. a fixed interface: the feasible method that speaks what the other side
   already speaks goes first; when none can, a warning says what adapter it takes;
3. fit: the interaction's row and the matching rules weigh what is left, some
   through smooth bands (ramps) whose edges are sourced limits;
4. the implementation and the pattern from the guides, each by its own facts;
5. the confidence, from the margin to the runner-up, and what would change the
   answer (:mod:`advisor.whatif`: the thresholds themselves).

The contract's ``score`` is a logistic squash of the points, ``1 / (1 + e^(-points/4))``:
an absolute scale, so a rule that adds to a method never lowers its score. People
are shown the points themselves (for minus against) and the confidence, which reads
the margin in points, never the squashed scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from advisor import evidence_rules, vocabulary, whatif
from advisor.evidence import Measurement
from advisor.knowledge import KB_VERSION, KNOWLEDGE, METHODS
from advisor.recommendation import (
    CONFIDENCE_LABELS,
    Confidence,
    Flip,
    MethodResult,
    Reason,
    Recommendation,
    SourceRef,
)
from advisor.scoring import (
    COMPILED,
    METHOD_INDEX,
    Attached,
    Compiled,
    N,
    State,
    evaluate,
    order,
    with_derived,
)
from advisor.usecase import UseCase

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
CLEAR_MARGIN = 3.0  # points: more than a real preference (rules.yaml's weights)
LIKELY_MARGIN = 1.0


def method_label(method: str) -> str:
    return COMPILED.labels.get(method, method)


_SOURCES = {
    sid: (("id", sid), ("title", src.title), ("url", src.url), ("checked", str(src.checked)))
    for sid, src in KNOWLEDGE.sources.items()
}


def _source(sid: str) -> dict[str, Any]:
    return dict(_SOURCES[sid])


def _titled(text: str, sid: str | None) -> str:
    return text if sid is None else f"{text} [{KNOWLEDGE.sources[sid].title}]"


def _readable(value: Any) -> str:
    """A number inside a sentence: thousands separators, never 1.44e+07."""
    if value is None or isinstance(value, bool | str):
        return "none" if value is None else str(value)
    if isinstance(value, float) and math.isinf(value):
        return "more than 10^300"
    if isinstance(value, int) and value >= 10**15:
        return f"about 10^{int(value.bit_length() * math.log10(2))}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _shown(name: str, value: Any) -> str:
    """A value inside a warning's sentence, in the user's units."""
    if name == "file_min_ms_10g" and value is not None:
        return vocabulary.format_duration(value)
    if name in vocabulary.FIELDS:
        words = vocabulary.FIELDS[name]
        text = vocabulary.value_text(name, value)
        # "run by a partner organisation", not "run by A partner organisation"
        return text[:1].lower() + text[1:] if words.kind == "choice" else text
    return _readable(value)


def _fill(item: Attached, values: dict[str, Any]) -> str:
    text = item.template
    if item.names:
        text = text.format_map({name: _shown(name, values[name]) for name in item.names})
    return _titled(text, item.source)


def _answer(fields: tuple[str, ...], values: dict[str, Any]) -> str:
    return "; ".join(vocabulary.answer_text(name, values[name]) for name in fields)


def _reason(
    text: str, fields: tuple[str, ...], answer: str, weight: float, sid: str, rule: str
) -> dict[str, Any]:
    return {
        "text": text,
        "fields": list(fields),
        "answer": answer,
        "weight": weight,
        "source": _source(sid),
        "rule": rule,
    }


def _reasons(
    state: State,
    c: Compiled,
    weighed: evidence_rules.EvidenceOutcome,
    impls: list[str | None],
) -> list[list[dict[str, Any]]]:
    """Per method, every answer that counted for or against it, with its weight, in the
    words of the implementation named where it has its own."""
    own = c.impl_texts
    values = state.values
    rows: list[list[dict[str, Any]]] = [[] for _ in range(N)]
    interaction = ("interaction",)
    answer = _answer(interaction, values)
    fit_id = f"fit.{values['interaction']}"
    for effect in c.fit[values["interaction"]]:
        if effect.weight:
            text, sid = own.get(
                (fit_id, effect.method, impls[effect.method]), (effect.text, effect.source)
            )
            rows[effect.method].append(
                _reason(text, interaction, answer, effect.weight, sid, fit_id)
            )
    for rule in c.rules:
        factor = state.factors[rule.index]
        if not factor:
            continue
        answer = _answer(rule.fields, values)
        for effect in rule.effects:
            weight = round(effect.weight * factor, 2)
            if weight:  # a band's edge adds next to nothing: no reason to show
                text, sid = own.get(
                    (rule.rule_id, effect.method, impls[effect.method]),
                    (effect.text, effect.source),
                )
                rows[effect.method].append(
                    _reason(text, rule.fields, answer, weight, sid, rule.rule_id)
                )
    for ev in weighed.reasons:
        rows[METHOD_INDEX[ev.method]].append(
            _reason(ev.text, (), "Measured", ev.weight, ev.source, ev.rule)
        )
    for row in rows:
        row.sort(key=_by_weight)
    return rows


def _by_weight(reason: dict[str, Any]) -> float:
    return -abs(reason["weight"])


def _implementation(m: int, values: dict[str, Any], c: Compiled) -> tuple[str | None, str | None]:
    for choice in c.choices.get(m, ()):
        if choice.pred(values):
            return choice.impl, _titled(choice.text, choice.source)
    return None, None


def _pattern(m: int, values: dict[str, Any], c: Compiled) -> dict[str, Any] | None:
    for rule in c.patterns:
        if m in rule.methods and rule.pred(values):
            return {
                "id": rule.pattern_id,
                "name": rule.name,
                "how": rule.how.replace("{label}", c.labels[METHODS[m]]),
                "source": _source(rule.source),
            }
    return None


def _method_results(
    state: State,
    ranked: list[int],
    c: Compiled,
    weighed: evidence_rules.EvidenceOutcome,
) -> list[dict[str, Any]]:
    values = state.values
    chosen = [_implementation(m, values, c) for m in range(N)]
    reasons = _reasons(state, c, weighed, [impl for impl, _ in chosen])
    exclusions: list[list[str]] = [[] for _ in range(N)]
    for excl in c.exclusions:
        if state.excl_matched[excl.index]:
            line = f"{_answer(excl.fields, values)}: {_titled(excl.text, excl.source)}"
            for m in excl.methods:
                exclusions[m].append(line)
    for method, entries in weighed.ruled_out.items():
        exclusions[METHOD_INDEX[method]].extend(text for _, text in entries)
    matched_caveats = [cav for cav in c.caveats if cav.pred(values)]
    size = values["message_bytes"]
    feasible_scores = [1.0 / (1.0 + math.exp(-state.raw[m] / SCORE_SCALE)) for m in range(N)]
    best_other = max(
        (feasible_scores[m] for m in range(N) if m != state.speaker and not state.excluded_by[m]),
        default=0.0,
    )
    results = []
    for m in ranked:
        implementation, implementation_reason = chosen[m]
        caveats = list(exclusions[m])
        for cav in matched_caveats:
            if m in cav.methods and (
                cav.implementations is None or implementation in cav.implementations
            ):
                caveats.append(_fill(cav, values))
        caveats.extend(weighed.caveats.get(METHODS[m], ()))
        exceeded = [limit for limit in c.limits.get(m, ()) if size > limit[0]]
        if exceeded:
            caveats.append(
                f"{vocabulary.format_bytes(size)} messages exceed the limit of "
                + ", ".join(
                    f"{name} ({vocabulary.format_exact_bytes(limit)})"
                    for limit, name, _ in exceeded
                )
                + " ["
                + "; ".join(dict.fromkeys(KNOWLEDGE.sources[sid].title for _, _, sid in exceeded))
                + "]"
            )
        excluded = state.excluded_by[m] > 0
        score = 0.0 if excluded else feasible_scores[m]
        if m == state.speaker and not excluded:
            # It ranks first because the other side speaks it: never below the next.
            score = max(score, best_other)
        pros = [r for r in reasons[m] if r["weight"] > 0]
        cons = [r for r in reasons[m] if r["weight"] < 0]
        results.append(
            {
                "method": METHODS[m],
                "label": c.labels[METHODS[m]],
                "implementation": implementation,
                "implementation_label": c.kb.stages.implementation_labels.get(
                    implementation or "", implementation
                ),
                "implementation_reason": implementation_reason,
                "pattern": None if excluded else _pattern(m, values, c),
                "score": round(score, 3),
                "points": None if excluded else round(state.raw[m], 2),
                "feasible": not excluded,
                "excluded": excluded,
                "exclusions": exclusions[m],
                "reasons": [
                    f"{r['answer']}: {r['text']} [{r['source']['title']}]" for r in (*pros, *cons)
                ],
                "reasons_for": pros,
                "reasons_against": cons,
                "caveats": caveats,
            }
        )
    return results


def _lower_first(label: str) -> str:
    """A label inside a sentence: "A REST API" -> "a REST API"; "SOAP web services" stays."""
    if label[1:2].isupper():
        return label
    return label[:1].lower() + label[1:]


def _points(margin: float) -> str:
    return "1 point" if margin == 1 else f"{margin:g} points"


def _confidence(state: State, ranked: list[int], c: Compiled) -> dict[str, Any]:
    feasible = [m for m in ranked if not state.excluded_by[m]]
    first = ranked[0]
    level: Literal["clear", "likely", "close"]
    if not feasible:
        level, margin = "close", 0.0
        text = "Every method is ruled out by a hard constraint: see the answers that conflict."
    elif len(feasible) == 1:
        level, margin = "clear", 0.0
        text = "It is the only method that meets every hard constraint."
    else:
        second = feasible[1]
        margin = round(state.raw[first] - state.raw[second], 2)
        runner_up = c.labels[METHODS[second]]
        if first == state.speaker:
            level = "clear"
            interface = vocabulary.FIELDS["existing_interface"].choice_label(
                state.values["existing_interface"]
            )
            interface = _lower_first(interface)
            text = f"The other side already speaks it ({interface}) and that cannot change."
        elif margin >= CLEAR_MARGIN:
            level = "clear"
            text = f"{_points(margin)} ahead of the runner-up, {runner_up}."
        elif margin >= LIKELY_MARGIN:
            level = "likely"
            text = f"{_points(margin)} ahead of the runner-up, {runner_up}."
        elif margin == 0:
            level = "close"
            text = f"Tied on points with the runner-up, {runner_up}."
        else:
            level = "close"
            text = f"Only {_points(margin)} ahead of the runner-up, {runner_up}."
    return {"level": level, "label": CONFIDENCE_LABELS[level], "margin": margin, "text": text}


def _adapter_warnings(state: State, c: Compiled) -> list[str]:
    """When the method that speaks the fixed interface is ruled out: say so plainly."""
    speaker = state.speaker
    if speaker is None or not state.excluded_by[speaker]:
        return []
    values = state.values
    interface = values["existing_interface"]
    spoken = vocabulary.FIELDS["existing_interface"].choice_label(interface)
    spoken = _lower_first(spoken)
    out = []
    for adapter in c.adapters:
        if interface in adapter.interfaces and adapter.pred(values):
            out.append(
                f"The other side speaks {spoken} and cannot change, but "
                f"{c.labels[METHODS[speaker]]} is ruled out here: "
                + _titled(adapter.text, adapter.source)
            )
            break
    else:
        out.append(
            f"The other side speaks {spoken} and cannot change, but "
            f"{c.labels[METHODS[speaker]]} is ruled out here: no method can speak it "
            "directly; it takes an adapter in front of it."
        )
    return out


def _conflicts(state: State, c: Compiled) -> list[str]:
    """When no method meets every hard constraint: the answers behind them (and the
    fixed interface, whose method is then ruled out too). A fixed interface that
    cannot be spoken while other methods remain is no conflict: a warning names the
    adapter it takes, and the ranking says what to use on this side of it."""
    speaker = state.speaker
    if all(state.excluded_by):
        matched = [e for e in c.exclusions if state.excl_matched[e.index]]
        fields = {f for e in matched for f in e.fields}
        if speaker is not None:
            fields.add("existing_interface")
        return sorted(vocabulary.FIELDS[f].short for f in fields)
    return []


def _recommendation(
    usecase: UseCase, evidence: Iterable[Measurement], explain_changes: bool
) -> dict[str, Any]:
    """The recommendation as the contract's JSON object: fresh objects on every call."""
    c = COMPILED
    state = evaluate(with_derived(dict(usecase.__dict__)), c)
    weighed = evidence_rules.weigh(usecase, evidence, c.kb, c.labels)
    for ev in weighed.reasons:
        state.raw[METHOD_INDEX[ev.method]] += ev.weight
    for method in weighed.ruled_out:
        state.excluded_by[METHOD_INDEX[method]] += 1
    ranked = order(state.raw, state.excluded_by, state.speaker)
    values = state.values
    warnings = [_fill(w, values) for w in c.warnings if w.pred(values)]
    warnings += _adapter_warnings(state, c)
    warnings += weighed.warnings
    conflicts = _conflicts(state, c)
    nothing_feasible = all(state.excluded_by)
    if nothing_feasible:
        warnings.insert(
            0,
            "Every method is ruled out by a hard constraint: the answers contradict each other. "
            "The ranking puts the methods ruled out by the fewest constraints first.",
        )
    flips: list[dict[str, Any]] = []
    if explain_changes and not nothing_feasible:
        flips = whatif.flips(state, ranked[0], c.labels, c)
    return {
        "version": 1,
        "kb_version": KB_VERSION,
        "ranking": _method_results(state, ranked, c, weighed),
        "warnings": warnings,
        "what_would_change": flips,
        "confidence": _confidence(state, ranked, c),
        "conflicts": conflicts,
        "evidence": [note.model_dump(mode="json") for note in weighed.notes],
    }


def recommend(
    usecase: UseCase,
    *,
    evidence: Iterable[Measurement] = (),
    explain_changes: bool = True,
) -> Recommendation:
    """Rank all eleven methods for a use case, weighing any measurements of its servers.

    ``explain_changes`` adds the thresholds at which one answer would change the first pick.
    """
    return Recommendation.model_validate(_recommendation(usecase, evidence, explain_changes))


def recommend_json(
    usecase: UseCase,
    *,
    evidence: Iterable[Measurement] = (),
    explain_changes: bool = True,
) -> dict[str, Any]:
    """The ``advise --format json`` object of :func:`recommend` (equal to its
    ``contract_json()``), built without the typed model's validation."""
    return _recommendation(usecase, evidence, explain_changes)
