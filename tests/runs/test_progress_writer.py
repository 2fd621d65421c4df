"""A worker process's progress writer, in one process against a real HTTP target.

``probes.services.job_execute`` is what a worker runs: the probe's event loop in
the calling thread, progress (the job's heartbeat) written by one thread per
process with a connection it keeps. Rows are committed (``transaction=True``),
since the writer reads and writes them on a connection of its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from advisor import services as advisor_services
from advisor.usecase import parse_usecase
from probes import services
from probes.models import ProbeJob, ProbeJobResult, ProbeRun, Status
from tests.probes.servers_http import Server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    # The messages are not sent: this test plays the worker.
    monkeypatch.setattr(services, "_send", lambda messages: None)


def _run(http_target: Server, targets: int, **options: Any) -> ProbeRun:
    alice = User.objects.create_user("alice", password="a-long-test-password-1")
    usecase = parse_usecase({"interaction": "request_response"})
    decision, _ = advisor_services.decision_create(usecase=usecase, owner=alice)
    urls = [f"http://127.0.0.1:{http_target.port}/{i}" for i in range(targets)]
    return services.run_create(
        user=alice,
        decision=decision,
        targets=[services.TargetSpec(url=u) for u in urls],
        **options,
    )


def _writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "probe-progress" and t.is_alive()]


def test_jobs_write_progress_through_one_writer_and_mark_the_run_running(
    http_target: Server,
) -> None:
    run = _run(http_target, 2, count=8, interval_ms=100)
    for job in run.jobs.order_by("position"):
        assert services.job_execute(job_id=job.pk, worker="w") == "done"
        job.refresh_from_db()
        assert job.status == Status.DONE and job.samples_done == 8
        # The probe took about 0.8 s: the writer wrote its progress (the heartbeat)
        # at least once after the claim.
        assert job.heartbeat_at is not None and job.claimed_at is not None
        assert job.heartbeat_at > job.claimed_at
    run.refresh_from_db()
    assert run.status == Status.DONE
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    # Both jobs were served by one writer thread, which lives on for the next job.
    assert len(_writers()) == 1


def test_a_quick_job_still_moves_its_run_through_running(http_target: Server) -> None:
    run = _run(http_target, 1, count=1, interval_ms=10)
    job = run.jobs.get()
    assert services.job_execute(job_id=job.pk, worker="w") == "done"
    run.refresh_from_db()
    assert run.status == Status.DONE and run.started_at is not None


def test_a_claim_taken_back_is_cancelled_by_its_next_progress_write(
    http_target: Server,
) -> None:
    run = _run(http_target, 1, count=50, interval_ms=100)  # about 5 s of probing
    job = run.jobs.get()
    outcome: list[str] = []
    worker = threading.Thread(
        target=lambda: outcome.append(services.job_execute(job_id=job.pk, worker="lost"))
    )
    started = time.monotonic()
    worker.start()
    # The sweeper's move, once the job is running: back in the queue.
    deadline = time.monotonic() + 10
    while not ProbeJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
        assert time.monotonic() < deadline, "the job was never claimed"
        time.sleep(0.02)
    ProbeJob.objects.filter(pk=job.pk).update(status=Status.QUEUED, worker="")
    worker.join(timeout=10)
    assert outcome == ["taken back"]
    assert time.monotonic() - started < 3  # cancelled, not probed to its end
    assert not ProbeJobResult.objects.filter(job_id=job.pk).exists()
    assert ProbeJob.objects.get(pk=job.pk).status == Status.QUEUED
