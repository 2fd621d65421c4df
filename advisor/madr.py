"""A decision as a Markdown Architectural Decision Record (MADR 4 layout).

Pure: built only from what the decision stored (the use case, the frozen
engine result and the knowledge-base version), so an exported record says
exactly what the share page says, whatever the engine says today.
"""

from __future__ import annotations

import html
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from advisor import vocabulary
from advisor.models import Decision
from advisor.usecase import UseCase

_DEFAULTS: dict[str, Any] = {
    name: info.default for name, info in UseCase.model_fields.items() if not info.is_required()
}


def _line(text: Any) -> str:
    """One line of user or stored text: no newlines that would break the Markdown layout."""
    return " ".join(str(text).split())


def answer_text(field: str, value: Any) -> str:
    """An answer as a person reads it: labels for choices, yes/no, sizes and rates in units."""
    if field not in vocabulary.FIELDS:
        return _line(value)
    try:
        return vocabulary.value_text(field, value)
    except (TypeError, ValueError, OverflowError):
        return _line(value)  # a stored value the vocabulary cannot read: shown as stored


def _user_text(text: Any) -> str:
    """What a visitor typed (title, notes), as literal text in the record.

    Records end up rendered by wikis and static-site generators, many of which pass
    raw HTML through; a shared decision's title must not become markup there.
    """
    return html.escape(_line(text), quote=False)


def _clause(text: Any) -> str:
    """Stored text continuing a sentence: "because a queue ...", but "because RFC ..."."""
    line = _line(text)
    word = line.split(" ", 1)[0]
    # "A queue", "Queues": an ordinary capitalised first word; "RFC", "X.509": as is.
    if word[:1].isupper() and (len(word) == 1 or word[1:].islower()) and word != "I":
        return line[0].lower() + line[1:]
    return line


def _weight(factor: Any) -> float:
    """A factor's points; anything unreadable counts as none rather than breaking the export."""
    try:
        value = float(factor.get("weight", 0) or 0) if isinstance(factor, dict) else 0.0
    except (TypeError, ValueError):
        return 0.0
    return value if value == value else 0.0  # NaN counts as none too


def _label(item: dict[str, Any]) -> str:
    label = item.get("label") or item.get("method") or "?"
    implementation = item.get("implementation")
    return f"{label} ({implementation})" if implementation else str(label)


