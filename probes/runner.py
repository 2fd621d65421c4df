"""The shared work of every probe: guard, schedule, deadline, errors, statistics.

A protocol module only knows how to take one sample. The runner

1. resolves and checks the URL once with :mod:`probes.guard` (a refusal is a
   :class:`~probes.guard.GuardError`, raised before any packet is sent);
2. takes ``count`` samples one after another, sample ``i`` starting at
   ``start + i * interval`` on the monotonic clock, not "sleep interval after
   each sample", so the time a sample takes does not stretch the cadence. A
   sample that overruns its slot (a timeout longer than the interval) makes
   the next one start as soon as it ends, and the schedule continues from
   there instead of firing the missed slots back to back;
3. bounds every sample by its deadline, ``min(now + timeout, end of the
   probe)``, where the whole probe is bounded by ``count * (interval +
   timeout)`` from its start, resolution included;
4. turns every exception into a failed :class:`Sample` with a short reason
   and a machine-readable ``failure`` kind, never leaking a password into it;
   and
5. builds the section 4 :class:`ProbeResult` with :mod:`probes.stats`.

The public API for callers (the ``probe`` command, the runs layer's Celery
task) is :func:`run_probe`, :func:`run_probe_sync`, :func:`run_many` and
:func:`run_many_sync`. The caller passes the policy, ``allowed_networks``
(the networks beyond public addresses that probes may reach): the instrument
reads neither Django settings nor the environment for it.

Callbacks (``on_target``, ``on_sample``) run *in the event loop*, between
samples, synchronously: they must be cheap and must never block (no ORM
query, no network call, no sleeping). A caller that wants to report progress
somewhere slow records the sample (append to a list, put it on a
``queue.SimpleQueue``, or ``loop.run_in_executor``) and does the slow write
elsewhere. Time a callback takes delays the next sample's start; an exception
it raises ends the probe.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from probes import stats
from probes.base import (
    PHASES,
    Failure,
    ProbeConfig,
    ProbeError,
    ProbeResult,
    Sample,
    Target,
    scrub,
    scrub_details,
)
from probes.guard import (
    AllowedNetworks,
    GuardError,
    NotAllowedError,
    ResolveError,
    mask_url,
    parse_networks,
    parse_url,
    resolve_target,
)
from probes.registry import REGISTRY, ProbeFn, probe_function, target_check

logger = logging.getLogger(__name__)

SampleCallback = Callable[[int, Sample], None]
"""``on_sample(index, sample)``: index from 0, called in the event loop; cheap, never blocking."""
ManySampleCallback = Callable[[int, int, Sample], None]
"""``on_sample(target_index, index, sample)`` for :func:`run_many`; same rules."""
TargetCallback = Callable[[Target], None]
NOT_TAKEN = "not taken: the probe's time budget was used up"

__all__ = [
    "ManySampleCallback",
    "SampleCallback",
    "TargetCallback",
    "classify",
    "probe_budget_s",
    "refused_result",
    "run_many",
    "run_many_sync",
    "run_probe",
    "run_probe_sync",
    "scrub",
    "scrub_details",
    "summarize",
]

# How many targets run_many probes at once: enough for the 200-target bench,
# few enough to stay far below the default limit of 1024 file descriptors.
DEFAULT_CONCURRENCY = 256


def probe_budget_s(config: ProbeConfig) -> float:
    """The most a whole probe may take: count x (interval + timeout)."""
    return config.count * (config.interval_ms / 1000.0 + config.timeout_s)


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A short, user-facing reason for a failed sample."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s:g} s" if timeout_s else "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ProbeError):
        return str(exc) or "wrong answer"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> Failure:
    """The machine-readable failure kind for an exception a sample ended with."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ProbeError):
        return exc.failure
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, NotAllowedError):
        return "not_allowed"
    if isinstance(exc, ResolveError):
        return "dns"
    return "other"


