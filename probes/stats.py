"""Statistics over a probe's samples: percentiles, spread, jitter, loss, throughput.

Definitions (also in ``docs/probes.md``):

- **Percentiles** use linear interpolation between closest ranks, the
  definition numpy uses by default (Hyndman and Fan type 7): for sorted values
  ``x[0..n-1]`` and a fraction ``q``, ``h = (n - 1) * q`` and the percentile is
  ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``. The p50
  is therefore the ordinary median.
- **stdev** is the population standard deviation (divide by ``n``), like
  ping's ``mdev``: it describes the samples taken, and is 0 for one sample.
- **Jitter** is the mean absolute difference between consecutive answered
  samples, in the order they were taken: the ``|D(i-1, i)|`` of RFC 3550
  section 6.4.1, averaged plainly instead of with RFC 3550's 1/16 smoothing,
  which over ten samples would mostly report its starting value. None with
  fewer than two answered samples.
- **Loss** is the share of samples that got no correct answer.
- **Phases** are medians over the answered samples that have the phase.
- **Throughput** is total bits moved in the transfer phase divided by the
  total transfer time, over all answered samples (a byte-weighted rate, as
  iperf3 reports it), in bits per second.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

from probes.base import PHASES, LatencyStats, Sample


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 <= q <= 1) by linear interpolation (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, not {q}")
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def pstdev(values: Sequence[float]) -> float:
    """Population standard deviation (divides by n)."""
    mu = mean(values)
    return math.sqrt(math.fsum((v - mu) ** 2 for v in values) / len(values))


def jitter(values: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive values; None for fewer than two."""
    if len(values) < 2:
        return None
    return math.fsum(abs(b - a) for a, b in itertools.pairwise(values)) / (len(values) - 1)


def loss(total: int, answered: int) -> float:
    """Share of samples unanswered; 1.0 when nothing was sampled."""
    if total <= 0:
        return 1.0
    return (total - answered) / total


def latency_stats(values: Sequence[float], digits: int = 3) -> LatencyStats | None:
    """min, p50, p95, p99, max, mean and stdev in ms, rounded to ``digits``."""
    if not values:
        return None
    return LatencyStats(
        min=round(min(values), digits),
        p50=round(percentile(values, 0.50), digits),
        p95=round(percentile(values, 0.95), digits),
        p99=round(percentile(values, 0.99), digits),
        max=round(max(values), digits),
        mean=round(mean(values), digits),
        stdev=round(pstdev(values), digits),
    )


def phase_medians(samples: Iterable[Sample], digits: int = 3) -> dict[str, float | None]:
    """Median of each phase over the samples that have it; None where none do.

    The contract's phases are always present (null when they do not apply);
    extra phases a protocol reports (for example ``handshake``) follow them.
    """
    collected: dict[str, list[float]] = {name: [] for name in PHASES}
    for sample in samples:
        for name, value in sample.phases_ms.items():
            if value is not None:
                collected.setdefault(name, []).append(value)
    return {
        name: (round(median(values), digits) if values else None)
        for name, values in collected.items()
    }


def throughput_bps(samples: Iterable[Sample]) -> float | None:
    """Bits per second over the transfer phase of the given samples."""
    total_bytes = 0
    total_seconds = 0.0
    for sample in samples:
        if sample.transfer_s is not None and sample.transfer_s > 0 and sample.transfer_bytes > 0:
            total_bytes += sample.transfer_bytes
            total_seconds += sample.transfer_s
    if total_seconds <= 0:
        return None
    return round(total_bytes * 8 / total_seconds, 1)
