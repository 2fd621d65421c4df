"""The plain-text recommendation report printed by ``manage.py advise``. Pure."""

from __future__ import annotations

import textwrap
from typing import Any

WIDTH = 100


def _wrap(text: str, indent: str, hanging: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=hanging if hanging is not None else indent + "  ",
        break_on_hyphens=False,
    )


def text_report(result: dict[str, Any], title: str = "") -> str:
    """Render the advise JSON object as a readable report."""
    ranking: list[dict[str, Any]] = result["ranking"]
    lines: list[str] = []
    heading = "Switchboard recommendation" + (f": {title}" if title else "")
    lines += [heading, "=" * min(len(heading), WIDTH), ""]
    best = ranking[0]
    impl = f", implemented with {best['implementation']}" if best["implementation"] else ""
    lines.append(f"Recommended: {best['label']} ({best['method']}){impl}")
    if best.get("implementation_reason"):
        lines += _wrap(best["implementation_reason"], "  ")
    lines.append("")

    warnings: list[str] = result["warnings"]
    if warnings:
        lines.append("Warnings")
        for warning in warnings:
            lines += _wrap(warning, "  ! ", "    ")
        lines.append("")

    lines.append("Ranking")
    lines.append(f"  {'#':>2}  {'method':<14} {'implementation':<15} {'score':>6}  note")
    for position, row in enumerate(ranking, start=1):
        note = "ruled out" if row["excluded"] else ""
        score = "-" if row["excluded"] else f"{row['score']:.3f}"
        lines.append(
            f"  {position:>2}  {row['method']:<14} {row['implementation'] or '-':<15} "
            f"{score:>6}  {note}".rstrip()
        )
    lines.append("")

    lines.append("Why, method by method (+ pushed it up, - pushed it down)")
    for position, row in enumerate(ranking, start=1):
        lines.append(f"  {position}. {row['label']} ({row['method']})")
        for reason in row["reasons"]:
            lines += _wrap(reason, "     ", "       ")
        for caveat in row["caveats"]:
            lines += _wrap("caveat: " + caveat, "     ", "       ")
    lines.append("")

    flips: list[dict[str, Any]] = result.get("what_would_change", [])
    lines.append("What would change the answer")
    # The winner's list holds every change that puts another method first, the
    # runner-up's included; grouped by the method that would then win.
    first = ranking[0]["method"]
    labels = {row["method"]: row["label"] for row in ranking}
    by_winner: dict[str, list[str]] = {}
    for flip in flips:
        if flip["for_method"] == first:
            by_winner.setdefault(flip["winner"], []).append(flip["change"])
    if by_winner:
        for winner, changes in by_winner.items():
            lines += _wrap(
                f"{labels[winner]} would rank first if " + "; or if ".join(changes) + ".",
                "  - ",
                "    ",
            )
    else:
        lines.append(
            f"  No single answer changes the top two: {ranking[0]['label']} leads on several "
            "answers at once."
        )
    lines.append("")
    lines.append(f"Knowledge base {result.get('kb_version', '')}")
    return "\n".join(lines) + "\n"
