"""Read paths of probe runs, used by the pages, the API, the share page and the MADR.

Someone else's run, or a run on someone else's decision, is simply not found:
the callers answer 404, never 403, so ids do not tell what exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from advisor.models import Decision
from advisor.recommendation import points_text_of
from probes.models import ACTIVE, ProbeJob, ProbeRun, Status, VantagePoint


def run_get_for_user(*, user: User | AnonymousUser, run_id: int) -> ProbeRun | None:
    if not user.is_authenticated:
        return None
    return (
        ProbeRun.objects.select_related("decision")
        .filter(pk=run_id, owner_id=user.pk, decision__owner_id=user.pk)
        .first()
    )


def runs_for_decision(*, decision: Decision) -> QuerySet[ProbeRun]:
    """Every run on the decision, newest first: the history a rerun adds to."""
    return ProbeRun.objects.filter(decision=decision).prefetch_related("jobs")


def runs_ended_for_decision(*, decision: Decision) -> QuerySet[ProbeRun]:
    return runs_for_decision(decision=decision).filter(status__in=(Status.DONE, Status.FAILED))


def vantage_point_list() -> list[VantagePoint]:
    return list(VantagePoint.objects.all())


def jobs_of(run: ProbeRun) -> list[ProbeJob]:
    return list(run.jobs.select_related("outcome").order_by("vantage_point", "position"))


def job_result(job: ProbeJob) -> dict[str, Any] | None:
    """The section 4 object for the job plus its vantage point, once it has ended.

    A job that gave up measured nothing; it still gets an object, so every
    target of an ended run has one, saying why in ``error``.
    """
    outcome = getattr(job, "outcome", None)
    if job.status == Status.DONE and outcome is not None:
        result = dict(outcome.data)
        result["target"] = job.url  # the masked URL, whatever the instrument wrote
    elif job.status == Status.FAILED:
        result = {
            "kind": job.scheme,
            "target": job.url,
            "address": None,
            "ok": False,
            "samples": 0,
            "succeeded": 0,
            "loss": 1.0,
            "latency_ms": None,
            "jitter_ms": None,
            "phases_ms": dict.fromkeys(("dns", "connect", "tls", "ttfb", "transfer")),
            "throughput_bps": None,
            "details": {"gave_up": True},
            "error": job.reason or "the job gave up",
        }
    else:
        return None
    result["vantage_point"] = job.vantage_point
    result["method"] = job.method
    if outcome is not None and outcome.failure:
        result.setdefault("failure", outcome.failure)
    return result


@dataclass
class JobView:
    """One row of the run's progress and results table."""

    job: ProbeJob
    result: dict[str, Any] | None
    state: str
    text: str

    @property
    def tls(self) -> dict[str, Any]:
        from probes.evidence import tls_facts

        return tls_facts((self.result or {}).get("details"))


@dataclass
class RunView:
    run: ProbeRun
    jobs: list[JobView]
    targets_total: int
    targets_ended: int
    samples_total: int
    samples_done: int
    vantage_points: list[str]
    by_vantage_point: list[tuple[str, list[JobView]]] = field(default_factory=list)

    @property
    def percent(self) -> int:
        if not self.samples_total:
            return 100
        return min(100, round(100 * self.samples_done / self.samples_total))

    @property
    def summary(self) -> str:
        return (
            f"{self.targets_ended} of {self.targets_total} targets, "
            f"{self.samples_done} of {self.samples_total} samples"
        )


def _job_text(job: ProbeJob, result: dict[str, Any] | None, count: int) -> tuple[str, str]:
    if job.status == Status.QUEUED:
        waiting = "waiting for a worker" if job.attempts == 0 else "waiting for a worker again"
        return "queued", waiting
    if job.status == Status.RUNNING:
        return "running", f"{job.samples_done} of {count} samples"
    if job.status == Status.FAILED:
        return "failed", f"gave up: {job.reason}"
    if result and result.get("ok"):
        return "ok", "answered"
    error = (result or {}).get("error") or "no answer"
    return "error", str(error)


