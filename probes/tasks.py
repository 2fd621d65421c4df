"""Celery tasks of probe runs, and the worker's vantage-point heartbeat.

Tasks take only ids (JSON), have stable names, and call a service. The job
task is ``acks_late`` with ``reject_on_worker_lost``, so a message whose worker
process dies goes back to the queue; its time limits come with each message,
from the job's own bound (:func:`probes.services.time_limits`). Whatever the
broker does, the claim in :func:`probes.services.job_claim` makes a second
delivery a no-op, and the sweeper brings back jobs a lost worker held.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.db import connection

from probes import services

logger = logging.getLogger(__name__)

# The longest job a run may ask for, plus margins: the limit when a message
# carries none (a message sent by hand).
_MAX_BOUND_S = int(services.MAX_COUNT * (services.MAX_INTERVAL_MS / 1000 + services.MAX_TIMEOUT_S))


class ProbeJobTask(Task):
    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # Celery calls this in the worker's main process when the hard time limit
        # killed the pool process running the job: the job comes back at once.
        if not isinstance(exc, TimeLimitExceeded) or not args:
            return
        try:
            taken = services.job_killed(job_id=int(args[0]))
            logger.warning("job %s killed by its hard time limit: %s", args[0], taken or "-")
        except Exception:
            logger.warning("job %s: its hard time limit not handled", args[0], exc_info=True)
        finally:
            connection.close()


@shared_task(
    base=ProbeJobTask,
    name="probes.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=_MAX_BOUND_S + int(services.SOFT_MARGIN_S),
    time_limit=_MAX_BOUND_S + int(services.HARD_MARGIN_S),
)
def probe_job_run(job_id: int) -> str:
    """Measure one job's target, if this delivery claims it."""
    from celery import current_task

    worker = str(getattr(current_task.request, "hostname", "") or "")
    try:
        return services.job_execute(job_id=int(job_id), worker=worker)
    except SoftTimeLimitExceeded:
        # Raised outside the probe (the claim or the result's write took that
        # long); job_execute handles it during the probe, under its claim.
        services.job_overran(job_id=int(job_id))
        return "failed"


@shared_task(name="probes.sweep", ignore_result=True, soft_time_limit=60, time_limit=90)
def probes_sweep() -> dict[str, int]:
    """Requeue or fail jobs whose worker was lost; beat sends this every few seconds."""
    counts = services.jobs_sweep()
    if any(counts.values()):
        logger.info("sweep: %s", counts)
    return counts


class Heartbeat(threading.Thread):
    """Registers the worker's queues as vantage points, every ``PROBE_HEARTBEAT_S``.

    Runs in the worker's main process (not in the pool), so it beats while
    every pool process is busy probing.
    """

    def __init__(self, names: list[str], hostname: str) -> None:
        super().__init__(name="vantage-point-heartbeat", daemon=True)
        self.names = names
        self.hostname = hostname
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while True:
                try:
                    services.vantage_points_seen(names=self.names, hostname=self.hostname)
                except Exception:
                    logger.warning("vantage point heartbeat not written", exc_info=True)
                if self.stopping.wait(settings.PROBE_HEARTBEAT_S):
                    break
            services.vantage_points_stopped(names=self.names, hostname=self.hostname)
        except Exception:
            logger.warning("vantage point stop not written", exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


_heartbeat: Heartbeat | None = None


def vantage_point_names(queues: Any) -> list[str]:
    """The queues a worker consumes, less the sweep queue: its vantage points."""
    return sorted(str(name) for name in queues if str(name) != settings.PROBE_SWEEP_QUEUE)


def heartbeat_start(names: list[str], hostname: str) -> None:
    global _heartbeat
    if _heartbeat is None and names:
        _heartbeat = Heartbeat(names, hostname)
        _heartbeat.start()


def heartbeat_stop() -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


def preload() -> None:
    """Import every probe module and warm the engine up (a worker does it before forking)."""
    import importlib

    from advisor import engine
    from advisor.usecase import parse_usecase
    from probes.registry import REGISTRY

    started = time.perf_counter()
    engine.recommend_json(parse_usecase({"interaction": "request_response"}))

    for module in sorted({entry.module for entry in REGISTRY.values()}):
        try:
            importlib.import_module(module)
        except ImportError:
            logger.warning("probe module %s cannot be imported", module, exc_info=True)
    logger.info("probe modules and engine ready in %.0f ms", (time.perf_counter() - started) * 1000)
