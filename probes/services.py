"""Write paths of probe runs: create, claim, measure, end, sweep, heartbeat.

The database is the source of truth; the broker only carries job ids. Every
change of state is a conditional UPDATE that names the state it expects, so
two processes that race (a redelivered message, a worker thought lost that
comes back, two sweepers) cannot both win:

- a job is claimed with ``filter(id=..., status="queued").update(...) == 1``
  and each claim counts an attempt; the attempt number is the claim's fence:
  progress and the result are written only while the job is still
  ``running`` under that attempt, so the work of a claim the sweeper took
  back is discarded, and a job has at most one result;
- the last job to end ends its run, once, storing the evidence, the advice
  recomputed with it and the charts.

The sweeper (:func:`jobs_sweep`, every few seconds from Celery beat) puts a
running job whose heartbeat stopped back in the queue (or fails it after
``PROBE_MAX_ATTEMPTS`` claims) and sends again a queued job nobody claimed,
since a broker may lose messages. Sending twice is harmless: the claim makes a
second delivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import SecretStr

from advisor import ratelimit
from advisor.models import Decision
from probes import credentials, evidence, plots
from probes.base import ProbeConfig, ProbeResult, Sample
from probes.guard import (
    ENV_ALLOWED,
    MASK,
    GuardError,
    IPNetwork,
    NotAllowedError,
    ResolveError,
    check_address,
    parse_networks,
    parse_url,
    resolve_target,
)
from probes.models import ACTIVE, ProbeJob, ProbeJobResult, ProbeRun, Status, VantagePoint
from probes.registry import target_check
from probes.runner import refused_result, run_probe
from probes.targets import method_for

logger = logging.getLogger(__name__)

# Bounds of a run (issue 7): what one press of "Run" may ask of the workers.
MAX_TARGETS = 20
MAX_COUNT = 100
MAX_TIMEOUT_S = 10.0
MIN_INTERVAL_MS = 10.0
MAX_INTERVAL_MS = 10_000.0
MAX_VANTAGE_POINTS = 4
MAX_URL_LENGTH = 2048
DEFAULT_COUNT = 10
DEFAULT_INTERVAL_MS = 100.0
DEFAULT_TIMEOUT_S = 5.0

# Margins on a job's own bound, count x (interval + timeout): the soft limit
# ends it with a reason, the hard one kills the worker process running it.
SOFT_MARGIN_S = 10.0
HARD_MARGIN_S = 20.0
# A run's end takes milliseconds; a mark this old belongs to a process that died.
ENDING_STALE_S = 30.0
# How often a running job writes its progress (and so its heartbeat); the page
# polls every second.
PROGRESS_EVERY_S = 0.5
# How much earlier than its claim Celery may start a job's time limits.
KILLED_CLAIM_SLACK_S = 2.0
# The probe's own limit falls this long before Celery's soft time limit.
OWN_LIMIT_EARLY_S = 0.5

# A user starts at most this many runs an hour.
RUNS_PER_USER = ratelimit.Limit("probe-runs-user", 30, 3600)
# Any one destination host receives at most this many probe jobs an hour from
# everyone using this Switchboard together (each at most MAX_COUNT samples), so
# no one can use it to flood a third party. Hosts inside PROBE_ALLOWED_NETWORKS,
# the operator's own networks, are exempt.
JOBS_PER_DESTINATION = ratelimit.Limit("probe-destination", 60, 3600)
# The same bound on the address a worker is about to connect to, however the
# host was spelled (many names can point at one victim).
JOBS_PER_ADDRESS = ratelimit.Limit("probe-address", 60, 3600)

_VANTAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class RunInvalid(Exception):
    """The run cannot be made as asked: ``errors`` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class DestinationLimited(ratelimit.RateLimited):
    def __init__(self, destination: str, retry_after: int) -> None:
        super().__init__(JOBS_PER_DESTINATION, retry_after)
        self.destination = destination

    def __str__(self) -> str:
        return (
            f"{self.destination} has received its share of probes from this Switchboard "
            f"({JOBS_PER_DESTINATION.count} jobs an hour from all users together); "
            f"try again in {self.retry_after} s"
        )


@dataclass(frozen=True)
class TargetSpec:
    """A target as asked: its URL and, from the page, the method it was proposed for."""

    url: str
    method: str | None = None


@dataclass(frozen=True)
class _Checked:
    url: str
    masked: str
    scheme: str
    destination: str
    literal: Any
    method: str
    implementation: str | None


# --- creating a run ------------------------------------------------------------------


def default_vantage_point() -> str:
    return str(settings.CELERY_TASK_DEFAULT_QUEUE)


