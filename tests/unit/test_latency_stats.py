"""The latency statistics, checked against independent computations (statistics.quantiles, hand values)."""

import math
import random
import statistics

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import (
    SUMMARY_KEYS,
    percentile,
    percentile_of_sorted,
    ratio,
    summarize,
)


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7, 10, 19, 20, 21, 50, 99, 100, 101, 257])
def test_percentiles_match_statistics_quantiles_inclusive(size):
    rng = random.Random(size)
    data = [rng.lognormvariate(5, 0.4) for _ in range(size)]
    # The documented method: statistics.quantiles(n=100, method="inclusive") gives p1..p99.
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for q, expected in enumerate(cuts, start=1):
        assert percentile(data, q) == pytest.approx(expected, rel=1e-12, abs=1e-9), q


def test_percentiles_with_ties_and_integers():
    data = [5, 1, 3, 3, 3, 9, 1, 7]
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    for q, expected in enumerate(cuts, start=1):
        assert percentile(data, q) == pytest.approx(expected)


def test_percentile_hand_values():
    # Type 7 on [1, 2, 3, 4]: h = 3q/100; p95 -> h = 2.85 -> 3 + 0.85 * (4 - 3) = 3.85.
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)
    assert percentile([1, 2], 50) == 1.5
    assert percentile([1, 2, 3], 50) == 2
    assert percentile([10, 20, 30, 40, 50], 25) == 20
    assert percentile([7.5], 99) == 7.5


def test_percentile_ends_are_min_and_max():
    data = [3.0, 1.0, 2.0, 10.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 10.0


def test_percentile_ignores_none_and_does_not_modify_input():
    data = [3.0, None, 1.0, 2.0]
    assert percentile(data, 50) == 2.0
    assert data == [3.0, None, 1.0, 2.0]


@pytest.mark.parametrize(
    ("values", "q", "message"),
    [
        ([], 50, "no values"),
        ([None], 50, "no values"),
        ([1.0], -1, "0..100"),
        ([1.0], 100.5, "0..100"),
        ([1.0, math.nan], 50, "NaN"),
    ],
)
def test_percentile_rejects_what_it_cannot_compute(values, q, message):
    with pytest.raises(ValueError, match=message):
        percentile(values, q)


def test_percentile_of_sorted_requires_data():
    with pytest.raises(ValueError):
        percentile_of_sorted([], 50)


def test_summarize_matches_independent_figures():
    rng = random.Random(7)
    data = [rng.uniform(180, 200) for _ in range(40)]
    summary = summarize(data)
    assert tuple(summary) == SUMMARY_KEYS
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    assert summary["count"] == 40
    assert summary["min"] == min(data)
    assert summary["max"] == max(data)
    assert summary["mean"] == pytest.approx(statistics.fmean(data))
    assert summary["p50"] == pytest.approx(statistics.median(data))
    assert summary["p95"] == pytest.approx(cuts[94])
    assert summary["p99"] == pytest.approx(cuts[98])


def test_summarize_rounds_statistics_not_count():
    summary = summarize([1.23456, 2.34567, None], ndigits=2)
    assert summary == {
        "count": 2,
        "min": 1.23,
        "max": 2.35,
        "mean": 1.79,
        "p50": 1.79,
        "p95": 2.29,
        "p99": 2.33,
    }


def test_summarize_of_nothing_has_every_key():
    assert summarize([]) == {
        "count": 0,
        "min": None,
        "max": None,
        "mean": None,
        "p50": None,
        "p95": None,
        "p99": None,
    }
    assert summarize(iter([None, None]))["count"] == 0


def test_summarize_accepts_a_generator():
    assert summarize(x for x in (1, 2, 3))["p50"] == 2


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [
        (380.0, 190.0, 2.0),
        (190.0, 190.0, 1.0),
        (None, 190.0, None),
        (190.0, None, None),
        (190.0, 0.0, None),
        (190.0, -1.0, None),
    ],
)
def test_ratio(value, baseline, expected):
    assert ratio(value, baseline) == expected


def test_ratio_rounds():
    assert ratio(200.0, 3.0, ndigits=3) == 66.667
