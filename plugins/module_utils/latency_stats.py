"""Latency statistics shared by the latency gate, the TTS benchmark and the report.

Pure standard library: this file is shipped to the target with the modules that import it
(``from …module_utils.latency_stats import summarize``) and must run on any Python 3.10+.

Percentile method: linear interpolation between closest ranks, the "inclusive" method
(Hyndman & Fan type 7; numpy's default ``linear``; ``statistics.quantiles(method="inclusive")``).
For sorted values x[0..n-1] and q in [0, 100]: h = (n - 1) * q / 100, and the result is
x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). p0 is the minimum, p100 the maximum,
and a single value is every percentile of itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

# The percentiles every summary carries; other roles read these keys (p50, p95, p99).
SUMMARY_PERCENTILES = (50, 95, 99)
SUMMARY_KEYS = ("count", "min", "max", "mean", "p50", "p95", "p99")


def _clean(values: Iterable[float | int | None]) -> list[float]:
    """Values as floats, without the ``None`` entries (samples where nothing was measured)."""
    cleaned = []
    for value in values:
        if value is None:
            continue
        number = float(value)
        if math.isnan(number):
            raise ValueError("latency statistics got NaN")
        cleaned.append(number)
    return cleaned


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, got {q:g}")
    return q


def percentile_of_sorted(data: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted, non-empty data (type 7, see the module doc)."""
    if not data:
        raise ValueError("percentile of no values")
    q = _check_q(q)
    position = (len(data) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(data) - 1)
    fraction = position - lower
    return data[lower] + fraction * (data[upper] - data[lower])


def percentile(values: Iterable[float | int | None], q: float) -> float:
    """The q-th percentile (0..100) of values; ``None`` entries are ignored; no values -> ValueError."""
    return percentile_of_sorted(sorted(_clean(values)), q)


def _round(value: float | None, ndigits: int | None) -> float | None:
    if value is None or ndigits is None:
        return value
    return round(value, ndigits)


def summarize(values: Iterable[float | int | None], ndigits: int | None = None) -> dict:
    """``{count, min, max, mean, p50, p95, p99}`` of values (``None`` entries ignored).

    No values gives count 0 and ``None`` for every statistic, so a reader can always index the keys.
    ``ndigits`` rounds the statistics (not the count) for display and JSON.
    """
    data = sorted(_clean(values))
    if not data:
        return dict.fromkeys(SUMMARY_KEYS, None) | {"count": 0}
    summary = {
        "count": len(data),
        "min": data[0],
        "max": data[-1],
        # math.fsum: the mean of many similar floats without accumulated rounding error.
        "mean": math.fsum(data) / len(data),
    }
    for q in SUMMARY_PERCENTILES:
        summary[f"p{q}"] = percentile_of_sorted(data, q)
    return {key: (value if key == "count" else _round(value, ndigits)) for key, value in summary.items()}


def ratio(value: float | None, baseline: float | None, ndigits: int | None = None) -> float | None:
    """value / baseline, or ``None`` when either is unknown or the baseline is not positive."""
    if value is None or baseline is None or baseline <= 0:
        return None
    return _round(value / baseline, ndigits)
