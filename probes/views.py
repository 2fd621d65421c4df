"""Pages of probe runs: the "test your servers" panel, a run's page and its progress.

Everything works without JavaScript: the panel posts to its own page, and a
run's page shows the same state on a reload as htmx shows by polling
``/runs/ID/progress`` every second; that fragment answers 286
(``HttpResponseStopPolling``) once the run has ended, which stops the polling.
Only the owner of a decision sees its panel and runs; anyone else gets a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from advisor import ratelimit
from advisor import selectors as advisor_selectors
from advisor.models import Decision
from probes import forms, selectors, services
from probes.models import ProbeRun
from probes.targets import top_methods


def _decision_or_404(request: HttpRequest, decision_id: int) -> Decision:
    decision = advisor_selectors.decision_get_for_user(user=request.user, decision_id=decision_id)
    if decision is None:
        raise Http404("no such decision")
    return decision


def _default_points(points: list[Any]) -> list[str]:
    default = services.default_vantage_point()
    live = [p.name for p in points if p.live]
    if default in live or not live:
        return [default]
    return live[:1]


def panel_context(
    request: HttpRequest, decision: Decision, plan: forms.Plan | None = None
) -> dict[str, Any]:
    points = selectors.vantage_point_list()
    if plan is None:
        plan = forms.plan_initial(default_points=_default_points(points))
    return {
        "decision": decision,
        "plan": plan,
        "points": points,
        "runs": list(selectors.runs_for_decision(decision=decision)[:10]),
        "top": top_methods(decision.ranking),
    }


def _rerun_plan(run: ProbeRun) -> forms.Plan:
    """The targets and settings of an earlier run; passwords must be typed again."""
    jobs = {job.position: job for job in run.jobs.all()}
    rows = [
        forms.Row(url=job.url, method=job.method, label=job.method)
        for _position, job in sorted(jobs.items())
    ]
    return forms.Plan(
        rows=rows,
        vantage_points=list(run.vantage_points),
        count=str(run.count),
        interval=f"{run.interval_ms:g}",
        timeout=f"{run.timeout_s:g}",
        throughput=run.throughput,
        insecure=run.insecure,
        message=f"The targets of run {run.pk}. A password is never kept: type it again "
        "where the URL shows ****."
        if any("****" in row.url for row in rows)
        else "",
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def probe_plan(request: HttpRequest, decision_id: int) -> HttpResponse:
    """The panel: GET shows it (``?rerun=ID`` prefills an earlier run), POST acts on it."""
    decision = _decision_or_404(request, decision_id)
    htmx = bool(getattr(request, "htmx", False))
    if request.method != "POST":
        plan = None
        rerun = request.GET.get("rerun", "")
        if rerun.isdigit():
            earlier = selectors.run_get_for_user(user=request.user, run_id=int(rerun))
            if earlier is not None and earlier.decision_id == decision.pk:
                plan = _rerun_plan(earlier)
        return render(request, "probes/plan.html", panel_context(request, decision, plan))

    ranking = decision.ranking
    plan = forms.plan_from_post(request.POST, ranking=ranking)
    action = forms.apply_action(plan, request.POST, ranking=ranking)
    status = 200
    retry_after: int | None = None
    if action == "run":
        if not plan.rows:
            plan.errors["targets"] = "give at least one target"
        else:
            try:
                run = services.run_create(
                    user=request.user,  # type: ignore[arg-type]  # login_required
                    decision=decision,
                    **forms.run_arguments(plan),
                )
            except services.RunInvalid as exc:
                plan.errors.update(exc.errors)
            except ratelimit.RateLimited as exc:
                plan.errors["form"] = str(exc)
                status = 429
                retry_after = exc.retry_after
            else:
                if htmx:
                    return HttpResponseClientRedirect(f"/runs/{run.pk}")
                return redirect("probe_run", run_id=run.pk)
        if status == 200:
            status = 400
    forms.keep_secrets(plan, ranking)
    context = panel_context(request, decision, plan)
    # htmx swaps only 2xx answers by default: the panel with its errors comes as 200.
    template = "probes/_panel.html" if htmx else "probes/plan.html"
    response = render(request, template, context, status=200 if htmx else status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _run_or_404(request: HttpRequest, run_id: int) -> ProbeRun:
    run = selectors.run_get_for_user(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such probe run")
    return run


@login_required
@require_safe
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    response = render(request, "probes/run.html", selectors.run_context(run))
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_safe
def run_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run's state as a fragment; 286 (stop polling) with the final state once ended."""
    run = _run_or_404(request, run_id)
    response = render(request, "probes/_run_status.html", selectors.run_context(run))
    if run.ended:
        final = HttpResponseStopPolling(response.content)
        final["Content-Type"] = response["Content-Type"]
        response = final
    response["Cache-Control"] = "private, no-store"
    return response