def _integer(value: Any, name: str, low: int, high: int, errors: dict[str, str]) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        errors[name] = f"must be a whole number from {low} to {high}"
        return low
    if not low <= value <= high:
        errors[name] = f"must be from {low} to {high}, not {value:g}"
    return int(value)


def _number(
    value: Any, name: str, low: float, high: float, unit: str, errors: dict[str, str]
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        errors[name] = f"must be a number of {unit} from {low:g} to {high:g}"
        return low
    if not low <= value <= high:
        errors[name] = f"must be from {low:g} to {high:g} {unit}, not {value:g}"
    return float(value)


def _check_target(spec: TargetSpec, ranking: Sequence[Mapping[str, Any]]) -> _Checked:
    """One target, parsed and checked as the guard will; GuardError says what is wrong."""
    url = spec.url.strip() if isinstance(spec.url, str) else ""
    if not url:
        raise GuardError("is empty; give a URL such as amqp://mq.example.com:5672/")
    if len(url) > MAX_URL_LENGTH:
        raise GuardError(f"is longer than {MAX_URL_LENGTH} characters")
    if MASK in url:
        raise GuardError("still has a masked password (****): type the password again")
    parsed = parse_url(url)
    # A literal address is judged now; a name is resolved and judged by the worker,
    # from its vantage point, just before the first packet.
    if parsed.literal is not None:
        check_address(parsed.literal, _networks())
    check = target_check(parsed.scheme)
    if check is not None:
        from probes.base import ProbeError, Target

        placeholder = Target(
            url=parsed.masked_url,
            scheme=parsed.scheme,
            host=parsed.host,
            port=parsed.port,
            address=str(parsed.literal or "0.0.0.0"),
            path=parsed.path,
            query=parsed.query,
            username=parsed.username,
            password=None if parsed.password is None else SecretStr(parsed.password),
        )
        try:
            check(placeholder)
        except ProbeError as exc:
            raise GuardError(str(exc)) from None
    method, implementation = method_for(parsed.scheme, ranking, spec.method)
    return _Checked(
        url=url,
        masked=parsed.masked_url,
        scheme=parsed.scheme,
        destination=parsed.host,
        literal=parsed.literal,
        method=method,
        implementation=implementation,
    )


def _networks() -> tuple[IPNetwork, ...]:
    """The operator's policy, the one place it is read: the environment's
    PROBE_ALLOWED_NETWORKS when set (even empty), else Django's setting, as for
    ``manage.py probe``. The guard reads neither: it is handed this."""
    raw = os.environ.get(ENV_ALLOWED)
    if raw is None:
        raw = str(getattr(settings, ENV_ALLOWED, "") or "")
    return parse_networks(raw)


def _in_operators_networks(address: Any) -> bool:
    """An address inside PROBE_ALLOWED_NETWORKS is in the operator's own networks."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in _networks())


def _operators_own(checked: _Checked) -> bool:
    return checked.literal is not None and _in_operators_networks(checked.literal)


def _vantage_points(names: Any, errors: dict[str, str]) -> list[str]:
    default = default_vantage_point()
    if names is None or names == []:
        return [default]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        errors["vantage_points"] = "must be a list of vantage point names"
        return [default]
    chosen = list(dict.fromkeys(n.strip() for n in names))
    if len(chosen) > MAX_VANTAGE_POINTS:
        errors["vantage_points"] = f"at most {MAX_VANTAGE_POINTS} vantage points per run"
        return chosen
    known = set(VantagePoint.objects.filter(name__in=chosen).values_list("name", flat=True))
    for name in chosen:
        if not _VANTAGE_NAME.match(name):
            errors["vantage_points"] = f"{name[:70]!r} is not a vantage point name"
            break
        if name not in known and name != default:
            errors["vantage_points"] = (
                f"no worker has registered the vantage point {name!r}; start one with "
                f"'celery -A advisor worker -Q {name}'"
            )
            break
    return chosen


def run_create(
    *,
    user: User,
    decision: Decision,
    targets: Sequence[TargetSpec],
    count: Any = DEFAULT_COUNT,
    interval_ms: Any = DEFAULT_INTERVAL_MS,
    timeout_s: Any = DEFAULT_TIMEOUT_S,
    vantage_points: Any = None,
    throughput: bool = False,
    insecure: bool = False,
) -> ProbeRun:
    """Queue a run of ``targets`` on ``decision`` for the workers.

    Raises RunInvalid (nothing stored, nothing counted) when the request is not a
    run Switchboard makes, and RateLimited when the user or a destination has
    had its share. The caller has checked that ``user`` owns ``decision``.
    """
    errors: dict[str, str] = {}
    samples = _integer(count, "count", 1, MAX_COUNT, errors)
    interval = _number(interval_ms, "interval", MIN_INTERVAL_MS, MAX_INTERVAL_MS, "ms", errors)
    timeout = _number(timeout_s, "timeout", 0.1, MAX_TIMEOUT_S, "s", errors)
    if not isinstance(targets, list | tuple) or not targets:
        errors["targets"] = "give at least one target URL"
        targets = []
    elif len(targets) > MAX_TARGETS:
        errors["targets"] = f"at most {MAX_TARGETS} targets per run, not {len(targets)}"
    checked: list[_Checked] = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(targets[:MAX_TARGETS]):
        try:
            item = _check_target(spec, decision.ranking)
        except GuardError as exc:
            errors[f"targets[{index}]"] = str(exc)
            continue
        if item.url in seen:
            errors[f"targets[{index}]"] = f"repeats targets[{seen[item.url]}]"
            continue
        seen[item.url] = index
        checked.append(item)
    points = _vantage_points(vantage_points, errors)
    if errors:
        raise RunInvalid(errors)

    ratelimit.check(RUNS_PER_USER, f"user:{user.pk}")
    for item in checked:
        if _operators_own(item):
            continue
        for _ in points:
            retry_after = ratelimit.hit(JOBS_PER_DESTINATION, item.destination)
            if retry_after is not None:
                raise DestinationLimited(item.destination, retry_after)

    now = timezone.now()
    with transaction.atomic():
        run = ProbeRun.objects.create(
            decision=decision,
            owner=user,
            count=samples,
            interval_ms=interval,
            timeout_s=timeout,
            throughput=bool(throughput),
            insecure=bool(insecure),
            vantage_points=points,
            created_at=now,
        )
        jobs = ProbeJob.objects.bulk_create(
            [
                ProbeJob(
                    run=run,
                    position=position,
                    vantage_point=point,
                    url=item.masked,
                    secret_url=credentials.seal(item.url),
                    scheme=item.scheme,
                    destination=item.destination,
                    method=item.method,
                    implementation=item.implementation or "",
                    queued_at=now,
                    sent_at=now,
                )
                for point in points
                for position, item in enumerate(checked)
            ]
        )
        # The ids come back from the INSERT (RETURNING, on PostgreSQL and SQLite): no
        # second read of the rows, nor a third to send them, on the way to the workers.
        if any(job.pk is None for job in jobs):
            jobs = list(run.jobs.all())
        soft, hard = time_limits(run)
        messages = [(job.pk, job.vantage_point, soft, hard) for job in jobs]
        # Sent once the rows are committed, so a worker always finds its job. A
        # broker that is down must not fail the request: the job stays queued and
        # the sweeper sends it again.
        transaction.on_commit(lambda: _send(messages), robust=True)
    return run


# --- sending -------------------------------------------------------------------------


def job_bound_s(run: ProbeRun) -> float:
    """The most the job's probe may take: count x (interval + timeout)."""
    return run.count * (run.interval_ms / 1000.0 + run.timeout_s)


def time_limits(run: ProbeRun) -> tuple[float, float]:
    """The job's soft and hard time limits, in whole seconds (as Celery counts them):
    its bound plus ``PROBE_SOFT_MARGIN_S`` and ``PROBE_HARD_MARGIN_S``, at least 1 s."""
    bound = job_bound_s(run)
    soft = getattr(settings, "PROBE_SOFT_MARGIN_S", SOFT_MARGIN_S)
    hard = getattr(settings, "PROBE_HARD_MARGIN_S", HARD_MARGIN_S)
    return float(max(1, math.ceil(bound + soft))), float(max(1, math.ceil(bound + hard)))


def overran_reason(run: ProbeRun) -> str:
    """Why a job that passed its soft time limit failed, in words."""
    soft, _hard = time_limits(run)
    return (
        f"the probe did not end within its time limit of {soft:g} s "
        f"({run.count} samples x ({run.interval_ms:g} ms interval + {run.timeout_s:g} s "
        f"timeout) = {job_bound_s(run):g} s, plus a margin) and was stopped"
    )


def jobs_send(job_ids: Iterable[int]) -> None:
    """Send each job's id to its vantage point's queue, with time limits from its bound."""
    jobs = ProbeJob.objects.filter(id__in=list(job_ids)).select_related("run")
    _send([(job.pk, job.vantage_point, *time_limits(job.run)) for job in jobs])


# A send waits this long for the broker, once: a message that does not go is sent
# again by the sweeper (PROBE_RESEND_AFTER_S), so a request never waits out a hung
# broker's socket timeout (5 s, the worker's, longer than its one-second BRPOP) and
# the publish retries on top of it.
SEND_TIMEOUT_S = 1.0


def _send(messages: Sequence[tuple[int, str, float, float]]) -> None:
    """Send (job id, queue, soft limit, hard limit) messages, on one broker connection."""
    from probes.tasks import probe_job_run

    app = probe_job_run.app
    options = {
        "socket_timeout": SEND_TIMEOUT_S,
        "socket_connect_timeout": SEND_TIMEOUT_S,
        "max_retries": 0,  # kombu's retries to connect; the sweeper sends it again
    }
    with app.connection_for_write(transport_options=options) as connection:
        producer = connection.Producer()
        for job_id, queue, soft, hard in messages:
            probe_job_run.apply_async(
                args=(job_id,),
                queue=queue,
                soft_time_limit=math.ceil(soft),
                time_limit=math.ceil(hard),
                producer=producer,
                retry=False,
            )


# --- a worker's side of a job --------------------------------------------------------


def job_claim(*, job_id: int, worker: str) -> int | None:
    """Take a queued job for this worker; its attempt number, or None when it is not
    queued (a second delivery, or a job that already ended).

    One conditional UPDATE, naming the state and attempt count it read: of two
    deliveries racing, exactly one matches. A second delivery of a job already
    taken is answered from a read, without waiting for the write lock.
    """
    claimed = _claim(job_id=job_id, worker=worker)
    if claimed is None:
        return None
    job, attempt = claimed
    _run_started(job)
    return attempt


def _run_started(job: ProbeJob) -> None:
    """Mark the job's run running, when its first job is claimed (a conditional update)."""
    if job.run.status == Status.QUEUED:
        ProbeRun.objects.filter(id=job.run_id, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=job.claimed_at
        )


def _claim(*, job_id: int, worker: str) -> tuple[ProbeJob, int] | None:
    """One read and one conditional UPDATE; the run is marked running by the caller."""
    job = ProbeJob.objects.filter(id=job_id).select_related("run").first()
    if job is None or job.status != Status.QUEUED:
        return None
    _soft, hard = time_limits(job.run)
    now = timezone.now()
    attempt = job.attempts + 1
    claimed = ProbeJob.objects.filter(
        id=job_id, status=Status.QUEUED, attempts=job.attempts
    ).update(
        status=Status.RUNNING,
        attempts=attempt,
        claimed_at=now,
        heartbeat_at=now,
        deadline=now + timedelta(seconds=hard + settings.PROBE_JOB_LOST_AFTER_S),
        worker=worker[:255],
        samples_done=0,
    )
    if claimed != 1:
        return None
    job.claimed_at = now
    return job, attempt


def job_progress(*, job_id: int, attempt: int, samples_done: int) -> bool:
    """Write progress and heartbeat; False when this claim no longer holds the job."""
    updated = ProbeJob.objects.filter(id=job_id, status=Status.RUNNING, attempts=attempt).update(
        samples_done=samples_done, heartbeat_at=timezone.now()
    )
    return updated == 1


def job_complete(
    *,
    job_id: int,
    attempt: int,
    result: dict[str, Any],
    series: list[list[Any]],
    run_id: int | None = None,
) -> bool:
    """End the job with what it measured, in one transaction; False when this claim
    lost the job meanwhile (its work is then discarded, never stored twice)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            ended = ProbeJob.objects.filter(
                id=job_id, status=Status.RUNNING, attempts=attempt
            ).update(
                status=Status.DONE,
                finished_at=now,
                samples_done=int(result.get("samples") or 0),
                secret_url="",
            )
            if ended != 1:
                return False
            ProbeJobResult.objects.create(
                job_id=job_id,
                attempt=attempt,
                result=result,
                failure=evidence.failure_of(result) or "",
                series=series,
                created_at=now,
            )
    except IntegrityError:  # a result exists already: the first one stands
        return False
    if run_id is None:
        run_id = ProbeJob.objects.values_list("run_id", flat=True).get(id=job_id)
    run_finish_if_complete(run_id=run_id)
    return True


def job_fail(*, job_id: int, reason: str, attempt: int | None = None) -> bool:
    """Give the job up with a reason; the run ends if it was the last one."""
    query = ProbeJob.objects.filter(id=job_id, status__in=ACTIVE)
    if attempt is not None:
        query = query.filter(status=Status.RUNNING, attempts=attempt)
    ended = query.update(
        status=Status.FAILED, reason=reason[:2000], finished_at=timezone.now(), secret_url=""
    )
    if ended != 1:
        return False
    run_id = ProbeJob.objects.values_list("run_id", flat=True).get(id=job_id)
    run_finish_if_complete(run_id=run_id)
    return True


def job_overran(*, job_id: int) -> bool:
    """The task's soft time limit passed outside the probe: fail the running job."""
    job = ProbeJob.objects.select_related("run").filter(id=job_id).first()
    if job is None or job.status != Status.RUNNING:
        return False
    return job_fail(job_id=job_id, attempt=job.attempts, reason=overran_reason(job.run))


class _Watch:
    """One running job whose progress the writer keeps in the database."""

    def __init__(self, job: ProbeJob, attempt: int, series: list[list[Any]]) -> None:
        self.job = job
        self.job_id = int(job.pk)
        self.attempt = attempt
        self.series = series
        # The run is marked running by the writer, off the probe's way; the first
        # progress write is due one period in, so a quick job never writes here.
        self.run_to_mark = job.run.status == Status.QUEUED
        self.due = time.monotonic() + PROGRESS_EVERY_S
        self.lost = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None

    def cancel_probe(self) -> None:
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)


