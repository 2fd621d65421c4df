"""Template tags that put probe runs into pages owned by the advice app.

``{% probe_panel %}`` on the decision page and ``{% probe_evidence %}`` on the
share page read the ``decision`` (and ``request``) already in the page's
context, so the advice views need not know about probes.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html

from advisor.models import Decision
from probes import selectors

register = template.Library()


@register.inclusion_tag("probes/_decision_panel.html", takes_context=True)
def probe_panel(context: template.Context) -> dict[str, Any]:
    from probes.views import panel_context

    request = context.get("request")
    decision = context.get("decision")
    user = getattr(request, "user", None)
    owner = bool(
        isinstance(decision, Decision)
        and user is not None
        and user.is_authenticated
        and decision.owner_id == user.pk
    )
    data: dict[str, Any] = {"request": request, "decision": decision, "is_owner": owner}
    if owner and request is not None and isinstance(decision, Decision):
        data.update(panel_context(request, decision))
        data["csrf_token"] = context.get("csrf_token")
    return data


@register.inclusion_tag("probes/_share_evidence.html", takes_context=True)
def probe_evidence(context: template.Context) -> dict[str, Any]:
    decision = context.get("decision")
    runs = []
    if decision is not None:
        for run in selectors.runs_ended_for_decision(decision=decision)[:3]:
            runs.append(selectors.run_context(run))
    return {"decision": decision, "runs": runs}


@register.simple_tag
def figure_data(figure: Any, element_id: str) -> str:
    """A chart's figure as JSON in a hidden element, for ``static/js/charts.js``.

    Not ``json_script``: the run's final state arrives as an htmx swap, and htmx
    (configured without script tags, for the Content-Security-Policy) removes every
    ``<script>`` from swapped content, JSON ones included. charts.js reads the
    element's text either way.
    """
    return format_html(
        '<div hidden id="{}" class="figure-data">{}</div>', element_id, json.dumps(figure)
    )


EFFECT_WORDS = {
    "ruled_out": "Ruled out",
    "demoted": "Demoted",
    "promoted": "Promoted",
    "warning": "Warning",
    "caveat": "Caveat",
    "confirmed": "Confirmed",
}


@register.filter
def effect_words(effect: Any) -> str:
    """An evidence note's effect as a person reads it: "ruled_out" -> "Ruled out"."""
    return EFFECT_WORDS.get(str(effect), str(effect).replace("_", " ").capitalize())


@register.filter
def words(value: Any) -> str:
    """A machine word as words: "wrong_protocol" -> "wrong protocol"."""
    return str(value).replace("_", " ")


@register.simple_tag
def source_of(source_id: Any) -> dict[str, str] | None:
    """The knowledge base's source (title and URL) for an id, or None."""
    from advisor.knowledge import KNOWLEDGE

    source = KNOWLEDGE.sources.get(str(source_id)) if source_id else None
    return {"title": source.title, "url": str(source.url)} if source is not None else None


@register.filter
def percent(value: Any) -> str:
    """A share (0..1) as a percentage: 0.125 -> "12.5%"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    text = f"{number * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
