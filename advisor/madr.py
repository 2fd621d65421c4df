"""A decision as a Markdown Architectural Decision Record (MADR 4 layout).

Pure: built only from what the decision stored (the use case, the frozen
engine result and the knowledge-base version), so an exported record says
exactly what the share page says, whatever the engine says today.
"""

from __future__ import annotations

import html
import re
from typing import Any

from advisor import vocabulary
from advisor.models import Decision
from advisor.presenting import distinct_flips
from advisor.recommendation import MethodResult, Reason, Recommendation
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


# CommonMark's inline syntax (backslash, code spans, emphasis, links and images by
# their brackets, closing heading marks) plus GFM's tables and strikethrough. A
# backslash makes any of them a literal character. "<", ">" and "&" become entities
# instead: literal in every Markdown renderer, also those that pass raw HTML through
# and know no backslash escape for "<".
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")
# GFM turns bare "https://..." and "www...." into links; an escape breaks the pattern.
_BARE_URL = re.compile(r"(?<=[A-Za-z0-9]):(?=//)")
_BARE_WWW = re.compile(r"\b([Ww][Ww][Ww])\.")


def markdown_text(text: Any) -> str:
    """Any text as literal Markdown on one line: it renders as the characters typed.

    Records end up rendered by wikis and static-site generators, many of which pass
    raw HTML through; a shared decision's title or notes must not become a link, an
    image, a code span or HTML there. The raw record stays readable: only the
    characters that could start markup get a backslash.
    """
    line = html.escape(_line(text), quote=False)
    line = _MARKDOWN_SPECIAL.sub(r"\\\1", line)
    line = _BARE_URL.sub(r"\\:", line)
    return _BARE_WWW.sub(r"\1\\.", line)


def _user_text(text: Any) -> str:
    """What a visitor typed (title, notes, probe targets): literal text in the record."""
    return markdown_text(text)


def _clause(text: Any) -> str:
    """Stored text continuing a sentence: "because a queue ...", but "because RFC ..."."""
    line = _line(text)
    word = line.split(" ", 1)[0]
    # "A queue", "Queues": an ordinary capitalised first word; "RFC", "X.509": as is.
    if word[:1].isupper() and (len(word) == 1 or word[1:].islower()) and word != "I":
        return line[0].lower() + line[1:]
    return line


def _label(item: MethodResult) -> str:
    label = item.label or item.method or "?"
    implementation = item.implementation_label or item.implementation
    return f"{label} ({implementation})" if implementation else label


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


def _cite(reason: Reason) -> str:
    title = _line(reason.source.title or reason.source.id)
    if not title:
        return ""
    url = reason.source.url
    return f" [{title}]({url})" if url.startswith("http") else f" [{title}]"


def _because(kind: str, reason: Reason) -> str:
    answer = f" ({_line(reason.answer)})" if reason.answer else ""
    return f"* {kind}, because {_clause(reason.text)}{answer}{_cite(reason)}"


def _pros_cons(item: MethodResult) -> list[str]:
    lines = [f"* Bad, because it is ruled out: {_clause(text)}" for text in item.exclusions]
    lines += [_because("Good", r) for r in item.reasons_for]
    lines += [_because("Bad", r) for r in item.reasons_against]
    lines += [
        f"* Neutral, but mind: {_line(caveat)}"
        for caveat in item.caveats
        if caveat not in item.exclusions
    ]
    if not lines:
        lines.append("* Neutral, because no answer spoke for or against it")
    return lines


def _sources(ranking: list[MethodResult]) -> list[str]:
    seen: dict[str, str] = {}
    for item in ranking:
        for reason in [*item.reasons_for, *item.reasons_against]:
            title = reason.source.title or reason.source.id
            if title and title not in seen:
                seen[title] = reason.source.url
        if item.pattern is not None:
            seen.setdefault(item.pattern.source.title, item.pattern.source.url)
    return [
        f"* [{_line(t)}]({u})" if u.startswith("http") else f"* {_line(t)}" for t, u in seen.items()
    ]


def decision_to_madr(decision: Decision) -> str:
    usecase: dict[str, Any] = decision.usecase if isinstance(decision.usecase, dict) else {}
    recommendation = Recommendation.from_stored(decision.result)
    ranking = recommendation.ranking if recommendation else []
    warnings = recommendation.warnings if recommendation else []
    flips = distinct_flips(recommendation) if recommendation else []
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
    if recommendation and recommendation.conflicts:
        out += ["", "Answers that conflict: " + ", ".join(recommendation.conflicts) + "."]

    out += ["", "## Considered Options", ""]
    for item in ranking:
        out.append(f"* {_label(item)}: {item.standing}")

    out += ["", "## Decision Outcome", ""]
    if winner is None or recommendation is None:
        out.append("No option was ranked.")
    else:
        out.append(f'Chosen option: "{_label(winner)}", because')
        out.append("")
        out += [f"* {_line(r)}" for r in winner.reasons]
        if winner.implementation_reason:
            out.append(f"* Implementation: {_line(winner.implementation_reason)}")
        if winner.pattern is not None:
            pattern = winner.pattern
            out.append(
                f"* Pattern: {_line(pattern.name)}: {_line(pattern.how)}"
                + (f" [{_line(pattern.source.title)}]" if pattern.source.title else "")
            )
        confidence = recommendation.confidence
        out += ["", f"Confidence: {_line(confidence.label)}. {_line(confidence.text)}"]
        out += ["", "### Consequences", ""]
        goods = [f"* Good, because {_clause(r.text)}" for r in winner.reasons_for]
        bads = [f"* Bad, because {_clause(c)}" for c in winner.caveats]
        bads += [f"* Bad, because {_clause(r.text)}" for r in winner.reasons_against]
        out += goods + bads or ["* Neutral, because no consequence was recorded"]
        if flips:
            out += ["", "### What would change this decision", ""]
            out += [f"* {_line(f.text)}" for f in flips]
        if recommendation.evidence:
            out += ["", "### Measurements weighed", ""]
            out += [
                f"* {_line(note.text)} (source: {_user_text(note.target)} from "
                f"{_user_text(note.vantage_point)}, {note.measured_at:%Y-%m-%d %H:%M} UTC)"
                for note in recommendation.evidence
            ]

    out += ["", "## Pros and Cons of the Options", ""]
    for item in ranking:
        standing = item.standing
        out += [f"### {_label(item)}", "", standing[:1].upper() + standing[1:] + ".", ""]
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