def run_view(run: ProbeRun) -> RunView:
    """Progress and results of a run, as the page and the fragment show them."""
    jobs = jobs_of(run)
    rows = []
    for job in jobs:
        result = job_result(job)
        state, text = _job_text(job, result, run.count)
        rows.append(JobView(job=job, result=result, state=state, text=text))
    points = list(run.vantage_points) or sorted({j.vantage_point for j in jobs})
    by_point = [(p, [r for r in rows if r.job.vantage_point == p]) for p in points]
    return RunView(
        run=run,
        jobs=rows,
        targets_total=len(jobs),
        targets_ended=sum(1 for j in jobs if j.status not in ACTIVE),
        samples_total=len(jobs) * run.count,
        samples_done=sum(
            run.count if j.status == Status.DONE else min(j.samples_done, run.count) for j in jobs
        ),
        vantage_points=points,
        by_vantage_point=by_point,
    )


def run_results(run: ProbeRun, jobs: Sequence[ProbeJob] | None = None) -> list[dict[str, Any]]:
    """The section 4 objects of the run's ended jobs, in target order per vantage point."""
    found = (job_result(job) for job in (jobs if jobs is not None else jobs_of(run)))
    return [r for r in found if r is not None]


def run_api_json(run: ProbeRun) -> dict[str, Any]:
    """``GET /api/probe-runs/ID``: status, results, evidence and (once ended) advice."""
    view = run_view(run)
    return {
        "id": run.pk,
        "status": run.status,
        "recommendation": run.decision_id,
        "vantage_points": view.vantage_points,
        "count": run.count,
        "interval": run.interval_ms,
        "timeout": run.timeout_s,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "progress": {
            "targets": view.targets_total,
            "targets_done": view.targets_ended,
            "samples": view.samples_total,
            "samples_done": view.samples_done,
        },
        "results": run_results(run, [row.job for row in view.jobs]),
        "evidence": list(run.evidence) if run.ended else [],
        "advice": run.advice if run.ended else None,
        "reason": run.reason or None,
    }


def advice_compare(
    before: dict[str, Any] | None, after: dict[str, Any] | None, top: int = 5
) -> list[dict[str, Any]]:
    """The first ``top`` places before and after the evidence, side by side."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    first = [m for m in before.get("ranking") or [] if isinstance(m, dict)][:top]
    second = [m for m in after.get("ranking") or [] if isinstance(m, dict)][:top]
    rows = []
    for rank, (old, new) in enumerate(zip(first, second, strict=False), start=1):
        rows.append(
            {
                "rank": rank,
                "before_label": old.get("label") or old.get("method"),
                "before_points": points_text_of(old),
                "after_label": new.get("label") or new.get("method"),
                "after_points": points_text_of(new),
                "changed": old.get("method") != new.get("method")
                or old.get("score") != new.get("score")
                or old.get("points") != new.get("points")
                or bool(old.get("excluded")) != bool(new.get("excluded")),
            }
        )
    return rows


def new_warnings(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """Warnings the advice has with the evidence and had not without it."""
    if not isinstance(after, dict):
        return []
    old = set(before.get("warnings") or []) if isinstance(before, dict) else set()
    return [str(w) for w in after.get("warnings") or [] if w not in old]


def run_context(run: ProbeRun) -> dict[str, Any]:
    """What the run templates need: progress, results, charts and the comparison."""
    view = run_view(run)
    charts = [
        {**chart, "script_id": f"fig-run-{run.pk}-{chart.get('id')}"}
        for chart in (run.charts or [])
        if isinstance(chart, dict)
    ]
    return {
        "run": run,
        "decision": run.decision,
        "view": view,
        "charts": charts,
        "compare": advice_compare(run.decision.result, run.advice) if run.ended else [],
        "advice_warnings": new_warnings(run.decision.result, run.advice) if run.ended else [],
    }
