"""Statistics with values computed by hand."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.base import Sample
from probes.stats import (
    jitter,
    latency_stats,
    loss,
    mean,
    median,
    percentile,
    phase_medians,
    pstdev,
    throughput_bps,
)

TEN = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]  # 1..10, shuffled


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.0, 1.0),
        (0.5, 5.5),  # h = 4.5: halfway between 5 and 6
        (0.95, 9.55),  # h = 8.55: 9 + 0.55 * (10 - 9)
        (0.99, 9.91),  # h = 8.91
        (1.0, 10.0),
        (0.25, 3.25),  # h = 2.25: 3 + 0.25
    ],
)
def test_percentile_interpolates_linearly_like_numpy(q: float, expected: float) -> None:
    assert percentile(TEN, q) == pytest.approx(expected)


def test_percentile_of_uneven_gaps() -> None:
    values = [1.0, 2.0, 4.0, 8.0, 16.0]
    # p95: h = 4 * 0.95 = 3.8, between 8 and 16: 8 + 0.8 * 8 = 14.4
    assert percentile(values, 0.95) == pytest.approx(14.4)
    # p50 of an odd count is the middle value.
    assert median(values) == 4.0


def test_percentile_of_one_value_is_that_value() -> None:
    assert [percentile([7.5], q) for q in (0, 0.5, 0.99, 1)] == [7.5, 7.5, 7.5, 7.5]


@pytest.mark.parametrize("q", [-0.1, 1.1])
def test_percentile_rejects_fractions_outside_zero_one(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(TEN, q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_mean_and_population_stdev() -> None:
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    assert mean(values) == 5.0
    # Deviations squared: 9+1+1+1+0+0+4+16 = 32; 32 / 8 = 4; sqrt = 2.
    assert pstdev(values) == 2.0
    assert pstdev([3.0]) == 0.0


def test_jitter_is_the_mean_absolute_consecutive_difference() -> None:
    # |3-1| + |2-3| + |6-2| = 2 + 1 + 4 = 7 over 3 differences.
    assert jitter([1.0, 3.0, 2.0, 6.0]) == pytest.approx(7 / 3)
    # Order matters: the same values sorted have a smaller jitter (5 / 3).
    assert jitter([1.0, 2.0, 3.0, 6.0]) == pytest.approx(5 / 3)
    assert jitter([4.0, 4.0, 4.0]) == 0.0
    assert jitter([4.0]) is None
    assert jitter([]) is None


def test_loss() -> None:
    assert loss(10, 10) == 0.0
    assert loss(9, 6) == pytest.approx(1 / 3)
    assert loss(4, 0) == 1.0
    assert loss(0, 0) == 1.0


def test_latency_stats_by_hand() -> None:
    stats = latency_stats(TEN)
    assert stats is not None
    assert stats.model_dump() == {
        "min": 1.0,
        "p50": 5.5,
        "p95": 9.55,
        "p99": 9.91,
        "max": 10.0,
        "mean": 5.5,
        # Population variance of 1..10 is (10^2 - 1) / 12 = 8.25.
        "stdev": round(math.sqrt(8.25), 3),
    }
    assert latency_stats([]) is None


def test_phase_medians_skip_missing_phases_and_keep_extra_ones() -> None:
    samples = [
        Sample(phases_ms={"connect": 1.0, "tls": None, "handshake": 5.0}),
        Sample(phases_ms={"connect": 3.0, "tls": 2.0}),
        Sample(phases_ms={"connect": 2.0, "tls": 4.0}),
    ]
    assert phase_medians(samples) == {
        "dns": None,
        "connect": 2.0,
        "tls": 3.0,  # median of 2 and 4; the None does not count
        "ttfb": None,
        "transfer": None,
        "handshake": 5.0,
    }


def test_throughput_is_total_bits_over_total_transfer_time() -> None:
    samples = [
        Sample(transfer_bytes=1_000_000, transfer_s=1.0),
        Sample(transfer_bytes=3_000_000, transfer_s=0.5),
        Sample(transfer_bytes=0, transfer_s=None),  # no transfer phase: ignored
    ]
    # 4 MB in 1.5 s = 21.33 Mbit/s (not 28, the mean of the rates 8 and 48).
    assert throughput_bps(samples) == pytest.approx(32_000_000 / 1.5, abs=0.1)
    assert throughput_bps([Sample()]) is None


# --- Properties, cross-checked with the standard library ----------------------------------

# Latencies as probes produce them: milliseconds with nanosecond resolution.
latencies = st.lists(
    st.integers(0, 10**12).map(lambda ns: ns / 1e6),
    min_size=1,
    max_size=200,
)


@given(latencies)
def test_median_mean_and_stdev_agree_with_the_statistics_module(values: list[float]) -> None:
    assert median(values) == pytest.approx(statistics.median(values), rel=1e-9, abs=1e-9)
    assert mean(values) == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-9)
    assert pstdev(values) == pytest.approx(statistics.pstdev(values), rel=1e-6, abs=1e-6)


@given(latencies)
def test_percentiles_agree_with_statistics_quantiles_inclusive(values: list[float]) -> None:
    # statistics.quantiles(method="inclusive") is the same type 7 definition.
    if len(values) < 2:
        return
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 25, 50, 95, 99):
        assert percentile(values, q / 100) == pytest.approx(cuts[q - 1], rel=1e-9, abs=1e-9)


@given(latencies, st.floats(0, 1), st.floats(0, 1))
def test_percentiles_are_ordered_and_within_the_range(
    values: list[float], a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert min(values) <= percentile(values, low) <= percentile(values, high) <= max(values)


@given(latencies)
def test_jitter_ignores_direction_and_is_zero_only_for_a_flat_series(values: list[float]) -> None:
    forward, backward = jitter(values), jitter(values[::-1])
    if len(values) < 2:
        assert forward is None
        return
    assert forward == pytest.approx(backward)
    assert (forward == 0) == (len(set(values)) == 1)
