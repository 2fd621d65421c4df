"""Plotly figures for a recommendation, built from the typed ranking. Pure.

The figures are returned as plain JSON-ready dicts; the page embeds them in
``<script type="application/json">`` and ``static/js/charts.js`` draws them with
the vendored plotly.js. Every number drawn here is also in a table on the
page, so nothing is lost without JavaScript.
"""

from __future__ import annotations

import copy
import json
import math
import textwrap
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

from advisor import vocabulary
from advisor.recommendation import MethodResult

# How many of the best methods the contribution chart compares: enough to see
# why the winner won, few enough to stay readable on a phone.
TOP_N = 5

_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}
# Bars need 3:1 against the white page (WCAG 1.4.11), the winner's darker blue
# still telling it apart from the rest.
_WINNER = "#1f5fae"
_OTHER = "#5b8fc9"
_EXCLUDED = "#b9bec6"


def _as_json(fig: go.Figure) -> dict[str, Any]:
    # Round trip through plotly's encoder so the result holds only JSON types.
    data: dict[str, Any] = json.loads(json.dumps(fig.to_plotly_json(), cls=PlotlyJSONEncoder))
    return data


def _name(item: MethodResult) -> str:
    return item.label or item.method


MEASURED = "(measured)"


def _field_label(field: str) -> str:
    if field == MEASURED:
        return "Measurements of your servers"
    known = vocabulary.FIELDS.get(field)
    return known.short if known else field


def field_contributions(ranking: list[MethodResult], top: int = TOP_N) -> dict[str, Any]:
    """Per method (of the ``top`` best), the summed weight of its reasons per answer.

    A reason that rests on several answers is split evenly between them, so each
    column adds up to the method's reasons; a measured reason counts under
    "(measured)". ``labels`` are the answers' short names, in the order of ``fields``.
    """
    methods = ranking[:top]
    per_method: list[dict[str, float]] = []
    fields: list[str] = []
    for item in methods:
        sums: dict[str, float] = {}
        for reason in [*item.reasons_for, *item.reasons_against]:
            names = reason.fields or [MEASURED]
            share = reason.weight / len(names) if math.isfinite(reason.weight) else 0.0
            for name in names:
                sums[name] = sums.get(name, 0.0) + share
                if name not in fields:
                    fields.append(name)
        per_method.append(sums)
    return {
        "methods": [_name(item) for item in methods],
        "fields": fields,
        "labels": [_field_label(f) for f in fields],
        "z": [[round(sums.get(f, 0.0), 3) for sums in per_method] for f in fields],
    }


def _wrapped(label: str, width: int = 22) -> str:
    return "<br>".join(textwrap.wrap(label, width)) or label


def contribution_figure(ranking: list[MethodResult]) -> dict[str, Any] | None:
    """Heatmap: rows are answers, columns the best methods, colour the points given."""
    table = field_contributions(ranking)
    if not table["fields"]:
        return None
    z = table["z"]
    peak = max((abs(v) for row in z for v in row), default=1.0) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=table["methods"],
            # Long answer labels wrap, so the cells keep room for their numbers.
            y=[_wrapped(label) for label in table["labels"]],
            zmid=0,
            zmin=-peak,
            zmax=peak,
            colorscale="RdBu",
            # static/js/charts.js draws the cells and writes their points as the
            # tables do ("+3.5", "-1"; blank where an answer did not count).
            texttemplate="%{z:+.1f}",
            hovertemplate="%{y} → %{x}: %{z:+.2f}<extra></extra>",
            colorbar={"title": {"text": "points"}, "thickness": 12},
        )
    )
    fig.update_layout(
        template="none",
        font=_FONT,
        # Rows of about 30 px plus room for the slanted method names below them.
        height=max(260, 48 + 36 * len(table["fields"])) + 90,
        margin={"l": 150, "r": 10, "t": 10, "b": 40},
        # Every answer labelled: plotly otherwise drops category labels it thinks
        # crowd each other, and a row without its answer means nothing.
        yaxis={"autorange": "reversed", "automargin": True, "dtick": 1},
        xaxis={"side": "bottom", "automargin": True},
    )
    return _as_json(fig)


def ranking_figure(ranking: list[MethodResult]) -> dict[str, Any] | None:
    """Horizontal bars of every method's points, best at the top, ruled-out ones grey.

    Points are what the page's tables show (for minus against); a result stored
    before points were kept draws its 0..1 scores instead, as its table shows them.
    """
    items = list(ranking)
    if not items:
        return None
    colours = [
        _EXCLUDED if item.excluded else (_WINNER if i == 0 else _OTHER)
        for i, item in enumerate(items)
    ]
    legacy = all(item.points is None for item in items)
    values = [
        0.0 if item.excluded else (item.score if legacy else (item.points or 0.0)) for item in items
    ]
    values = [v if math.isfinite(v) else 0.0 for v in values]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[_name(item) for item in items],
            orientation="h",
            marker={"color": colours},
            text=[item.points_text for item in items],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    # Room beyond the longest bar on either side for its label, so a label never
    # runs into the method names.
    low, high = min(0.0, *values), max(0.0, *values)
    pad = 0.18 * (high - low) + 0.5
    axis: dict[str, Any] = (
        {"range": [0, 1.05], "title": {"text": "score (0 to 1)"}}
        if legacy
        else {
            "range": [low - pad if low < 0 else 0, high + pad],
            "title": {"text": "points: for minus against"},
            "zeroline": True,
        }
    )
    fig.update_layout(
        template="none",
        font=_FONT,
        height=60 + 28 * len(items),
        margin={"l": 130, "r": 60, "t": 10, "b": 40},
        xaxis={**axis, "fixedrange": True},
        yaxis={"autorange": "reversed", "automargin": True, "fixedrange": True},
        showlegend=False,
    )
    return _as_json(fig)


def figures(ranking: list[MethodResult]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(ranking figure, contribution figure) for a stored ranking, memoised by content.

    A stored result never changes, and plotly's figure validation costs several
    milliseconds, so each process builds a shared page's figures once. The key is
    the ranking itself, so an edited result gets new figures; each caller gets its
    own copy, so nothing it does reaches the memo.
    """
    key = json.dumps([item.model_dump(mode="json") for item in ranking], sort_keys=True)
    ranked, contributions = _figures(key)
    return copy.deepcopy(ranked), copy.deepcopy(contributions)


@lru_cache(maxsize=256)
def _figures(key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    ranking = [MethodResult.model_validate(item) for item in json.loads(key)]
    return ranking_figure(ranking), contribution_figure(ranking)
