"""The plain-text recommendation report printed by ``manage.py advise``. Pure."""

from __future__ import annotations

import textwrap

from advisor.recommendation import Reason, Recommendation

WIDTH = 100


def _wrap(text: str, indent: str, hanging: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=hanging if hanging is not None else indent + "  ",
        break_on_hyphens=False,
    )


def _reason(reason: Reason) -> str:
    source = f" [{reason.source.title}]" if reason.source.title else ""
    answer = f"{reason.answer}: " if reason.answer else ""
    return f"{answer}{reason.text}{source}"


def text_report(recommendation: Recommendation, title: str = "") -> str:
    """Render a recommendation as a readable report."""
    ranking = recommendation.ranking
    lines: list[str] = []
    heading = "Switchboard recommendation" + (f": {title}" if title else "")
    lines += [heading, "=" * min(len(heading), WIDTH), ""]
    best = ranking[0]
    impl = best.implementation_label or best.implementation
    lines.append(f"Recommended: {best.label} ({best.method})" + (f", with {impl}" if impl else ""))
    confidence = recommendation.confidence
    lines += _wrap(f"{confidence.label}. {confidence.text}", "  ")
    if best.implementation_reason:
        lines += _wrap(best.implementation_reason, "  ")
    if best.pattern is not None:
        lines += _wrap(
            f"Pattern: {best.pattern.name}. {best.pattern.how} [{best.pattern.source.title}]",
            "  ",
        )
    lines.append("")

    if recommendation.conflicts:
        lines += _wrap("Answers that conflict: " + ", ".join(recommendation.conflicts), "  ! ")
        lines.append("")
    if recommendation.warnings:
        lines.append("Warnings")
        for warning in recommendation.warnings:
            lines += _wrap(warning, "  ! ", "    ")
        lines.append("")

    lines.append("Ranking")
    lines.append(f"  {'#':>2}  {'method':<14} {'implementation':<15} {'points':>9}  note")
    for position, row in enumerate(ranking, start=1):
        note = "ruled out" if row.excluded else ""
        score = "-" if row.excluded else row.points_text
        lines.append(
            f"  {position:>2}  {row.method:<14} {row.implementation or '-':<15} "
            f"{score:>9}  {note}".rstrip()
        )
    lines.append("")

    lines.append("Why, method by method")
    for position, row in enumerate(ranking, start=1):
        lines.append(f"  {position}. {row.label} ({row.method})")
        for text in row.exclusions:
            lines += _wrap("ruled out: " + text, "     x ", "       ")
        for reason in row.reasons_for:
            lines += _wrap(_reason(reason), "     + ", "       ")
        for reason in row.reasons_against:
            lines += _wrap(_reason(reason), "     - ", "       ")
        for caveat in row.caveats:
            if caveat not in row.exclusions:
                lines += _wrap("mind: " + caveat, "     ! ", "       ")
    lines.append("")

    if recommendation.evidence:
        lines.append("Measurements weighed")
        for measured in recommendation.evidence:
            lines += _wrap(f"{measured.text} [{measured.source}]", "  - ", "    ")
        lines.append("")

    lines.append("What would change the answer")
    if recommendation.what_would_change:
        seen: set[str] = set()
        for flip in recommendation.what_would_change:
            if flip.text not in seen:
                seen.add(flip.text)
                lines += _wrap(flip.text, "  - ", "    ")
    else:
        lines.append(
            f"  No single answer you could change would change the first pick: {best.label} "
            "leads on several answers at once."
        )
    lines.append("")
    lines.append(f"Knowledge base {recommendation.kb_version}")
    return "\n".join(lines) + "\n"
