"""Filters that reshape the latency gate's loop results into the tts_benchmark role's run records.

Only reshaping: every figure is the gate's own (plugins/module_utils/latency_stats.py); pooled figures are
computed by the flight_verdict module from the per-request samples kept here.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import SUMMARY_KEYS, summarize

SAMPLE_KEYS = ("index", "ok", "status", "ttfb_ms", "total_ms", "bytes", "audio_seconds", "rtf", "error_kind", "error")
# With the gate's audio_checks, each successful sample also carries what was heard (audio_metrics.measure's
# figures) and the checks it failed; kept only when present.
AUDIO_SAMPLE_KEYS = ("audio", "audio_failures")


def _item(result):
    """(utterance, concurrency) of one loop result: the loop item is [utterance, level] or an utterance."""
    item = result.get("item")
    if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], dict):
        return item[0], int(item[1])
    if isinstance(item, dict):
        return item, 1
    raise AnsibleFilterError(
        f"tts_benchmark_runs: a loop item must be an utterance or [utterance, level], got {item!r}"
    )


def _summary(value):
    if not isinstance(value, dict):
        return summarize(())  # the gate's summary of nothing: count 0, every figure null
    return {key: value.get(key) for key in SUMMARY_KEYS}


def _sample(sample):
    kept = {key: sample.get(key) for key in SAMPLE_KEYS}
    kept.update({key: sample[key] for key in AUDIO_SAMPLE_KEYS if key in sample})
    return kept


def _audio(value):
    """The gate's audio_checks section without what the run record already holds (text, first figures)."""
    if not isinstance(value, dict):
        return None
    return {
        "limits": value.get("limits") or {},
        "failed_requests": int(value.get("failed_requests") or 0),
        "failures": list(value.get("failures") or []),
    }


def tts_benchmark_runs(results):
    """One record per measured (utterance, concurrency): the gate's figures, verdict and samples."""
    if results is None:
        return []
    runs = []
    for result in results:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        utterance, concurrency = _item(result)
        failures = list(result.get("failures") or [])
        passed = bool(result.get("passed"))
        if not passed and not failures:
            # A parameter error or a crash: the gate's message is all there is.
            failures = [str(result.get("msg") or "the latency gate returned no result")]
        runs.append(
            {
                "utterance": utterance.get("id"),
                "concurrency": concurrency,
                "requests": int(result.get("requests") or 0),
                "ok": int(result.get("ok") or 0),
                "error_rate": result.get("error_rate"),
                "errors": result.get("errors") or {},
                "error_messages": result.get("error_messages") or {},
                "passed": passed,
                "failures": failures,
                "ttfa_ms": _summary(result.get("ttfb_ms")),
                "total_ms": _summary(result.get("total_ms")),
                "audio_seconds": _summary(result.get("audio_seconds")),
                "rtf": _summary(result.get("rtf")),
                "elapsed_s": result.get("elapsed_s"),
                # What the gate heard (limits, failed requests): null when it did not listen.
                "audio": _audio(result.get("audio")),
                "samples": [_sample(s) for s in result.get("samples") or []],
            }
        )
    return runs


def tts_benchmark_failures(runs, label, expected=None):
    """Every failure of the run records, prefixed with what failed; a missing measurement is one too."""
    failures = []
    for run in runs or []:
        if run.get("passed"):
            continue
        where = f"{label} {run['utterance']} at concurrency {run['concurrency']}"
        failures += [f"{where}: {failure}" for failure in run.get("failures") or ["failed"]]
        # The gate counts errors by kind; the first message of a kind says what the server answered.
        failures += [
            f"{where}: first {kind} error: {message}" for kind, message in (run.get("error_messages") or {}).items()
        ]

    if expected is not None and len(runs or []) < int(expected):
        failures.append(f"{label}: only {len(runs or [])} of {int(expected)} measurements ran")
    return failures


def tts_benchmark_wavs(results, label):
    """{utterance id: wav/<label>-<id>.wav} for each WAV fetched (relative to the run's artifacts folder)."""
    wavs = {}
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped") or result.get("failed"):
            continue
        item = result.get("item") or {}
        if result.get("dest") and item.get("id"):
            wavs[item["id"]] = f"wav/{label}-{item['id']}.wav"
    return wavs


class FilterModule:
    def filters(self):
        return {
            "tts_benchmark_runs": tts_benchmark_runs,
            "tts_benchmark_failures": tts_benchmark_failures,
            "tts_benchmark_wavs": tts_benchmark_wavs,
        }
