"""What the recommendation templates need, from the typed recommendation. Pure.

The views call these: :func:`page_context` for a stored decision (the owner's
page and the share page), :func:`preview_context` for the live top three.
A stored result is validated into a :class:`~advisor.recommendation.Recommendation`
once, here, and everything below reads the typed model.
"""

from __future__ import annotations

from typing import Any

from advisor import engine, plots
from advisor.knowledge import KNOWLEDGE
from advisor.recommendation import Flip, Recommendation
from advisor.usecase import UseCase

# The runners-up shown open under the winner (the top three, as the questionnaire's preview).
ALTERNATIVES = 2


def distinct_flips(recommendation: Recommendation) -> list[Flip]:
    """Each change to one answer listed once, whichever method it was found for."""
    seen: set[tuple[str, str, str]] = set()
    flips = []
    for flip in recommendation.what_would_change:
        key = (flip.field, repr(flip.value), flip.winner)
        if key not in seen:
            seen.add(key)
            flips.append(flip)
    return flips


def best_suited_for(method: str) -> str:
    known = KNOWLEDGE.methods.get(method)
    return known.best_suited_for if known else ""


def page_context(result: Any, figures: Any = None) -> dict[str, Any]:
    """The context of ``advisor/_recommendation.html`` for a stored result.

    ``figures`` are the charts stored with the decision when it was made
    (``{"ranking": ..., "contributions": ...}``); they are used as they are. Only
    a decision stored before charts were kept with it (``None``) has them built
    here, from its ranking.
    """
    recommendation = Recommendation.from_stored(result)
    if recommendation is None:
        return {
            "recommendation": None,
            "ranking": [],
            "winner": None,
            "warnings": [],
            "flips": [],
            "alternatives": [],
            "others": [],
            "ruled_out": [],
            "contributions": {"methods": [], "fields": [], "labels": [], "z": []},
            "contribution_rows": [],
            "contribution_figure": None,
            "ranking_figure": None,
            "evidence": [],
        }
    flips = distinct_flips(recommendation)
    # Each method's "why not" ends with the single changes that would put it first.
    wins_if: dict[str, list[str]] = {}
    for flip in flips:
        wins_if.setdefault(flip.winner, []).append(flip.text)
    ranking = recommendation.ranking
    rows: list[dict[str, Any]] = [
        {"item": item, "wins_if": wins_if.get(item.method, [])} for item in ranking
    ]
    feasible = [row for row in rows[1:] if not row["item"].excluded]
    contributions = plots.field_contributions(ranking)
    if isinstance(figures, dict):
        ranking_figure = figures.get("ranking")
        contribution_figure = figures.get("contributions")
    else:
        ranking_figure, contribution_figure = plots.figures(ranking)
    return {
        "recommendation": recommendation,
        "ranking": ranking,
        "winner": recommendation.first,
        "confidence": recommendation.confidence,
        "conflicts": recommendation.conflicts,
        "warnings": recommendation.warnings,
        "flips": flips,
        "evidence": recommendation.evidence,
        # Each reason appears once: the winner's above, then the close alternatives
        # open, then the other feasible methods and the ruled-out ones folded.
        "alternatives": feasible[:ALTERNATIVES],
        "others": feasible[ALTERNATIVES:],
        "ruled_out": [row for row in rows[1:] if row["item"].excluded],
        "contributions": contributions,
        "contribution_rows": [
            {"field": field, "label": label, "values": values}
            for field, label, values in zip(
                contributions["fields"], contributions["labels"], contributions["z"], strict=True
            )
        ],
        "contribution_figure": contribution_figure,
        "ranking_figure": ranking_figure,
    }


def preview_context(usecase: UseCase) -> dict[str, Any]:
    """The live top three for answers that form a valid use case."""
    # The preview runs on every keystroke (debounced): no "what would change" search,
    # which only the full page shows.
    recommendation = engine.recommend(usecase, explain_changes=False)
    top = [
        {"item": item, "best_suited_for": best_suited_for(item.method)}
        for item in recommendation.ranking[:3]
    ]
    return {
        "top": top,
        "confidence": recommendation.confidence,
        "warnings": recommendation.warnings,
        "errors": {},
    }