async def take_sample(fn: ProbeFn, target: Target, config: ProbeConfig, deadline: float) -> Sample:
    """One sample, bounded by ``deadline`` (a ``time.monotonic()`` instant)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        # A timeout so short it passed before the sample could start.
        return Sample(
            ok=False, error=describe_error(TimeoutError(), config.timeout_s), failure="timeout"
        )
    started = time.perf_counter_ns()
    try:
        async with asyncio.timeout(remaining):
            sample = await fn(target, config, deadline)
    except TimeoutError:
        # Name the configured timeout unless the probe's budget cut it shorter.
        limit = config.timeout_s if remaining > config.timeout_s - 0.01 else round(remaining, 3)
        sample = Sample(ok=False, error=describe_error(TimeoutError(), limit), failure="timeout")
    except Exception as exc:
        # A bug in a probe module must not take the run down; it is recorded
        # (and logged with its traceback) like any other failure.
        if not isinstance(exc, OSError | ProbeError):
            # Logged scrubbed: the exception's message might quote the password.
            trace = "".join(traceback.format_exception(exc))
            logger.error("probe %s raised unexpectedly:\n%s", target.url, scrub(trace, target))
        sample = Sample(ok=False, error=describe_error(exc), failure=classify(exc))
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    if sample.ok and sample.latency_ms is None:
        # A module that reports no latency gets the time around its call.
        sample = sample.model_copy(update={"latency_ms": elapsed_ms})
    if not sample.ok and sample.error is None:
        sample = sample.model_copy(update={"error": "failed"})
    if not sample.ok and sample.failure is None:
        sample = sample.model_copy(update={"failure": "other"})
    if sample.ok and sample.failure is not None:
        sample = sample.model_copy(update={"failure": None})
    if target.secrets():
        sample = sample.model_copy(
            update={
                "error": scrub(sample.error, target),
                "details": scrub_details(sample.details, target),
            }
        )
    return sample


def summarize(target: Target, config: ProbeConfig, samples: Sequence[Sample]) -> ProbeResult:
    """The section 4 result for the samples taken against ``target``."""
    answered = [s for s in samples if s.ok]
    latencies = [s.latency_ms for s in answered if s.latency_ms is not None]
    medians = stats.phase_medians(answered)
    # The contract's phases_ms has exactly its five keys; a protocol's own
    # phases (a WebSocket's upgrade and echo) are reported, as medians too, in
    # details as "<name>_ms".
    phases = {name: medians[name] for name in PHASES}
    # DNS is resolved once, by the guard, not per sample.
    phases["dns"] = round(target.dns_ms, 3) if target.dns_ms is not None else None
    jitter = stats.jitter(latencies)
    details: dict[str, Any] = {}
    for sample in answered or list(samples[-1:]):
        details.update(round_ms(sample.details))
    details.update({f"{name}_ms": v for name, v in medians.items() if name not in PHASES})
    failures = [s.error or "failed" for s in samples if not s.ok]
    if failures and answered:
        details["sample_errors"] = dict(Counter(failures))
    error: str | None = None
    failure: Failure | None = None
    if not answered:
        error = most_common(failures) if failures else "no samples taken"
        # The kind of the samples whose error is reported, so the two agree.
        kinds = [s.failure for s in samples if not s.ok and (s.error or "failed") == error]
        failure = next((k for k in reversed(kinds) if k is not None), "other")
    return ProbeResult(
        kind=REGISTRY[target.scheme].kind,
        target=target.url,
        address=target.address,
        ok=bool(answered),
        samples=len(samples),
        succeeded=len(answered),
        loss=round(stats.loss(len(samples), len(answered)), 4),
        latency_ms=stats.latency_stats(latencies),
        jitter_ms=round(jitter, 3) if jitter is not None else None,
        phases_ms=phases,
        throughput_bps=stats.throughput_bps(answered) if config.throughput else None,
        details=details,
        error=error,
        failure=failure,
    )


def round_ms(value: Any, key: str = "") -> Any:
    """Times in ``details`` (keys ending in ``_ms``) rounded to the microsecond like the rest."""
    if isinstance(value, float) and key.endswith("_ms"):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: round_ms(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [round_ms(v, key) for v in value]
    return value


def most_common(errors: Sequence[str]) -> str:
    """The most frequent error; among equals, the one seen last."""
    counts = Counter(errors)
    top = max(counts.values())
    return next(e for e in reversed(errors) if counts[e] == top)


def unresolved_result(url: str, reason: str) -> ProbeResult:
    """The result for a name that did not resolve: nothing was sampled (failure ``dns``)."""
    parsed = parse_url(url)
    return ProbeResult(
        kind=REGISTRY[parsed.scheme].kind,
        target=parsed.masked_url,
        address=None,
        ok=False,
        samples=0,
        succeeded=0,
        loss=1.0,
        error=reason,
        failure="dns",
    )


async def run_probe(
    url: str,
    config: ProbeConfig,
    *,
    allowed_networks: AllowedNetworks,
    on_sample: SampleCallback | None = None,
    on_target: TargetCallback | None = None,
) -> ProbeResult:
    """Probe ``url`` ``config.count`` times and summarise.

    ``allowed_networks``: the networks beyond public addresses the probe may
    reach (``"127.0.0.0/8,::1/128"``, a sequence of CIDR strings or
    ``ipaddress`` networks; empty allows public addresses only). Metadata
    addresses stay refused whatever it says.

    Raises GuardError when the URL is invalid or the target is not allowed
    (nothing is sent then; NotAllowedError for the latter). Every other
    failure is reported in the result, with its kind in ``failure``.
    ``on_target(target)`` is called once the target is resolved and allowed,
    ``on_sample(index, sample)`` as each sample completes. Both run in the
    event loop: keep them cheap and non-blocking (see the module docstring).
    """
    started = time.monotonic()
    end = started + probe_budget_s(config)
    networks = parse_networks(allowed_networks)
    try:
        target = await resolve_target(url, allowed_networks=networks, timeout_s=config.timeout_s)
    except ResolveError as exc:
        return unresolved_result(url, str(exc))
    try:
        fn = probe_function(target.scheme)
        check = target_check(target.scheme)
    except ImportError as exc:
        # A missing client library is the installation's fault, not the target's.
        logger.error("cannot load the %s probe: %s", target.scheme, exc)
        unavailable = Sample(ok=False, error=f"probe unavailable: {exc}", failure="other")
        return summarize(target, config, [unavailable])
    if check is not None:
        try:
            check(target)
        except ProbeError as exc:
            # Wrong for every sample alike: invalid input, refused before any packet.
            raise GuardError(scrub(str(exc), target) or "invalid URL") from None
    if on_target is not None:
        on_target(target)
    logger.debug("probing %s at %s", target.url, target.address)
    interval_s = config.interval_ms / 1000.0
    samples: list[Sample] = []
    slot = time.monotonic()
    for index in range(config.count):
        now = time.monotonic()
        if slot > now:
            await asyncio.sleep(slot - now)
        begin = time.monotonic()
        deadline = min(begin + config.timeout_s, end)
        if begin >= end:
            sample = Sample(ok=False, error=NOT_TAKEN, failure="timeout")
        else:
            sample = await take_sample(fn, target, config, deadline)
        samples.append(sample)
        if on_sample is not None:
            on_sample(index, sample)
        slot = max(slot + interval_s, time.monotonic())
    return summarize(target, config, samples)


def run_probe_sync(
    url: str,
    config: ProbeConfig,
    *,
    allowed_networks: AllowedNetworks,
    on_sample: SampleCallback | None = None,
    on_target: TargetCallback | None = None,
) -> ProbeResult:
    """:func:`run_probe` in a fresh event loop, for the command line and Celery.

    The callbacks still run inside that loop (in the calling thread).
    """
    return asyncio.run(
        run_probe(
            url,
            config,
            allowed_networks=allowed_networks,
            on_sample=on_sample,
            on_target=on_target,
        )
    )


def refused_result(url: str, reason: str, failure: Failure = "not_allowed") -> ProbeResult:
    """The result for a target the guard refused (``not_allowed``) or an invalid URL."""
    try:
        parsed = parse_url(url)
        kind, target = REGISTRY[parsed.scheme].kind, parsed.masked_url
    except GuardError:
        kind, target = "invalid", mask_url(url)
    return ProbeResult(
        kind=kind,
        target=target,
        ok=False,
        samples=0,
        succeeded=0,
        loss=1.0,
        details={"refused": True},
        error=reason,
        failure=failure,
    )


async def run_many(
    urls: Sequence[str],
    config: ProbeConfig,
    *,
    allowed_networks: AllowedNetworks,
    on_sample: ManySampleCallback | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[ProbeResult]:
    """Probe many targets concurrently in this event loop; results in order.

    A refused or invalid URL gives a result with ``details.refused``, the
    reason in ``error`` and ``failure`` ``not_allowed`` (or ``other`` for an
    invalid URL) instead of stopping the others. ``on_sample(target_index,
    index, sample)`` runs in the event loop like :func:`run_probe`'s.

    The targets' schedules are staggered evenly across one interval: started
    in the same instant, every sample of every target would fall due together
    and each would be timed while the loop serves all the others (on a
    2-core machine, 200 simultaneous connects inflated a 0.2 ms connect to
    over 100 ms). Spread out, the loop meets each sample as it comes.
    """
    gate = asyncio.Semaphore(concurrency)
    step_s = config.interval_ms / 1000.0 / max(len(urls), 1)
    networks = parse_networks(allowed_networks)

    async def one(index: int, url: str) -> ProbeResult:
        await asyncio.sleep(index * step_s)
        report: SampleCallback | None = None
        if on_sample is not None:
            callback = on_sample

            def report(sample_index: int, sample: Sample) -> None:
                callback(index, sample_index, sample)

        async with gate:
            try:
                return await run_probe(url, config, allowed_networks=networks, on_sample=report)
            except NotAllowedError as exc:
                return refused_result(url, str(exc))
            except GuardError as exc:
                return refused_result(url, str(exc), failure="other")

    return list(await asyncio.gather(*(one(i, url) for i, url in enumerate(urls))))


def run_many_sync(
    urls: Sequence[str],
    config: ProbeConfig,
    *,
    allowed_networks: AllowedNetworks,
    on_sample: ManySampleCallback | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[ProbeResult]:
    """:func:`run_many` in a fresh event loop."""
    return asyncio.run(
        run_many(
            urls,
            config,
            allowed_networks=allowed_networks,
            on_sample=on_sample,
            concurrency=concurrency,
        )
    )
