"""The latency gate's judge: a run's samples in, the task's figures, limits and failure lines out.

Pure code (no sockets, no httpx, no clock), so that each rule and each message is tested on plain
numbers (tests/unit/test_latency_gate_judge.py). Percentiles come from latency_stats, audio limits from
audio_metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.measurement import (
    ERROR_KINDS,
    Measurement,
)
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import check as audio_check
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import ratio, summarize

# The seed's rule: abort when p50 is above twice the baseline.
DEFAULT_MAX_RATIO = 2.0
MS = 3  # decimals kept for milliseconds (1 µs)
UNITLESS = 4  # decimals kept for ratios, rates, seconds of audio


@dataclass(frozen=True)
class Limits:
    """The task's thresholds; None is not checked."""

    max_p50_ms: float | None = None
    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_ttfb_p50_ms: float | None = None
    max_rtf_p50: float | None = None
    baseline_p50_ms: float | None = None
    max_ratio: float | None = None  # DEFAULT_MAX_RATIO applies with a baseline
    max_error_rate: float = 0.0

    @classmethod
    def from_params(cls, params: dict) -> Limits:
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    @property
    def ratio(self) -> float:
        """The largest p50 / baseline allowed."""
        return self.max_ratio if self.max_ratio is not None else DEFAULT_MAX_RATIO

    @property
    def threshold_ms(self) -> float | None:
        """The effective p50 limit: the lower of max_p50_ms and ratio x baseline, or None."""
        baseline = self.baseline_p50_ms
        limits = [limit for limit in (self.max_p50_ms, self.ratio * baseline if baseline else None) if limit]
        return round(min(limits), MS) if limits else None


def fmt_pair(value: float, limit: float, decimals: int) -> tuple[str, str]:
    """Both numbers with enough decimals that a broken limit never reads as ``0.13 > 0.13``."""
    for places in range(decimals, decimals + 5):
        shown = f"{value:.{places}f}", f"{limit:.{places}f}"
        if shown[0] != shown[1]:
            return shown
    return f"{value!r}", f"{limit!r}"


def fmt_factor(factor: float) -> str:
    """2 -> '2.0', 1.75 -> '1.75'."""
    return f"{factor:.1f}" if round(factor, 1) == factor else f"{factor:g}"


def add_audio_figures(samples: list, bytes_per_second: int | None, audio: dict | None) -> None:
    """Per successful sample: its audio seconds and RTF (with pcm), its audio failures (with audio_checks)."""
    for s in samples:
        if not s["ok"]:
            continue
        if audio is not None:
            s["audio_failures"] = audio_check(s["audio"], audio["limits"], audio["utterance"])
        if bytes_per_second is not None:
            s["audio_seconds"] = round(s["bytes"] / bytes_per_second, 6)
            s["rtf"] = s["total_ms"] / 1000.0 / s["audio_seconds"]


def figures(
    run: Measurement,
    *,
    url: str,
    method: str,
    concurrency: int,
    planned: int,
    bytes_per_second: int | None = None,
    audio: dict | None = None,
) -> dict:
    """The figures of a run (counts, error rate, latency summaries), before any limit is applied.

    Call add_audio_figures on the samples first when the body is PCM.
    """
    samples = run.samples
    good = [s for s in samples if s["ok"]]
    errors = dict.fromkeys(ERROR_KINDS, 0)
    status_codes: dict[str, int] = {}
    for s in samples:
        if not s["ok"]:
            errors[s["error_kind"]] += 1
        if s["status"] is not None:
            status_codes[str(s["status"])] = status_codes.get(str(s["status"]), 0) + 1
    failed = len(samples) - len(good)
    result = {
        "url": url,
        "method": method,
        "concurrency": concurrency,
        "requests": len(samples),
        "planned": planned,
        "ok": len(good),
        "errors": errors,
        "error_messages": dict(run.error_messages),
        "warmup_errors": sum(1 for s in run.warmup_samples if not s["ok"]),
        "status_codes": status_codes,
        "error_rate": round(failed / len(samples), UNITLESS) if samples else None,
        "total_ms": summarize((s["total_ms"] for s in good), MS),
        "ttfb_ms": summarize((s["ttfb_ms"] for s in good), MS),
        "bytes": summarize((s["bytes"] for s in good), 1),
        "bytes_total": sum(s["bytes"] for s in good),
        "stopped_early": run.stop_reason is not None and len(samples) < planned,
    }
    if bytes_per_second is not None:
        result["audio_seconds"] = summarize((s["audio_seconds"] for s in good), UNITLESS)
        result["rtf"] = summarize((s["rtf"] for s in good), UNITLESS)
    if audio is not None:
        heard_bad = [s for s in good if s["audio_failures"]]
        result["audio"] = {
            **audio,
            "figures": good[0]["audio"] if good else None,
            "failures": [f"{m} (request {s['index']})" for s in heard_bad for m in s["audio_failures"]],
            "failed_requests": len(heard_bad),
        }
    return result


