"""Plotly figures of a probe run, built once when the run ends and stored with it.

Three charts, each a plotly figure (``{"data": [...], "layout": {...}}``) the page
embeds for ``static/js/charts.js``: the latency distribution per target (box),
the median phases of HTTP-like targets as a waterfall (stacked horizontal
bars), and every sample over time (scatter). Only the trace types of the
site's plotly bundle are used (bar, box, violin, scatter, heatmap). Every
number drawn is also in the run's tables, so nothing is lost without JavaScript.

The figures are written as plain plotly JSON rather than through
``plotly.graph_objects``: measured on a worker ending a run of 6 targets on the
2-core machine, ``go.Figure`` validation took 30 ms idle and 150-670 ms under
load, against well under 1 ms for the dicts; the run's end is on the critical
path of every run. The tests validate every figure with plotly's own
``go.Figure``, so a property plotly does not know fails there.

Targets measured from several vantage points appear once per vantage point,
named "target · vantage point", side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from probes.models import ProbeJob, Status

_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}
# The phases in the order they happen; colours of 3:1 or more against white.
PHASE_COLOURS = {
    "dns": "#6a51a3",
    "connect": "#1f5fae",
    "tls": "#0f7b6c",
    "ttfb": "#b35806",
    "transfer": "#8c2d04",
}
HTTP_LIKE = frozenset(
    {"http", "https", "ws", "wss", "graphql+http", "graphql+https", "soap+http", "soap+https"}
)
ALLOWED_TRACES = frozenset({"bar", "box", "violin", "scatter", "heatmap"})


def job_name(job: ProbeJob, several_vantage_points: bool) -> str:
    return f"{job.url} · {job.vantage_point}" if several_vantage_points else job.url


def _figure(data: list[dict[str, Any]], **layout: Any) -> dict[str, Any]:
    return {"data": data, "layout": {"font": _FONT, **layout}}


def _measured(jobs: Sequence[ProbeJob]) -> list[tuple[ProbeJob, dict[str, Any], list[Any]]]:
    rows = []
    for job in jobs:
        outcome = getattr(job, "outcome", None)
        if job.status == Status.DONE and outcome is not None:
            series = outcome.series if isinstance(outcome.series, list) else []
            rows.append((job, outcome.data, series))
    return rows


def _answered(series: list[Any]) -> list[float]:
    return [float(point[1]) for point in series if point[1] is not None]


def latency_figure(jobs: Sequence[ProbeJob], several: bool) -> dict[str, Any] | None:
    """One box per target: the spread of its answered samples' round trips."""
    traces = [
        {
            "type": "box",
            "x": _answered(series),
            "name": job_name(job, several),
            "boxpoints": "outliers",
            "orientation": "h",
            "hovertemplate": "%{x:.3f} ms<extra>%{fullData.name}</extra>",
        }
        for job, _result, series in _measured(jobs)
        if _answered(series)
    ]
    if not traces:
        return None
    return _figure(
        traces,
        height=90 + 46 * len(traces),
        margin={"l": 10, "r": 20, "t": 10, "b": 45},
        xaxis={"title": {"text": "round trip (ms)"}, "rangemode": "tozero"},
        yaxis={"automargin": True, "autorange": "reversed"},
        showlegend=False,
    )


def phases_figure(jobs: Sequence[ProbeJob], several: bool) -> dict[str, Any] | None:
    """The median phases of each HTTP-like target, one after the other (a waterfall)."""
    rows = [
        (job, result)
        for job, result, _series in _measured(jobs)
        if job.scheme in HTTP_LIKE and result.get("ok")
    ]
    if not rows:
        return None
    names = [job_name(job, several) for job, _ in rows]
    traces = []
    for phase, colour in PHASE_COLOURS.items():
        values = []
        for _job, result in rows:
            raw = result.get("phases_ms")
            value = raw.get(phase) if isinstance(raw, dict) else None
            values.append(float(value) if isinstance(value, int | float) else 0.0)
        if any(values):
            traces.append(
                {
                    "type": "bar",
                    "x": values,
                    "y": names,
                    "name": phase,
                    "orientation": "h",
                    "marker": {"color": colour},
                    "hovertemplate": f"{phase} %{{x:.3f}} ms<extra>%{{y}}</extra>",
                }
            )
    if not traces:
        return None
    return _figure(
        traces,
        barmode="stack",
        height=130 + 40 * len(rows),
        margin={"l": 10, "r": 20, "t": 40, "b": 45},
        xaxis={"title": {"text": "median time (ms), phase after phase"}},
        yaxis={"automargin": True, "autorange": "reversed"},
        # Above the bars: below, it would sit on the axis title.
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "traceorder": "normal"},
    )


def samples_figure(jobs: Sequence[ProbeJob], several: bool) -> dict[str, Any] | None:
    """Every sample's round trip against when it was taken; gaps where none answered."""
    traces = [
        {
            "type": "scatter",
            "x": [point[0] for point in series],
            "y": [point[1] for point in series],
            "mode": "lines+markers",
            "name": job_name(job, several),
            "connectgaps": False,
            "hovertemplate": "%{y:.3f} ms at %{x:.2f} s<extra>%{fullData.name}</extra>",
        }
        for job, _result, series in _measured(jobs)
        if _answered(series)  # no answer at all: nothing to draw (the table says why)
    ]
    if not traces:
        return None
    return _figure(
        traces,
        height=340,
        margin={"l": 60, "r": 20, "t": 10, "b": 45},
        xaxis={"title": {"text": "seconds since the target's first sample"}},
        yaxis={"title": {"text": "round trip (ms)"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.25},
    )


def run_charts(jobs: Sequence[ProbeJob]) -> list[dict[str, Any]]:
    """The run's charts, in page order, each ``{"id", "title", "caption", "figure"}``."""
    several = len({job.vantage_point for job in jobs}) > 1
    charts = [
        (
            "latency",
            "Latency distribution per target",
            "Box: the middle half of the answered samples, the line is the median (p50).",
            latency_figure(jobs, several),
        ),
        (
            "phases",
            "Where the time goes (HTTP-like targets)",
            "Median DNS, connect, TLS, first byte and transfer, one after the other.",
            phases_figure(jobs, several),
        ),
        (
            "samples",
            "Samples over time",
            "Each sample's round trip when it was taken; gaps are samples without an answer.",
            samples_figure(jobs, several),
        ),
    ]
    return [
        {"id": key, "title": title, "caption": caption, "figure": figure}
        for key, title, caption, figure in charts
        if figure is not None
    ]


def trace_types(charts: Sequence[dict[str, Any]]) -> set[str]:
    """Every plotly trace type the charts use (the site's bundle has only some)."""
    return {
        str(trace.get("type"))
        for chart in charts
        for trace in (chart.get("figure") or {}).get("data", [])
    }
