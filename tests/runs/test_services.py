"""The run services in one process: bounds, the state machine, the claim's fence,
the sweeper, credentials at rest, and the per-user and per-destination limits.

Real database rows and real targets on 127.0.0.1; the broker is left out by
running the tests inside a transaction (``db``), so the ``on_commit`` sends are
captured, not sent, and each test plays the worker by calling the services.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from advisor import ratelimit
from advisor import services as advisor_services
from advisor.models import Decision
from advisor.usecase import parse_usecase
from probes import credentials, services
from probes.models import ProbeJob, ProbeJobResult, ProbeRun, Status, VantagePoint
from tests.probes.servers_http import Server

pytestmark = pytest.mark.django_db

LOOPBACK = "127.0.0.0/8"


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", LOOPBACK)
    cache.clear()


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="a-long-test-password-1")


@pytest.fixture
def decision(alice: User) -> Decision:
    usecase = parse_usecase({"interaction": "fire_and_forget", "receiver_may_be_offline": True})
    made, _token = advisor_services.decision_create(usecase=usecase, owner=alice)
    return made


def make_run(alice: User, decision: Decision, urls: list[str], **options: Any) -> ProbeRun:
    return services.run_create(
        user=alice,
        decision=decision,
        targets=[services.TargetSpec(url=u) for u in urls],
        **options,
    )


def invalid(alice: User, decision: Decision, urls: list[str], **options: Any) -> dict[str, str]:
    with pytest.raises(services.RunInvalid) as caught:
        make_run(alice, decision, urls, **options)
    return caught.value.errors


# --- bounds and validation -------------------------------------------------------------


def test_a_run_is_bounded_and_each_problem_names_its_field(alice: User, decision: Decision) -> None:
    tcp = "tcp://127.0.0.1:9"
    assert (
        "at most 20 targets"
        in invalid(alice, decision, [f"{tcp}{i}" for i in range(21)])["targets"]
    )
    assert "1 to 100" in invalid(alice, decision, [tcp], count=101)["count"]
    assert "whole number" in invalid(alice, decision, [tcp], count=2.5)["count"]
    assert "whole number" in invalid(alice, decision, [tcp], count=True)["count"]
    assert "10 s" in invalid(alice, decision, [tcp], timeout_s=10.5)["timeout"]
    assert "ms" in invalid(alice, decision, [tcp], interval_ms=5)["interval"]
    assert "number" in invalid(alice, decision, [tcp], timeout_s="soon")["timeout"]
    assert "at least one" in invalid(alice, decision, [])["targets"]
    errors = invalid(alice, decision, [tcp, "gopher://127.0.0.1/", tcp, "sftp://127.0.0.1/"])
    assert "unknown scheme 'gopher'" in errors["targets[1]"]
    assert errors["targets[2]"] == "repeats targets[0]"
    assert "user name" in errors["targets[3]"]  # the protocol's own check, before any packet
    # Nothing was stored for any of them.
    assert ProbeRun.objects.count() == 0 and ProbeJob.objects.count() == 0


def test_a_literal_address_the_guard_refuses_is_refused_before_queueing(
    alice: User, decision: Decision, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "")
    errors = invalid(alice, decision, ["tcp://127.0.0.1:9", "http://169.254.169.254/"])
    assert "loopback" in errors["targets[0]"]
    assert "metadata" in errors["targets[1]"]


def test_unknown_vantage_points_are_refused_and_the_default_needs_no_registration(
    alice: User, decision: Decision
) -> None:
    errors = invalid(alice, decision, ["tcp://127.0.0.1:9"], vantage_points=["eu-west"])
    assert "celery -A advisor worker -Q eu-west" in errors["vantage_points"]
    VantagePoint.objects.create(name="eu-west")
    run = make_run(alice, decision, ["tcp://127.0.0.1:9"], vantage_points=["eu-west", "probes"])
    assert sorted(run.jobs.values_list("vantage_point", flat=True)) == ["eu-west", "probes"]
    assert make_run(alice, decision, ["tcp://127.0.0.1:9"]).vantage_points == [
        services.default_vantage_point()
    ]


def test_a_run_has_one_job_per_target_and_vantage_point_each_with_its_method(
    alice: User, decision: Decision, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    VantagePoint.objects.create(name="dc2")
    with django_capture_on_commit_callbacks(execute=False) as sends:
        run = make_run(
            alice,
            decision,
            ["amqp://127.0.0.1:5672/", "grpc://127.0.0.1:50051", "https://127.0.0.1/"],
            vantage_points=["probes", "dc2"],
        )
    jobs = list(run.jobs.order_by("vantage_point", "position"))
    assert [(j.vantage_point, j.position) for j in jobs] == [
        ("dc2", 0),
        ("dc2", 1),
        ("dc2", 2),
        ("probes", 0),
        ("probes", 1),
        ("probes", 2),
    ]
    assert [(j.method, j.implementation) for j in jobs[:3]] == [
        ("message_queue", "amqp"),
        ("rpc", "grpc"),
        ("http", "webhook"),  # the decision ranks http (webhooks) above rest
    ]
    assert all(j.status == Status.QUEUED and j.attempts == 0 for j in jobs)
    # The messages go out once the rows are committed, not before.
    assert len(sends) == 1


# --- the state machine and the claim's fence -------------------------------------------


def test_a_second_delivery_claims_nothing(alice: User, decision: Decision) -> None:
    job = make_run(alice, decision, ["tcp://127.0.0.1:9"]).jobs.get()
    assert services.job_claim(job_id=job.pk, worker="w1") == 1
    assert services.job_claim(job_id=job.pk, worker="w2") is None
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == (Status.RUNNING, "w1", 1)
    assert ProbeRun.objects.get().status == Status.RUNNING


def test_the_last_job_ends_the_run_once_with_advice_and_charts(
    alice: User, decision: Decision
) -> None:
    run = make_run(alice, decision, ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"])
    first, second = run.jobs.order_by("position")
    result = _result("tcp://127.0.0.1:9", ok=True)
    for job in (first, second):
        attempt = services.job_claim(job_id=job.pk, worker="w")
        assert attempt is not None
        assert services.job_complete(job_id=job.pk, attempt=attempt, result=result, series=SERIES)
        run.refresh_from_db()
        assert run.ended is (job == second)
    assert run.status == Status.DONE and run.finished_at is not None
    assert run.advice is not None and len(run.advice["ranking"]) == 11
    assert [c["id"] for c in run.charts] == ["latency", "samples"]
    assert len(run.measurements) == 2 and run.measurements[0]["p95_ms"] == 1.5
    # A second end changes nothing.
    assert services.run_finish_if_complete(run_id=run.pk) is False


def test_a_claim_the_sweeper_took_back_cannot_write_its_result(
    alice: User, decision: Decision
) -> None:
    job = make_run(alice, decision, ["tcp://127.0.0.1:9"]).jobs.get()
    stale = services.job_claim(job_id=job.pk, worker="lost")
    assert stale == 1
    _silence(job, seconds=60)
    assert services.jobs_sweep()["requeued"] == 1
    job.refresh_from_db()
    assert (job.status, job.worker) == (Status.QUEUED, "")
    fresh = services.job_claim(job_id=job.pk, worker="new")
    assert fresh == 2
    # The lost worker comes back with its result: fenced out by the attempt number.
    result = _result("tcp://127.0.0.1:9", ok=True)
    assert not services.job_progress(job_id=job.pk, attempt=stale, samples_done=3)
    assert not services.job_complete(job_id=job.pk, attempt=stale, result=result, series=[])
    assert services.job_complete(job_id=job.pk, attempt=fresh, result=result, series=[])
    assert ProbeJobResult.objects.filter(job=job).get().attempt == fresh


def test_a_job_has_at_most_one_result(alice: User, decision: Decision) -> None:
    job = make_run(alice, decision, ["tcp://127.0.0.1:9"]).jobs.get()
    ProbeJobResult.objects.create(job=job, attempt=1, result={})
    with pytest.raises(IntegrityError), transaction.atomic():
        ProbeJobResult.objects.create(job=job, attempt=2, result={})


def test_the_sweeper_gives_up_after_the_last_attempt(alice: User, decision: Decision) -> None:
    run = make_run(alice, decision, ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"])
    first, second = run.jobs.order_by("position")
    for attempt in range(1, 4):
        assert services.job_claim(job_id=first.pk, worker=f"w{attempt}") == attempt
        _silence(first, seconds=60)
        services.jobs_sweep()
    first.refresh_from_db()
    assert first.status == Status.FAILED
    assert "gave up after 3 attempts" in first.reason
    claim = services.job_claim(job_id=second.pk, worker="w")
    assert claim is not None
    services.job_complete(
        job_id=second.pk, attempt=claim, result=_result("tcp://127.0.0.1:10"), series=[]
    )
    run.refresh_from_db()
    assert run.status == Status.DONE
    assert "1 of 2 jobs gave up" in run.reason


def test_a_run_whose_jobs_all_gave_up_fails(alice: User, decision: Decision) -> None:
    run = make_run(alice, decision, ["tcp://127.0.0.1:9"])
    job = run.jobs.get()
    assert services.job_fail(job_id=job.pk, reason="the vantage point has no worker")
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.finished_at is not None


@override_settings(PROBE_RESEND_AFTER_S=5, PROBE_QUEUE_WAIT_S=60)
def test_the_sweeper_resends_unclaimed_jobs_to_live_vantage_points_only(
    alice: User, decision: Decision, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    VantagePoint.objects.create(name="asleep", last_seen=timezone.now() - timedelta(hours=1))
    VantagePoint.objects.create(name="probes")
    run = make_run(alice, decision, ["tcp://127.0.0.1:9"], vantage_points=["probes", "asleep"])
    long_ago = timezone.now() - timedelta(seconds=10)
    run.jobs.update(sent_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        counts = services.jobs_sweep()
    assert counts["resent"] == 1 and len(sends) == 1
    resent = run.jobs.get(vantage_point="probes")
    assert resent.sent_at is not None and resent.sent_at > long_ago
    # A job no worker took within PROBE_QUEUE_WAIT_S gives up, saying why.
    run.jobs.update(queued_at=timezone.now() - timedelta(seconds=61), sent_at=long_ago)
    assert services.jobs_sweep()["failed"] == 2
    assert "no worker for the vantage point 'asleep'" in run.jobs.get(vantage_point="asleep").reason


# --- credentials --------------------------------------------------------------------------


def test_a_password_is_stored_encrypted_shown_masked_and_erased_at_the_end(
    alice: User, decision: Decision
) -> None:
    url = "amqp://guest:s3cret-pass@127.0.0.1:5672/"
    job = make_run(alice, decision, [url]).jobs.get()
    assert job.url == "amqp://guest:****@127.0.0.1:5672/"
    assert "s3cret-pass" not in job.secret_url and job.secret_url
    assert credentials.unseal(job.secret_url) == url
    attempt = services.job_claim(job_id=job.pk, worker="w")
    assert attempt is not None
    services.job_complete(job_id=job.pk, attempt=attempt, result=_result(job.url), series=[])
    job.refresh_from_db()
    assert job.secret_url == ""


def test_a_secret_sealed_under_another_key_is_lost_not_guessed() -> None:
    sealed = credentials.seal("nats://token-value@127.0.0.1:4222")
    assert sealed and "token-value" not in sealed
    with (
        override_settings(SECRET_KEY="another-secret-key-entirely-0123456789"),
        pytest.raises(credentials.CredentialsLost),
    ):
        credentials.unseal(sealed)
    assert credentials.seal("tcp://127.0.0.1:9") == ""


# --- limits ----------------------------------------------------------------------------


@override_settings(RATE_LIMIT_SCALE=1)
def test_a_user_has_a_bounded_number_of_runs(alice: User, decision: Decision) -> None:
    for _ in range(services.RUNS_PER_USER.count):
        make_run(alice, decision, ["tcp://127.0.0.1:9"])
    with pytest.raises(ratelimit.RateLimited) as caught:
        make_run(alice, decision, ["tcp://127.0.0.1:9"])
    assert caught.value.retry_after >= 1


@override_settings(RATE_LIMIT_SCALE=1)
def test_a_destination_receives_a_bounded_number_of_jobs_from_everyone(
    alice: User, decision: Decision, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the operator's networks, every user's jobs count against one budget."""
    monkeypatch.setenv("PROBE_ALLOWED_NETWORKS", "")
    bob = User.objects.create_user("bob", password="a-long-test-password-2")
    usecase = parse_usecase({"interaction": "request_response"})
    bobs, _ = advisor_services.decision_create(usecase=usecase, owner=bob)
    # Names: counted as typed, never resolved here. 3 runs of 20 targets, 2 users.
    paths = [f"https://victim.example/{i}" for i in range(services.MAX_TARGETS)]
    for owner, made in ((alice, decision), (bob, bobs), (alice, decision)):
        make_run(owner, made, paths, count=1)
    assert 3 * len(paths) == services.JOBS_PER_DESTINATION.count
    with pytest.raises(services.DestinationLimited) as caught:
        make_run(alice, decision, ["https://VICTIM.example./path"], count=1)
    assert "victim.example has received its share" in str(caught.value)
    # Another destination is not affected; the operator's own networks are exempt.
    make_run(alice, decision, ["https://other.example/"], count=1)