def failures(result: dict, limits: Limits, *, stop_reason: str | None = None, samples: list = ()) -> list:
    """One line per broken limit, with the numbers; empty when the gate passes.

    ``result`` holds the figures (see figures); ``samples`` are the run's, for the first audio failure.
    """
    lines = []
    if stop_reason and result["stopped_early"]:
        lines.append(stop_reason)
    if result["requests"]:
        failed = result["requests"] - result["ok"]
        if result["error_rate"] > limits.max_error_rate:
            kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in result["errors"].items() if n)
            shown = fmt_pair(result["error_rate"], limits.max_error_rate, 2)
            lines.append(f"error rate {shown[0]} > {shown[1]} ({failed} of {result['requests']} failed: {kinds})")

    def over(label, value, limit, unit=" ms", decimals=1, why=""):
        if limit is None:
            return
        if value is None:
            lines.append(f"{label} not measured: no successful request")
        elif value > limit:
            shown = fmt_pair(value, limit, decimals)
            lines.append(f"{label} {shown[0]}{unit} > {shown[1]}{unit}{why}")

    total = result["total_ms"]
    baseline = limits.baseline_p50_ms
    over("p50", total["p50"], limits.max_p50_ms)
    if baseline:
        why = f" ({fmt_factor(limits.ratio)} × baseline {baseline:.1f} ms)"
        over("p50", total["p50"], round(limits.ratio * baseline, MS), why=why)
    over("p95", total["p95"], limits.max_p95_ms)
    over("p99", total["p99"], limits.max_p99_ms)
    over("time to first byte p50", result["ttfb_ms"]["p50"], limits.max_ttfb_p50_ms)
    if "rtf" in result:
        over("RTF p50", result["rtf"]["p50"], limits.max_rtf_p50, unit="", decimals=2)
    if "audio" in result:
        first = next((s for s in samples if s["ok"] and s["audio_failures"]), None)
        if first is not None:
            # The first failing response's every figure; how many responses failed says whether it is a fluke.
            lines.append(
                f"audio of request {first['index']}: {'; '.join(first['audio_failures'])} "
                f"({result['audio']['failed_requests']} of {result['ok']} responses failed an audio check)"
            )
    if result["ok"] == 0 and not lines:
        lines.append(f"no successful request ({result['requests']} sent to {result['url']})")
    # Drop the "not measured" duplicates when nothing succeeded: the error lines already say why.
    if result["ok"] == 0 and len(lines) > 1:
        lines = [line for line in lines if "not measured" not in line] or lines
    return lines


def reported_sample(sample: dict) -> dict:
    """A sample as the result shows it: times rounded to MS, ratios to UNITLESS decimals."""
    rounded = dict(sample)
    for key, places in (("total_ms", MS), ("ttfb_ms", MS), ("audio_seconds", 6), ("rtf", UNITLESS)):
        if rounded.get(key) is not None:
            rounded[key] = round(rounded[key], places)
    return rounded


def judge_run(run: Measurement, limits: Limits, plan, samples_limit: int = 20) -> dict:
    """The task's result for a run: figures, baseline, threshold, failures, passed, timing, samples.

    ``plan`` is the run's params.RequestPlan (url, method, concurrency, requests, bytes_per_second, audio).
    """
    add_audio_figures(run.samples, plan.bytes_per_second, plan.audio)
    result = figures(
        run,
        url=plan.url,
        method=plan.method,
        concurrency=plan.concurrency,
        planned=plan.requests,
        bytes_per_second=plan.bytes_per_second,
        audio=plan.audio,
    )
    result["baseline_p50_ms"] = limits.baseline_p50_ms
    result["baseline_ratio"] = ratio(result["total_ms"]["p50"], limits.baseline_p50_ms, UNITLESS)
    result["threshold_ms"] = limits.threshold_ms
    result["failures"] = failures(result, limits, stop_reason=run.stop_reason, samples=run.samples)
    result["passed"] = not result["failures"]
    result["started_at"] = run.started_at
    result["finished_at"] = run.finished_at
    result["elapsed_s"] = round(run.elapsed_s, UNITLESS)
    result["samples"] = [reported_sample(s) for s in run.samples[:samples_limit]]
    return result