class _ProgressWriter(threading.Thread):
    """Writes running jobs' progress from a thread of its own, one per worker process.

    The probe's event loop only appends to a list (``on_sample``); this thread
    reads its length and writes it with the ORM, every ``PROGRESS_EVERY_S``, so
    the loop never waits on the database and the ORM is never called from async
    code. Each write is the job's heartbeat. When a write finds the claim gone
    (the sweeper requeued the job), it cancels the probe.

    The thread lives as long as its process, so its database connection is opened
    once and kept (``CONN_MAX_AGE``), not set up again for every job: on
    PostgreSQL a new connection is a new server process.
    """

    def __init__(self) -> None:
        super().__init__(name="probe-progress", daemon=True)
        self.pid = os.getpid()
        self.lock = threading.Lock()  # held while writing: unwatch() waits for a write
        self.watched: dict[int, _Watch] = {}
        self.wake = threading.Event()

    def watch(self, watch: _Watch) -> None:
        with self.lock:
            self.watched[watch.job_id] = watch
        self.wake.set()

    def unwatch(self, watch: _Watch) -> None:
        """No write for this job once this returns (the job's end is written next)."""
        with self.lock:
            self.watched.pop(watch.job_id, None)
        if watch.run_to_mark:  # a job quicker than the writer: queued -> running still
            watch.run_to_mark = False
            _run_started(watch.job)

    def run(self) -> None:
        while True:
            with self.lock:
                dues = [w.due for w in self.watched.values()]
            # Idle (no job running in this process): sleep until the next one comes.
            wait = max(0.0, min(dues) - time.monotonic()) if dues else None
            self.wake.wait(wait)
            self.wake.clear()
            with self.lock:
                if not self.watched:
                    continue
                # As Django does around a request: a connection older than
                # CONN_MAX_AGE, or one that broke, is closed before and after.
                self._close_old()
                for watch in list(self.watched.values()):
                    self._write(watch)
                self._close_old()

    @staticmethod
    def _close_old() -> None:
        try:
            connection.close_if_unusable_or_obsolete()
        except Exception:
            logger.warning("progress connection not closed", exc_info=True)

    def _write(self, watch: _Watch) -> None:
        try:
            if watch.run_to_mark:
                watch.run_to_mark = False
                _run_started(watch.job)
            if time.monotonic() < watch.due:
                return
            watch.due = time.monotonic() + PROGRESS_EVERY_S
            done = len(watch.series)
            if not job_progress(job_id=watch.job_id, attempt=watch.attempt, samples_done=done):
                watch.lost = True
                self.watched.pop(watch.job_id, None)
                watch.cancel_probe()
        except Exception:
            # A database hiccup must not end the probe; the sweeper notices a job
            # whose heartbeat really stopped.
            logger.warning("progress of job %s not written", watch.job_id, exc_info=True)
            with contextlib.suppress(Exception):
                connection.close()  # a broken connection: the next write opens a new one