@override_settings(RATE_LIMIT_SCALE=1)
def test_the_worker_bounds_jobs_per_address_however_the_host_is_spelled(
    alice: User, decision: Decision, http_target: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names are counted at the address they resolve to, just before the first packet."""
    monkeypatch.setattr(services, "_in_operators_networks", lambda address: False)
    url = f"http://127.0.0.1:{http_target.port}/"
    for _ in range(services.JOBS_PER_ADDRESS.count):
        ratelimit.hit(services.JOBS_PER_ADDRESS, "127.0.0.1")
    job = make_run(alice, decision, [url.replace("127.0.0.1", "localhost")], count=1).jobs.get()
    assert services.job_execute(job_id=job.pk, worker="w") == "failed"
    job.refresh_from_db()
    assert "127.0.0.1 has received its share of probes" in job.reason
    assert http_target.requests == []


# --- helpers -------------------------------------------------------------------------------

SERIES: list[list[Any]] = [[0.0, 1.0], [0.1, 1.5], [0.2, None]]


def _result(target: str, ok: bool = True) -> dict[str, Any]:
    return {
        "kind": target.split(":", 1)[0],
        "target": target,
        "address": "127.0.0.1",
        "ok": ok,
        "samples": 3,
        "succeeded": 2 if ok else 0,
        "loss": 0.3333 if ok else 1.0,
        "latency_ms": {
            "min": 1.0,
            "p50": 1.25,
            "p95": 1.5,
            "p99": 1.5,
            "max": 1.5,
            "mean": 1.25,
            "stdev": 0.25,
        }
        if ok
        else None,
        "jitter_ms": 0.5 if ok else None,
        "phases_ms": {"dns": None, "connect": 1.2, "tls": None, "ttfb": None, "transfer": None},
        "throughput_bps": None,
        "details": {},
        "error": None if ok else "connection refused",
    }


def _silence(job: ProbeJob, seconds: float) -> None:
    """The job's worker went quiet ``seconds`` ago."""
    ProbeJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )
