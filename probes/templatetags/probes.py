"""Template tags that put probe runs into pages owned by the advice app.

``{% probe_panel %}`` on the decision page and ``{% probe_evidence %}`` on the
share page read the ``decision`` (and ``request``) already in the page's
context, so the advice views need not know about probes.
"""

from __future__ import annotations

from typing import Any

from django import template

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


@register.filter
def percent(value: Any) -> str:
    """A share (0..1) as a percentage: 0.125 -> "12.5%"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    text = f"{number * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
