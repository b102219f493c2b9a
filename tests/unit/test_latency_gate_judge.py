"""The latency gate's judge on plain numbers: limits, failure lines and the summary, without any socket."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate import judge
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.judge import Limits
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.measurement import (
    ERROR_KINDS,
    Measurement,
)
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.params import RequestPlan

URL = "http://127.0.0.1:8080/v1/chat/completions"
SPEECH_LIMITS = {"min_speech_ratio": 0.5}


def ok(index: int, total_ms: float, ttfb_ms: float | None = None, nbytes: int = 100, **extra) -> dict:
    return {
        "index": index,
        "ok": True,
        "status": 200,
        "total_ms": total_ms,
        "ttfb_ms": ttfb_ms,
        "bytes": nbytes,
        "error_kind": None,
        "error": None,
        **extra,
    }


def failed(index: int, kind: str, status: int | None = None, message: str = "boom") -> dict:
    return {
        "index": index,
        "ok": False,
        "status": status,
        "total_ms": 1.0,
        "ttfb_ms": None,
        "bytes": 0,
        "error_kind": kind,
        "error": message,
    }


def run_of(samples: list, **fields) -> Measurement:
    return Measurement(samples=samples, started_at="t0", finished_at="t1", elapsed_s=1.234567, **fields)


NO_LIMITS = Limits()


def result_for(samples: list, limits: Limits = NO_LIMITS, samples_limit: int = 20, run_fields=None, **plan) -> dict:
    """judge_run's result for these samples (the plan's requests default to their number)."""
    plan = RequestPlan(url=URL, requests=plan.pop("requests", len(samples)), **plan)
    return judge.judge_run(run_of(samples, **(run_fields or {})), limits, plan, samples_limit=samples_limit)


# -- the judge is pure ----------------------------------------------------------------------------------


def test_the_judge_and_its_record_import_no_network_code():
    allowed = {"__future__", "dataclasses"}
    package = "ansible_collections.voxtral.deploy.plugins.module_utils."
    for name in ("judge.py", "measurement.py"):
        path = Path(judge.__file__).with_name(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module]
            else:
                continue
            for module in modules:
                inside = module.removeprefix(package)
                assert module in allowed or inside in {
                    "latency_stats",
                    "audio_metrics",
                    "_latency_gate.measurement",
                }, f"{name} imports {module}"


# -- limits -----------------------------------------------------------------------------------------------


def test_threshold_is_the_lower_of_max_p50_and_ratio_times_baseline():
    assert Limits().threshold_ms is None
    assert Limits(max_p50_ms=30).threshold_ms == 30.0
    assert Limits(baseline_p50_ms=20).threshold_ms == 40.0  # the seed's 2x
    assert Limits(baseline_p50_ms=55, max_ratio=1.05).threshold_ms == 57.75
    assert Limits(max_p50_ms=30, baseline_p50_ms=20).threshold_ms == 30.0
    assert Limits(max_p50_ms=50, baseline_p50_ms=20).threshold_ms == 40.0
    assert Limits(max_ratio=1.5).ratio == 1.5 and Limits().ratio == judge.DEFAULT_MAX_RATIO == 2.0


def test_limits_from_the_task_parameters():
    params = dict.fromkeys(
        ("max_p50_ms", "max_p95_ms", "max_p99_ms", "max_ttfb_p50_ms", "max_rtf_p50", "baseline_p50_ms", "max_ratio")
    )
    limits = Limits.from_params({**params, "max_p95_ms": 90.0, "max_error_rate": 0.25, "url": URL})
    assert limits == Limits(max_p95_ms=90.0, max_error_rate=0.25)


def test_numbers_are_shown_with_enough_decimals_to_differ():
    assert judge.fmt_pair(0.3012, 0.30, 2) == ("0.301", "0.300")
    assert judge.fmt_pair(380.04, 380.0, 1) == ("380.04", "380.00")
    assert judge.fmt_pair(412.3, 380.0, 1) == ("412.3", "380.0")
    assert judge.fmt_pair(1.0 + 1e-12, 1.0, 1) == (repr(1.0 + 1e-12), "1.0")
    assert judge.fmt_factor(2) == "2.0" and judge.fmt_factor(1.75) == "1.75" and judge.fmt_factor(1.05) == "1.05"


# -- failure lines ----------------------------------------------------------------------------------------

# 18 fast requests and 2 slow ones: p50 10 ms, p95 60 ms, p99 60 ms (type 7 over 20 values).
SKEWED = [10.0] * 9 + [60.0] + [10.0] * 9 + [60.0]


def test_every_limit_held_passes():
    result = result_for([ok(i, ms) for i, ms in enumerate(SKEWED)], Limits(max_p50_ms=30, max_p95_ms=90))
    assert result["passed"] is True and result["failures"] == []
    assert result["total_ms"]["p50"] == 10.0 and result["total_ms"]["p95"] == 60.0
    assert result["threshold_ms"] == 30.0


def test_each_broken_limit_gets_its_own_line_in_order():
    samples = [ok(i, ms, ttfb_ms=ms / 2) for i, ms in enumerate(SKEWED)]
    limits = Limits(max_p50_ms=5, baseline_p50_ms=4, max_p95_ms=40, max_p99_ms=45, max_ttfb_p50_ms=1)
    assert result_for(samples, limits)["failures"] == [
        "p50 10.0 ms > 5.0 ms",
        "p50 10.0 ms > 8.0 ms (2.0 × baseline 4.0 ms)",
        "p95 60.0 ms > 40.0 ms",
        "p99 60.0 ms > 45.0 ms",
        "time to first byte p50 5.0 ms > 1.0 ms",
    ]


def test_baseline_line_with_an_explicit_ratio_and_the_ratio_figure():
    result = result_for([ok(0, 60.0), ok(1, 60.0)], Limits(baseline_p50_ms=55, max_ratio=1.05))
    assert result["failures"] == ["p50 60.0 ms > 57.8 ms (1.05 × baseline 55.0 ms)"]
    assert result["baseline_p50_ms"] == 55 and result["baseline_ratio"] == round(60 / 55, 4)
    assert result_for([ok(0, 60.0)])["baseline_ratio"] is None


def test_a_close_miss_reads_as_a_miss():
    result = result_for([ok(0, 380.04)], Limits(max_p50_ms=380.0))
    assert result["failures"] == ["p50 380.04 ms > 380.00 ms"]


def test_error_rate_line_names_the_kinds_and_respects_the_limit():
    samples = [ok(i, 10.0) for i in range(15)] + [failed(15 + i, "status", 500) for i in range(4)]
    samples.append(failed(19, "content_type", 200))
    result = result_for(samples)
    assert result["error_rate"] == 0.25
    assert result["errors"] == {"timeout": 0, "connect": 0, "status": 4, "content_type": 1, "other": 0}
    assert result["failures"] == ["error rate 0.25 > 0.00 (5 of 20 failed: 4 status, 1 content type)"]
    assert result_for(samples, Limits(max_error_rate=0.25))["passed"] is True
    assert result_for(samples, Limits(max_error_rate=0.249))["failures"] == [
        "error rate 0.250 > 0.249 (5 of 20 failed: 4 status, 1 content type)"
    ]


def test_nothing_succeeded_says_so_once_without_not_measured_lines():
    samples = [failed(i, "connect") for i in range(3)]
    result = result_for(samples, Limits(max_p50_ms=10, max_ttfb_p50_ms=5))
    assert result["failures"] == ["error rate 1.00 > 0.00 (3 of 3 failed: 3 connect)"]
    tolerated = result_for(samples, Limits(max_error_rate=1.0))
    assert tolerated["failures"] == [f"no successful request (3 sent to {URL})"]
    only_limits = result_for(samples, Limits(max_error_rate=1.0, max_p50_ms=10))
    assert only_limits["failures"] == ["p50 not measured: no successful request"]


def test_a_stop_leads_the_failures_only_when_requests_were_left_unsent():
    reason = "stopped after 3 consecutive errors: connect error to x"
    samples = [failed(i, "connect") for i in range(3)]
    stopped = result_for(samples, run_fields={"stop_reason": reason}, requests=500)
    assert stopped["stopped_early"] is True and stopped["planned"] == 500 and stopped["requests"] == 3
    assert stopped["failures"] == [reason, "error rate 1.00 > 0.00 (3 of 3 failed: 3 connect)"]
    # Stopped on the very last request: nothing was left unsent, so it did not stop early.
    finished = result_for(samples, run_fields={"stop_reason": reason}, requests=3)
    assert finished["stopped_early"] is False and reason not in finished["failures"]


def test_stopped_during_warmup_has_no_error_rate():
    reason = "stopped after 2 consecutive errors: connect error to x"
    warmup = [failed(0, "connect"), failed(1, "connect")]
    result = result_for([], run_fields={"stop_reason": reason, "warmup_samples": warmup}, requests=5)
    assert result["requests"] == 0 and result["error_rate"] is None and result["warmup_errors"] == 2
    assert result["failures"] == [reason]


def test_rtf_line_with_pcm():
    # 48000 bytes per second: 24000 bytes are 0.5 s of audio; 300 ms for it is an RTF of 0.6.
    samples = [ok(i, 300.0, nbytes=24000) for i in range(3)]
    result = result_for(samples, Limits(max_rtf_p50=0.3), bytes_per_second=48000)
    assert result["audio_seconds"]["p50"] == 0.5 and result["rtf"]["p50"] == 0.6
    assert result["failures"] == ["RTF p50 0.60 > 0.30"]
    assert result["samples"][0]["audio_seconds"] == 0.5 and result["samples"][0]["rtf"] == 0.6
    assert "rtf" not in result_for(samples)  # without pcm, no audio figures


def test_audio_failures_name_the_first_failing_request_and_how_many_failed():
    audio = {"utterance": "deploy-gate", "text": "hi", "limits": SPEECH_LIMITS}
    samples = [
        ok(0, 300.0, nbytes=24000, audio={"speech_ratio": 0.9}),
        ok(1, 300.0, nbytes=24000, audio={"speech_ratio": 0.1}),
        failed(2, "timeout"),
        ok(3, 300.0, nbytes=24000, audio={"speech_ratio": 0.2}),
    ]
    result = result_for(samples, Limits(max_error_rate=0.5), bytes_per_second=48000, audio=audio)
    heard = result["audio"]
    assert heard["figures"] == {"speech_ratio": 0.9} and heard["failed_requests"] == 2
    assert heard["utterance"] == "deploy-gate" and heard["limits"] == SPEECH_LIMITS
    assert [line.rsplit(" (request ", 1)[1] for line in heard["failures"]] == ["1)", "3)"]
    [line] = result["failures"]
    assert line.startswith("audio of request 1: deploy-gate: speech ratio ")
    assert line.endswith("(min_speech_ratio) (2 of 3 responses failed an audio check)")


def test_speech_that_passes_every_audio_limit_adds_no_line():
    audio = {"utterance": "gate", "text": None, "limits": SPEECH_LIMITS}
    samples = [ok(0, 300.0, nbytes=24000, audio={"speech_ratio": 0.9})]
    result = result_for(samples, bytes_per_second=48000, audio=audio)
    assert result["passed"] is True and result["audio"]["failures"] == []
    assert result["samples"][0]["audio_failures"] == []


# -- the summary ------------------------------------------------------------------------------------------


def test_the_summary_counts_and_figures():
    samples = [ok(0, 12.3456789, ttfb_ms=2.0, nbytes=10), failed(1, "status", 503), ok(2, 20.0, nbytes=30)]
    result = result_for(samples, Limits(max_error_rate=0.5), method="POST", concurrency=2, requests=3)
    assert (result["url"], result["method"], result["concurrency"]) == (URL, "POST", 2)
    assert (result["requests"], result["planned"], result["ok"]) == (3, 3, 2)
    assert result["status_codes"] == {"200": 2, "503": 1}
    assert result["error_rate"] == 0.3333
    assert set(result["errors"]) == set(ERROR_KINDS)
    assert result["total_ms"] == {
        "count": 2,
        "min": 12.346,
        "max": 20.0,
        "mean": 16.173,
        "p50": 16.173,
        "p95": 19.617,
        "p99": 19.923,
    }
    assert result["ttfb_ms"]["count"] == 1 and result["ttfb_ms"]["p50"] == 2.0
    assert result["bytes"]["p50"] == 20.0 and result["bytes_total"] == 40
    assert result["passed"] is True and result["stopped_early"] is False
    assert (result["started_at"], result["finished_at"], result["elapsed_s"]) == ("t0", "t1", 1.2346)


def test_first_error_message_per_kind_is_passed_through():
    messages = {"status": "status 503 from x (expected 200)"}
    result = result_for([failed(0, "status", 503)], run_fields={"error_messages": messages})
    assert result["error_messages"] == messages


def test_samples_are_rounded_and_limited():
    samples = [ok(i, 10.123456789, ttfb_ms=1.0004999) for i in range(5)]
    result = result_for(samples, samples_limit=2)
    assert [s["index"] for s in result["samples"]] == [0, 1]
    assert result["samples"][0]["total_ms"] == 10.123 and result["samples"][0]["ttfb_ms"] == 1.0
    assert samples[0]["total_ms"] == 10.123456789  # the run's own samples keep every digit
    assert result_for(samples, samples_limit=0)["samples"] == []


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_every_error_kind_is_counted_and_named(kind):
    result = result_for([failed(0, kind)])
    assert result["errors"][kind] == 1
    assert result["failures"] == [f"error rate 1.00 > 0.00 (1 of 1 failed: 1 {kind.replace('_', ' ')})"]
