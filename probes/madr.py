"""The probe runs of a decision as a Markdown section for its decision record (MADR).

Appended to ``advisor.madr.decision_to_madr`` by the share page's export: for
each ended run, what was measured from where and when, what the evidence
changed, and the advice before and after it. Target URLs are what a person
typed: they are shown masked, in code spans, with anything that could break
the Markdown layout or pass as HTML removed.
"""

from __future__ import annotations

from typing import Any

from advisor.madr import markdown_text
from advisor.models import Decision
from probes import selectors


def _code(value: Any) -> str:
    # A code span cannot hold its own delimiter: backticks become quotes.
    return "`" + " ".join(str(value).split()).replace("`", "'").replace("|", "\\|") + "`"


def _ms(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "–"


def _label(item: dict[str, Any]) -> str:
    return markdown_text(item.get("label") or item.get("method") or "?")


def evidence_markdown(decision: Decision, limit: int = 5) -> str:
    """The "Evidence" section; "" when no run on the decision has ended."""
    runs = list(selectors.runs_ended_for_decision(decision=decision)[:limit])
    if not runs:
        return ""
    out = [
        "",
        "## Evidence from probe runs",
        "",
        "The decision above is as it was made. Probe runs measured the candidates on the "
        "servers since; each says what its measurements changed.",
    ]
    for run in runs:
        when = f"{run.finished_at:%Y-%m-%d %H:%M} UTC" if run.finished_at else "unknown time"
        points = ", ".join(markdown_text(p) for p in run.vantage_points)
        out += ["", f"### Run {run.pk}: {when}, from {points}", ""]
        out += [
            "| Target | For | From | Result | p50 ms | p95 ms | p99 ms | loss |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for result in selectors.run_results(run):
            raw = result.get("latency_ms")
            latency = raw if isinstance(raw, dict) else {}
            outcome = (
                "answered"
                if result.get("ok")
                else markdown_text(result.get("error") or "no answer")
            )
            loss = result.get("loss")
            loss_text = f"{loss * 100:.1f}%" if isinstance(loss, int | float) else "–"
            out.append(
                f"| {_code(result.get('target', ''))} | {_code(result.get('method', ''))} "
                f"| {markdown_text(result.get('vantage_point', ''))} | {outcome} "
                f"| {_ms(latency.get('p50'))} | {_ms(latency.get('p95'))} "
                f"| {_ms(latency.get('p99'))} | {loss_text} |"
            )
        out += ["", "What the evidence changed:", ""]
        notes = [n for n in run.evidence or [] if isinstance(n, dict)]
        if notes:
            out += [
                f"* {markdown_text(n.get('text', ''))} (measured at {_code(n.get('target', ''))} "
                f"from {markdown_text(n.get('vantage_point', ''))})"
                for n in notes
            ]
        else:
            out.append("* Nothing: the advice is the same with these measurements as without them.")
        compare = selectors.advice_compare(decision.result, run.advice)
        if compare:
            out += [
                "",
                "| # | Before | points | With the evidence | points |",
                "|---|---|---|---|---|",
            ]
            for row in compare:
                # A ruled-out method says so in its points column ("ruled out").
                out.append(
                    f"| {row['rank']} | {markdown_text(row['before_label'])} "
                    f"| {row['before_points']} "
                    f"| {markdown_text(row['after_label'])} | {row['after_points']} |"
                )
        warnings = selectors.new_warnings(decision.result, run.advice)
        if warnings:
            out += ["", "Warnings with the evidence:", ""]
            out += [f"* {markdown_text(w)}" for w in warnings]
    return "\n".join(out) + "\n"