_writer: _ProgressWriter | None = None
_writer_lock = threading.Lock()


def _progress_writer() -> _ProgressWriter:
    """This process's writer (a pool process forked from another makes its own)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid() or not _writer.is_alive():
            _writer = _ProgressWriter()
            _writer.start()
        return _writer


async def probe_async(url: str, config: ProbeConfig, on_sample: Any = None) -> ProbeResult:
    """The instrument, called in this one place; the guard applies inside the worker too.

    A URL the guard refuses from here (a name resolving to a private address) is a
    result that says so, not an error.
    """
    try:
        return await run_probe(url, config, allowed_networks=_networks(), on_sample=on_sample)
    except NotAllowedError as exc:
        return refused_result(url, str(exc))
    except GuardError as exc:  # a URL the protocol can never use
        return refused_result(url, str(exc), failure="other")


def resolved_address(url: str, timeout_s: float) -> Any:
    """The address the probe will connect to, resolved and checked as the guard does;
    None when it does not resolve or is refused (the probe then reports why)."""
    try:
        target = asyncio.run(resolve_target(url, allowed_networks=_networks(), timeout_s=timeout_s))
    except (GuardError, ResolveError):
        return None
    return ipaddress.ip_address(target.address)


def _address_limited(url: str, timeout_s: float) -> str | None:
    """Why this job may not probe its address now, or None: the per-address bound."""
    if float(getattr(settings, "RATE_LIMIT_SCALE", 1.0)) <= 0:
        return None  # limits are off: no need to resolve the name first
    address = resolved_address(url, timeout_s)
    if address is None or _in_operators_networks(address):
        return None
    retry_after = ratelimit.hit(JOBS_PER_ADDRESS, str(address))
    if retry_after is None:
        return None
    return (
        f"{address} has received its share of probes from this Switchboard "
        f"({JOBS_PER_ADDRESS.count} jobs an hour from all users together); "
        f"try again in {retry_after} s"
    )


def job_execute(*, job_id: int, worker: str) -> str:
    """Claim the job, probe its target, store the result; what happened, in a word.

    Runs in a worker process: the probe's event loop in this thread, progress
    in another (:class:`_Progress`).
    """
    begun = time.perf_counter()
    connected = connection.connection is not None
    claimed = _claim(job_id=job_id, worker=worker)
    if claimed is None:
        return "not claimed"
    job, attempt = claimed
    took_claim = time.perf_counter()
    waited = (timezone.now() - job.sent_at).total_seconds() if job.sent_at else 0.0
    run = job.run
    try:
        url = credentials.unseal(job.secret_url) if job.secret_url else job.url
    except credentials.CredentialsLost as exc:
        job_fail(job_id=job_id, attempt=attempt, reason=str(exc))
        return "failed"
    refused = _address_limited(url, run.timeout_s)
    if refused is not None:
        job_fail(job_id=job_id, attempt=attempt, reason=refused)
        return "failed"
    config = ProbeConfig(
        count=run.count,
        interval_ms=run.interval_ms,
        timeout_s=run.timeout_s,
        throughput=run.throughput,
        insecure=run.insecure,
    )
    series: list[list[Any]] = []
    started = time.monotonic()

    def on_sample(index: int, sample: Sample) -> None:
        # Called in the event loop: no I/O here, only an append.
        latency = (
            round(sample.latency_ms, 3) if sample.ok and sample.latency_ms is not None else None
        )
        series.append([round(time.monotonic() - started, 3), latency])

    progress = _Watch(job, attempt, series)
    # The probe ends itself just before Celery's soft time limit (counted from
    # about when this began): a cancellation no probe module can swallow, where
    # the SoftTimeLimitExceeded a signal raises could be taken for a sample's error.
    soft, _hard = time_limits(run)
    budget = max(0.1, soft - OWN_LIMIT_EARLY_S - (time.perf_counter() - begun))

    async def probe() -> ProbeResult:
        progress.loop = asyncio.get_running_loop()
        progress.task = asyncio.current_task()
        async with asyncio.timeout(budget) as limit:
            try:
                return await probe_async(url, config, on_sample)
            except TimeoutError:
                if limit.expired():
                    raise
                raise RuntimeError("the probe raised TimeoutError") from None
        raise AssertionError("unreachable")  # pragma: no cover

    writer = _progress_writer()
    writer.watch(progress)
    probing = time.perf_counter()
    try:
        result = asyncio.run(probe())
    except asyncio.CancelledError:
        return "taken back"
    except (TimeoutError, SoftTimeLimitExceeded):
        if progress.lost:
            return "taken back"
        job_fail(job_id=job_id, attempt=attempt, reason=overran_reason(run))
        return "failed"
    finally:
        writer.unwatch(progress)
    if progress.lost:
        return "taken back"
    probed = time.perf_counter()
    stored = job_complete(
        job_id=job_id,
        attempt=attempt,
        result=result.model_dump(mode="json"),
        series=series,
        run_id=job.run_id,
    )
    logger.info(
        "job %s (attempt %s): in the queue %.1f ms, claimed in %.1f ms, "
        "ready to probe in %.1f ms, probed in %.1f ms, stored in %.1f ms%s",
        job_id,
        attempt,
        waited * 1000,
        (took_claim - begun) * 1000,
        (probing - begun) * 1000,
        (probed - probing) * 1000,
        (time.perf_counter() - probed) * 1000,
        "" if connected else " (a new database connection)",
    )
    return "done" if stored else "taken back"


# --- ending a run --------------------------------------------------------------------


def run_finish_if_complete(*, run_id: int) -> bool:
    """End the run when none of its jobs is active: evidence, advice and charts, once."""
    # Every job's end asks; all but the last are answered by this one cheap query.
    if ProbeJob.objects.filter(run_id=run_id, status__in=ACTIVE).exists():
        return False
    # Jobs ending together all get here; the one that marks the run ends it. A mark
    # older than ENDING_STALE_S is a process that died on the way: taken over.
    now = timezone.now()
    taken = (
        ProbeRun.objects.filter(id=run_id, status__in=ACTIVE)
        .filter(
            Q(ending_at__isnull=True) | Q(ending_at__lt=now - timedelta(seconds=ENDING_STALE_S))
        )
        .update(ending_at=now)
    )
    if taken != 1:
        return False
    started = time.perf_counter()
    # One read: the jobs with their results, run and decision (its answers only).
    jobs = list(
        ProbeJob.objects.filter(run_id=run_id)
        .select_related("outcome", "run", "run__decision")
        .only(
            *(f.name for f in ProbeJob._meta.concrete_fields),
            *(f"outcome__{f.name}" for f in ProbeJobResult._meta.concrete_fields),
            *(f"run__{f.name}" for f in ProbeRun._meta.concrete_fields),
            "run__decision__id",
            "run__decision__usecase",
        )
        .order_by("vantage_point", "position")
    )
    run = jobs[0].run if jobs else ProbeRun.objects.select_related("decision").get(id=run_id)
    read = time.perf_counter()
    measurements = evidence.measurements_of(jobs)
    advice, notes = evidence.advise(run.decision.usecase, measurements)
    advised = time.perf_counter()
    charts = plots.run_charts(jobs)
    drawn = time.perf_counter()
    gave_up = [job for job in jobs if job.status == Status.FAILED]
    status = Status.DONE if len(gave_up) < len(jobs) else Status.FAILED
    reason = ""
    if gave_up:
        first = gave_up[0]
        reason = (
            f"{len(gave_up)} of {len(jobs)} jobs gave up; the first, {first.url} from "
            f"{first.vantage_point}: {first.reason}"
        )
    ended = ProbeRun.objects.filter(id=run_id, status__in=ACTIVE, ending_at=now).update(
        status=status,
        finished_at=timezone.now(),
        reason=reason,
        measurements=[m.model_dump(mode="json") for m in measurements],
        evidence=notes,
        advice=advice,
        charts=charts,
    )
    if ended == 1:
        # The share page is cached by the decision's last change; the evidence is one.
        Decision.objects.filter(pk=run.decision_id).update(updated_at=timezone.now())
    logger.info(
        "run %s ended (%s): read in %.1f ms, advice in %.1f ms, charts in %.1f ms, "
        "stored in %.1f ms",
        run_id,
        status,
        (read - started) * 1000,
        (advised - read) * 1000,
        (drawn - advised) * 1000,
        (time.perf_counter() - drawn) * 1000,
    )
    return ended == 1


# --- the sweeper ---------------------------------------------------------------------


def _take_back(job: ProbeJob, *, now: datetime, killed: bool = False) -> str:
    """Requeue a running job whose claim was lost, or fail it after its last attempt:
    ``"requeued"``, ``"failed"``, or ``""`` when its state changed meanwhile."""
    _soft, hard = time_limits(job.run)
    if killed or (job.claimed_at and job.claimed_at + timedelta(seconds=hard) <= now):
        silent = (
            f"it ran past its hard time limit of {hard:g} s, and the worker process "
            "running it was stopped"
        )
    else:
        silent = "the worker running it stopped answering"
    if job.attempts >= settings.PROBE_MAX_ATTEMPTS:
        reason = f"gave up after {job.attempts} attempts: {silent} the last time"
        return "failed" if job_fail(job_id=job.pk, attempt=job.attempts, reason=reason) else ""
    requeued = ProbeJob.objects.filter(
        id=job.pk, status=Status.RUNNING, attempts=job.attempts
    ).update(
        status=Status.QUEUED,
        claimed_at=None,
        heartbeat_at=None,
        deadline=None,
        worker="",
        samples_done=0,
        queued_at=now,
        sent_at=now,
    )
    if not requeued:
        return ""
    logger.warning("job %s requeued: %s (attempt %s)", job.pk, silent, job.attempts)
    return "requeued"


def job_killed(*, job_id: int) -> str:
    """The worker's hard time limit killed the process running the job: take the job
    back at once (requeued, or failed after its last attempt), without waiting for
    the sweeper to find its heartbeat silent. Called in the worker's main process."""
    job = ProbeJob.objects.select_related("run").filter(id=job_id).first()
    now = timezone.now()
    if job is None or job.status != Status.RUNNING or job.claimed_at is None:
        return ""
    _soft, hard = time_limits(job.run)
    # Celery's clock starts when the pool takes the message, a moment before the
    # claim: a claim younger than its limit by more than that moment is a newer
    # one (the sweeper took the job back meanwhile), not the one that was killed.
    if job.claimed_at + timedelta(seconds=hard - KILLED_CLAIM_SLACK_S) > now:
        return ""
    taken = _take_back(job, now=now, killed=True)
    if taken == "requeued":
        jobs_send([job.pk])
    return taken


def jobs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Requeue or fail jobs whose worker was lost; send again jobs nobody claimed.

    Safe to run in several processes at once: every change is conditional.
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "resent": 0, "finished": 0}
    lost_before = now - timedelta(seconds=settings.PROBE_JOB_LOST_AFTER_S)
    lost = ProbeJob.objects.filter(status=Status.RUNNING).filter(
        Q(heartbeat_at__lt=lost_before) | Q(heartbeat_at__isnull=True) | Q(deadline__lt=now)
    )
    resend: list[int] = []
    for job in lost.select_related("run"):
        taken = _take_back(job, now=now)
        if taken:
            counts[taken] += 1
        if taken == "requeued":
            resend.append(job.pk)

    live = {vp.name for vp in VantagePoint.objects.all() if vp.is_live(now)}
    waited = now - timedelta(seconds=settings.PROBE_RESEND_AFTER_S)
    gave_up_before = now - timedelta(seconds=settings.PROBE_QUEUE_WAIT_S)
    unclaimed = ProbeJob.objects.filter(status=Status.QUEUED, sent_at__lt=waited)
    for job in unclaimed:
        if job.queued_at is not None and job.queued_at < gave_up_before:
            minutes = settings.PROBE_QUEUE_WAIT_S / 60
            reason = (
                f"no worker for the vantage point {job.vantage_point!r} took it within "
                f"{minutes:g} minutes"
            )
            if job_fail(job_id=job.pk, reason=reason):
                counts["failed"] += 1
            continue
        if job.vantage_point not in live:
            continue  # nobody would take it; it waits (or times out above)
        if ProbeJob.objects.filter(id=job.pk, status=Status.QUEUED, sent_at=job.sent_at).update(
            sent_at=now
        ):
            resend.append(job.pk)
            counts["resent"] += 1
    if resend:
        transaction.on_commit(lambda: jobs_send(resend), robust=True)

    # A run whose last job ended while its process died before ending the run.
    for run_id in (
        ProbeRun.objects.filter(status__in=ACTIVE)
        .exclude(jobs__status__in=ACTIVE)
        .values_list("id", flat=True)
    ):
        if run_finish_if_complete(run_id=run_id):
            counts["finished"] += 1
    # Belt and braces: no secret outlives its job.
    ProbeJob.objects.exclude(status__in=ACTIVE).exclude(secret_url="").update(secret_url="")
    return counts


# --- vantage points ------------------------------------------------------------------


def vantage_points_seen(*, names: Iterable[str], hostname: str) -> None:
    """A worker's heartbeat: each queue it consumes is a vantage point seen now."""
    now = timezone.now()
    for name in names:
        updated = VantagePoint.objects.filter(name=name).update(
            last_seen=now, hostname=hostname[:255]
        )
        if not updated:
            try:
                VantagePoint.objects.create(
                    name=name, hostname=hostname[:255], first_seen=now, last_seen=now
                )
            except IntegrityError:  # another worker registered it at the same moment
                VantagePoint.objects.filter(name=name).update(last_seen=now)


def vantage_points_stopped(*, names: Iterable[str], hostname: str) -> None:
    """A clean shutdown: shown stale at once (another worker's heartbeat revives it)."""
    VantagePoint.objects.filter(name__in=list(names), hostname=hostname[:255]).update(
        stopped_at=timezone.now()
    )