def _score(item: dict[str, Any]) -> str:
    # Rounded half up, as the page shows it (Django's floatformat), so both agree.
    try:
        score = Decimal(str(float(item.get("score", 0.0))))
    except (TypeError, ValueError, ArithmeticError):
        return "?"
    if not score.is_finite():
        return "?"
    return str(score.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _drivers(usecase: dict[str, Any]) -> list[str]:
    """The answers that shape the decision: the interaction and every non-default answer."""
    drivers = []
    for field, words in vocabulary.FIELDS.items():
        if field in {"title", "notes", "version"} or field not in usecase:
            continue
        value = usecase[field]
        if field != "interaction" and value == _DEFAULTS.get(field):
            continue
        drivers.append(f"{words.short}: {answer_text(field, value)} (`{field}`)")
    return drivers


def _pros_cons(item: dict[str, Any]) -> list[str]:
    lines = []
    for exclusion in item.get("exclusions") or []:
        lines.append(f"* Bad, because it is ruled out: {_clause(exclusion)}")
    factors = sorted(item.get("factors") or [], key=lambda f: -abs(_weight(f)))
    for factor in factors:
        weight = _weight(factor)
        kind = "Good" if weight > 0 else "Bad" if weight < 0 else "Neutral"
        source = factor.get("source_title") or factor.get("source") or ""
        cite = f" [{_line(source)}]" if source else ""
        lines.append(
            f"* {kind}, because {_clause(factor.get('text', ''))} "
            f"({_line(factor.get('answer', ''))}; {weight:+.2f}){cite}"
        )
    for caveat in item.get("caveats") or []:
        lines.append(f"* Neutral, but mind: {_line(caveat)}")
    if not lines:
        lines.append("* Neutral, because no answer spoke for or against it")
    return lines


def distinct_flips(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored "what would change" entries, each change listed once.

    The engine lists the changes that would put the runner-up first twice: once
    for the winner ("would rank first instead of") and once for the runner-up
    ("would overtake"). Both say the same thing, so a reader gets the first.
    """
    seen: set[tuple[str, str, str]] = set()
    flips = []
    for flip in result.get("what_would_change") or []:
        if not isinstance(flip, dict):
            continue
        key = (
            str(flip.get("field")),
            json.dumps(flip.get("value"), sort_keys=True, default=str),
            str(flip.get("winner")),
        )
        if key not in seen:
            seen.add(key)
            flips.append(flip)
    return flips


def _sources(ranking: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, str] = {}
    for item in ranking:
        for factor in item.get("factors") or []:
            title = factor.get("source_title") or factor.get("source")
            if title and title not in seen:
                seen[title] = factor.get("source_url") or ""
    return [f"* [{_line(t)}]({u})" if u else f"* {_line(t)}" for t, u in seen.items()]


def decision_to_madr(decision: Decision) -> str:
    usecase: dict[str, Any] = decision.usecase if isinstance(decision.usecase, dict) else {}
    result: dict[str, Any] = decision.result if isinstance(decision.result, dict) else {}
    ranking: list[dict[str, Any]] = [r for r in result.get("ranking") or [] if isinstance(r, dict)]
    warnings = [str(w) for w in result.get("warnings") or []]
    flips = distinct_flips(result)
    title = _user_text(decision.title or usecase.get("title") or "") or "How the two servers talk"
    winner = ranking[0] if ranking else None

    out: list[str] = [
        "---",
        # A recommendation is a proposal until the team accepts it.
        "status: proposed",
        f"date: {decision.created_at:%Y-%m-%d}",
        "decision-makers: (your team)",
        f"switchboard-knowledge-base: {_line(decision.kb_version) or 'unknown'}",
        "---",
        "",
        f"# {title}",
        "",
        "## Context and Problem Statement",
        "",
    ]
    interaction = usecase.get("interaction")
    out.append(
        "Two servers need to communicate. The pattern is: "
        f"{answer_text('interaction', interaction)}. Which communication method should they use?"
    )
    if usecase.get("notes"):
        out += ["", f"Notes: {_user_text(usecase['notes'])}"]
    out += ["", "## Decision Drivers", ""]
    out += [f"* {d}" for d in _drivers(usecase)]
    if warnings:
        out += ["", "Warnings raised by these answers:", ""]
        out += [f"* {_line(w)}" for w in warnings]

    out += ["", "## Considered Options", ""]
    for item in ranking:
        suffix = " (ruled out)" if item.get("excluded") else ""
        out.append(f"* {_label(item)}: score {_score(item)}{suffix}")

    out += ["", "## Decision Outcome", ""]
    if winner is None:
        out.append("No option was ranked.")
    else:
        out.append(f'Chosen option: "{_label(winner)}", because')
        out.append("")
        out += [f"* {_line(r)}" for r in winner.get("reasons") or []]
        if winner.get("implementation_reason"):
            out.append(f"* Implementation: {_line(winner['implementation_reason'])}")
        out += ["", "### Consequences", ""]
        goods = [
            f"* Good, because {_clause(f.get('text', ''))}"
            for f in winner.get("factors") or []
            if _weight(f) > 0
        ]
        bads = [f"* Bad, because {_clause(c)}" for c in winner.get("caveats") or []]
        bads += [
            f"* Bad, because {_clause(f.get('text', ''))}"
            for f in winner.get("factors") or []
            if _weight(f) < 0
        ]
        out += goods + bads or ["* Neutral, because no consequence was recorded"]
        if flips:
            out += ["", "### What would change this decision", ""]
            out += [f"* {_line(f.get('text', ''))}" for f in flips]

    out += ["", "## Pros and Cons of the Options", ""]
    for item in ranking:
        out += [f"### {_label(item)}", "", f"Score {_score(item)}.", ""]
        out += _pros_cons(item)
        out.append("")

    out += ["## More Information", ""]
    out.append(
        "Generated by Switchboard from the answers above; the ranking was frozen when the "
        f"recommendation was made (knowledge base {_line(decision.kb_version) or 'unknown'})."
    )
    sources = _sources(ranking)
    if sources:
        out += ["", "Sources:", "", *sources]
    return "\n".join(out).rstrip() + "\n"
