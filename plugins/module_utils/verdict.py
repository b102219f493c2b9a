"""The verdict of a run (the seed's verdict JSON, written for every run): its sections and the decision.

Pure standard library, shipped with the ``flight_verdict`` module (``from …module_utils.verdict import
...``). Statistics come from ``latency_stats`` (the gate's own), never from a second implementation; the
pages made from a verdict (report.md, ab.md, ab.html) are ``verdict_pages``'s.

Inputs are what the playbooks already hold: the phases they recorded (status and error), the host's flight
state read before and after the run, the release the run built, and the ``tts_benchmark`` role's result
(with what the latency gate heard in each answer: ``audio_metrics``'s figures per request), and the speaker
similarity the module measured on the controller (``speaker_similarity``), if any.
``schemas/verdict.schema.json`` describes the output; the tests validate produced verdicts against it.
"""

from __future__ import annotations

import math

from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import DEFAULT_LIMITS as AUDIO_LIMITS
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import check as audio_check
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import summarize

# 2: the audio section (what was heard per system and utterance, the speaker similarity).
SCHEMA_VERSION = 2
VERDICTS = ("go", "no-go", "deferred")
STATUSES = ("passed", "failed", "skipped", "not_run")
KINDS = ("flight", "benchmark")

# The seed's phases (shared/seed/): 0 baseline, 1-2 the runtime started, 3 benchmark, 4 A/B, 5 post-flight.
PHASES = (
    ("deploy", "0-2", "Gemma baseline, vllm-omni build, Gemma paused, Voxtral started and gated"),
    ("benchmark", "3", "benchmark utterances against Voxtral"),
    ("ab", "4", "A/B against the current TTS"),
    ("rollback", "5", "post-flight: Voxtral stopped, Gemma restored and gated against its baseline"),
)
PHASE_NAMES = tuple(name for name, _seed, _meaning in PHASES)
SEED_PHASES = {name: seed for name, seed, _meaning in PHASES}
# The phases a kind of run is made of; the others are "not_run" and make a clean run "deferred".
KIND_PHASES = {
    "flight": ("deploy", "benchmark", "ab", "rollback"),
    "benchmark": ("benchmark", "ab"),
}
# The seed calls pausing Gemma for the flight "pause-gemma".
USER_MODES = {"pause": "pause-gemma", "coexist": "coexist"}
MS = 3
UNITLESS = 4
# The audio figures the verdict carries per utterance (audio_metrics.measure's), medians over its answers.
AUDIO_FIGURES = (
    "speech_ratio",
    "leading_silence_s",
    "trailing_silence_s",
    "clipping_ratio",
    "loudness_lufs",
    "peak_dbfs",
    "duration_s",
    "expected_duration_s",
    "duration_ratio",
    "model_speech_ratio",
)
AUDIO_DIGITS = 6  # a clipping ratio of 1e-4 against a limit of 1e-3 must not read as 0
# How many distinct failure messages an utterance keeps (the gate's, naming the figure and the limit).
AUDIO_MESSAGES = 3


def _changed(after: dict, before: dict, key: str) -> bool:
    """Whether the run wrote ``key`` (a timestamp): present after it and different from before it."""
    return after.get(key) is not None and after.get(key) != before.get(key)


def _number(value, ndigits: int | None = None):
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return round(number, ndigits) if ndigits is not None else number


def _bool(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def fmt(value, decimals: int = 1, unit: str = "") -> str:
    """A figure as the reasons and the pages print it: ``decimals`` places and ``unit``, n/a when unknown."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{decimals}f}{unit}"
    return f"{value}{unit}"


# -- the sections of the verdict ---------------------------------------------------------------------------


def gemma_impact(
    state_before: dict | None, state_after: dict | None, gemma_mode: str | None, written: dict | None = None
) -> dict:
    """What the run cost Gemma, from the host's state file before and after it.

    Only what this run wrote counts: a post-flight gate or a baseline recorded by an earlier run is not this
    run's. ``written`` is the run's own record of the gemma timestamps it wrote (the gemma role's
    ``gemma_run_stamps``: baseline_at, paused_at, restored_at, post_flight_at); without it, a timestamp that
    differs between the two snapshots counts as this run's. ``outage_duration_minutes`` is the outage this run ended
    by restoring Gemma (``paused_before_this_run`` when an earlier run paused it), 0 when Gemma served
    throughout, and null while Gemma is still paused (the outage has not ended).
    """
    before = (state_before or {}).get("gemma") or {}
    after = (state_after or {}).get("gemma") or {}
    paused_now = bool(after.get("paused"))

    def this_run(key: str) -> bool:
        return key in written if written is not None else _changed(after, before, key)

    paused_this_run = this_run("paused_at")
    post_flight_this_run = this_run("post_flight_at")

    # The outage this run ended (its own pause, or one an earlier run left behind), none while Gemma is still
    # paused (it has not ended), and 0 when Gemma was serving throughout.
    outage_seconds = None
    if not paused_now:
        if this_run("restored_at"):
            outage_seconds = _number(after.get("outage_seconds"))
        elif not paused_this_run:
            outage_seconds = 0.0

    post = after if post_flight_this_run else {}
    return {
        "baseline_p50_ms": _number(after.get("baseline_p50_ms"), MS),
        "baseline_at": after.get("baseline_at"),
        "baseline_from_this_run": this_run("baseline_at"),
        # The limit this run's post-flight gate applied (the baseline's unless overridden), else the baseline's.
        "abort_threshold_ms": _number(post.get("post_flight_threshold_ms", after.get("abort_threshold_ms")), MS),
        "post_flight_p50_ms": _number(post.get("post_flight_p50_ms"), MS),
        "post_flight_at": post.get("post_flight_at"),
        "drift_ratio": _number(post.get("drift_ratio"), UNITLESS),
        "outage_seconds": outage_seconds,
        "outage_duration_minutes": round(outage_seconds / 60, 2) if outage_seconds is not None else None,
        "paused_now": paused_now,
        "paused_at": after.get("paused_at") if (paused_now or outage_seconds) else None,
        "paused_before_this_run": bool(paused_now or outage_seconds) and not paused_this_run,
        "user_mode": USER_MODES.get(gemma_mode or "", gemma_mode or None),
        "post_flight_gate_passed": _bool(post.get("post_flight_gate_passed")) if post else None,
    }


def build_info(release: dict | None, requested: dict | None = None) -> dict:
    """The vllm-omni build: version, ref, SHA and each PR applied or skipped, and why (release.json)."""
    requested = {k: v for k, v in (requested or {}).items() if v not in (None, "")}
    if not release:
        return {
            "built": False,
            "vllm_omni_version": None,
            "ref": None,
            "sha": None,
            "profile": requested.get("profile"),
            "release": None,
            "patches": [],
            "requested": requested,
        }
    patches = []
    for patch in release.get("patches") or []:
        status = patch.get("status")
        patches.append(
            {
                "pr": patch.get("pr"),
                "status": status,
                "applied": status == "applied",
                "reason": patch.get("reason"),
                "head_sha": patch.get("head_sha"),
            }
        )
    return {
        "built": True,
        "vllm_omni_version": release.get("vllm_omni_version") or release.get("version"),
        "ref": release.get("ref"),
        "sha": release.get("sha"),
        "patched_sha": release.get("patched_sha"),
        "profile": release.get("profile"),
        "release": release.get("release"),
        "vllm_version": release.get("vllm_version"),
        "stage_config_flag": release.get("stage_config_flag"),
        "built_at": release.get("built_at"),
        "patches": patches,
        "requested": requested,
    }


def ok_samples(runs: list, concurrency: int | None = None) -> list:
    """The successful requests of ``runs`` (at one concurrency, or all)."""
    samples = []
    for run in runs or []:
        if concurrency is not None and run.get("concurrency") != concurrency:
            continue
        samples.extend(s for s in run.get("samples") or [] if s.get("ok", True))
    return samples


def pooled(runs: list, concurrency: int | None = None) -> dict:
    """Every successful request of ``runs`` (at one concurrency, or all) as latency_stats summaries."""
    samples = ok_samples(runs, concurrency)
    requests = sum(int(r.get("requests") or 0) for r in runs or [] if concurrency in (None, r.get("concurrency")))
    ok = sum(int(r.get("ok") or 0) for r in runs or [] if concurrency in (None, r.get("concurrency")))
    return {
        "requests": requests,
        "errors": requests - ok,
        "ttfa_ms": summarize((s.get("ttfb_ms") for s in samples), MS),
        "total_ms": summarize((s.get("total_ms") for s in samples), MS),
        "audio_seconds": summarize((s.get("audio_seconds") for s in samples), UNITLESS),
        "rtf": summarize((s.get("rtf") for s in samples), UNITLESS),
    }


def concurrency_levels(runs: list) -> list:
    return sorted({int(r["concurrency"]) for r in runs or [] if r.get("concurrency") is not None})


def voxtral_figures(benchmark: dict | None, state_after: dict | None, run_id: str | None) -> dict:
    """Voxtral's headline figures (lowest concurrency of the benchmark, else the deploy gate) and the detail."""
    voxtral_state = (state_after or {}).get("voxtral") or {}
    deploy_gate = None
    if voxtral_state.get("run_id") == run_id and voxtral_state.get("ttfa_p50_ms") is not None:
        deploy_gate = {
            "ttfa_p50_ms": _number(voxtral_state.get("ttfa_p50_ms"), MS),
            "ttfa_p95_ms": _number(voxtral_state.get("ttfa_p95_ms"), MS),
            "rtf_p50": _number(voxtral_state.get("rtf_p50"), UNITLESS),
        }
    runs = (benchmark or {}).get("runs") or []
    levels = concurrency_levels(runs)
    per_concurrency = {str(level): pooled(runs, level) for level in levels}
    figures = {
        "ttfa_p50_ms": None,
        "ttfa_p95_ms": None,
        "rtf_p50": None,
        "source": None,
        "per_concurrency": per_concurrency,
        "deploy_gate": deploy_gate,
        "endpoint": (benchmark or {}).get("endpoint"),
    }
    headline = per_concurrency.get(str(levels[0])) if levels else None
    if headline and headline["ttfa_ms"]["count"]:
        figures.update(
            ttfa_p50_ms=headline["ttfa_ms"]["p50"],
            ttfa_p95_ms=headline["ttfa_ms"]["p95"],
            rtf_p50=headline["rtf"]["p50"],
            source=f"benchmark, concurrency {levels[0]}, {headline['ttfa_ms']['count']} requests",
        )
    elif deploy_gate:
        figures.update(
            ttfa_p50_ms=deploy_gate["ttfa_p50_ms"],
            ttfa_p95_ms=deploy_gate["ttfa_p95_ms"],
            rtf_p50=deploy_gate["rtf_p50"],
            source="deploy gate",
        )
    return figures


def ab_section(benchmark: dict | None, files: dict) -> dict:
    ab = (benchmark or {}).get("ab")
    if not ab:
        return {
            "configured": False,
            "label": None,
            "url": None,
            "listener_verdict": None,
            "figures": None,
            "per_concurrency": {},
        }
    figures = pooled(ab.get("runs") or [])
    levels = concurrency_levels(ab.get("runs") or [])
    return {
        "configured": True,
        "label": ab.get("label"),
        "url": ab.get("url"),
        "page": files.get("ab_html"),
        "sheet": files.get("ab_md"),
        # No invented quality score: the listener writes theirs into ab.md.
        "listener_verdict": None,
        "figures": {
            "requests": figures["requests"],
            "errors": figures["errors"],
            "ttfa_p50_ms": figures["ttfa_ms"]["p50"],
            "total_p50_ms": figures["total_ms"]["p50"],
            "rtf_p50": figures["rtf"]["p50"],
        },
        "per_concurrency": {str(level): pooled(ab.get("runs") or [], level) for level in levels},
    }


def limit_figure(limit_name: str) -> str:
    """The figure an audio limit bounds: max_trailing_silence_s -> trailing_silence_s (audio_metrics' naming)."""
    return limit_name.split("_", 1)[1]


def _passes(figures: dict, limit_name: str, limit) -> bool:
    """Whether one answer's figures pass one limit, by audio_metrics.check with every other limit off."""
    only = dict.fromkeys(AUDIO_LIMITS) | {limit_name: limit}
    return not audio_check(figures, only)


def _median(values) -> float | None:
    return summarize(values, AUDIO_DIGITS)["p50"]


def audio_utterance(heard: list, limits: dict) -> dict:
    """What was heard of one utterance on one system: the median of each figure over its answers, and each
    check against its limit (passed when no answer failed it; ``worst`` is the answer furthest out)."""
    figures = {}
    for name in AUDIO_FIGURES:
        if any(name in f for f in heard):
            figures[name] = _median(f.get(name) for f in heard)
    checks = []
    for limit_name, limit in limits.items():
        figure = limit_figure(limit_name)
        present = [f for f in heard if figure in f]
        if limit is None or not present:
            continue
        failed = sum(1 for f in present if not _passes(f, limit_name, limit))
        values = [f[figure] for f in present if f[figure] is not None]
        worst = (max if limit_name.startswith("max_") else min)(values) if values else None
        checks.append(
            {
                "check": limit_name,
                "figure": figure,
                "limit": limit,
                "value": figures.get(figure),
                "worst": worst,
                "passed": failed == 0,
                "failed_requests": failed,
            }
        )
    return {
        "requests": len(heard),
        "failed_requests": sum(1 for f in heard if not all(_passes(f, c["check"], c["limit"]) for c in checks)),
        "passed": all(c["passed"] for c in checks) if heard else None,
        "figures": figures,
        "checks": checks,
    }


def audio_system(label: str | None, runs: list, utterances: list, similarity: dict | None = None) -> dict:
    """What the latency gate heard on one system, per utterance (every concurrency level pooled)."""
    checked = [run for run in runs or [] if run.get("audio")]
    limits = {**AUDIO_LIMITS, **((checked[0]["audio"].get("limits") or {}) if checked else {})}
    per_utterance = {}
    for utterance in utterances or []:
        uid = utterance.get("id")
        mine = [run for run in checked if run.get("utterance") == uid]
        if not mine:
            continue
        heard, messages = [], []
        for run in mine:
            for sample in run.get("samples") or []:
                if sample.get("ok", True) and isinstance(sample.get("audio"), dict):
                    heard.append(sample["audio"])
                    messages += [m for m in sample.get("audio_failures") or [] if m not in messages]
        entry = audio_utterance(heard, limits)
        entry["failures"] = messages[:AUDIO_MESSAGES]
        entry["speaker_similarity"] = _number(((similarity or {}).get(label) or {}).get(uid), UNITLESS)
        per_utterance[uid] = entry
    entries = list(per_utterance.values())
    return {
        "label": label,
        "checked": bool(checked),
        "limits": limits if checked else {},
        "requests": sum(e["requests"] for e in entries),
        "failed_requests": sum(e["failed_requests"] for e in entries),
        "passed": all(e["passed"] is not False for e in entries) if checked else None,
        "utterances": per_utterance,
    }


def audio_section(benchmark: dict | None, similarity: dict | None = None) -> dict:
    """Objective A/B numbers: per system and utterance what was heard, and the voices against the reference.

    ``similarity`` is the speaker_similarity module_utils' result (``measured``, ``reason``, ``model``,
    ``reference``, ``scores`` per system label and utterance), None when nothing was asked.
    """
    benchmark = benchmark or {}
    similarity = similarity or {}
    scores = similarity.get("scores") if similarity.get("measured") else None
    utterances = benchmark.get("utterances") or []
    systems = []
    if benchmark.get("runs") is not None:
        label = (benchmark.get("endpoint") or {}).get("label") or "voxtral"
        systems.append(audio_system(label, benchmark.get("runs"), utterances, scores))
    ab = benchmark.get("ab") or {}
    if ab:
        systems.append(audio_system(ab.get("label"), ab.get("runs"), utterances, scores))
    return {
        "systems": systems,
        "speaker_similarity": {
            "measured": bool(similarity.get("measured")),
            "reason": None if similarity.get("measured") else similarity.get("reason") or "no reference voice",
            "model": similarity.get("model"),
            "reference": similarity.get("reference"),
        },
    }


def references(benchmark: dict | None) -> dict:
    benchmark = benchmark or {}
    endpoint = benchmark.get("endpoint") or {}
    ab = benchmark.get("ab") or {}
    utterances = benchmark.get("utterances") or []
    return {
        "voxtral_voice": endpoint.get("voice"),
        "voxtral_voice_kind": endpoint.get("voice_kind"),
        "voxtral_voice_note": endpoint.get("voice_note"),
        "ab_reference": ab.get("reference") or None,
        "utterances_source": benchmark.get("utterances_source"),
        "utterances": [
            {"id": u.get("id"), "length": u.get("length"), "chars": len(u.get("text") or "")} for u in utterances
        ],
    }


# -- phases and the decision ------------------------------------------------------------------------------


def _phase(record: dict | None, default_status: str = "not_run") -> dict:
    record = dict(record or {})
    status = record.get("status") or default_status
    if status not in STATUSES:
        raise ValueError(f"phase status must be one of {', '.join(STATUSES)}, got {status!r}")
    return {
        "status": status,
        "error": record.get("error") or None,
        "note": record.get("note") or None,
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
    }


def normalise_phases(phases: dict | None, benchmark: dict | None, kind: str) -> dict:
    """Every phase with a status; the benchmark phase split into Voxtral's part (3) and the A/B part (4)."""
    phases = dict(phases or {})
    unknown = set(phases) - set(PHASE_NAMES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}: expected {', '.join(PHASE_NAMES)}")
    out = {name: _phase(phases.get(name)) for name in PHASE_NAMES}
    for name in PHASE_NAMES:
        if name not in KIND_PHASES[kind] and name not in phases:
            out[name]["note"] = f"not part of a {kind} run"

    bench = out["benchmark"]
    ab = (benchmark or {}).get("ab")
    if "ab" not in phases:
        if bench["status"] in ("skipped", "not_run"):
            out["ab"].update(status=bench["status"], note=bench["note"])
        elif benchmark is not None and not ab:
            out["ab"].update(status="skipped", note="no second TTS endpoint configured (tts_benchmark_ab_url)")
        elif ab and ab.get("ran") is False:
            out["ab"].update(status="skipped", note="the benchmark failed before the A/B")
        elif ab:
            ab_failures = ab.get("failures") or []
            out["ab"].update(
                status="failed" if ab_failures else "passed",
                error="; ".join(ab_failures) or None,
                note="objective figures only; the listener's verdict goes into ab.md",
            )
        elif bench["status"] == "failed":
            out["ab"].update(status="skipped", note="the benchmark failed before the A/B")
    # A benchmark run whose own (Voxtral) part passed failed in its A/B part: the failure is phase 4's.
    if (
        bench["status"] == "failed"
        and benchmark is not None
        and benchmark.get("endpoint_passed")
        and out["ab"]["status"] == "failed"
    ):
        bench.update(status="passed", error=None)
    for name in PHASE_NAMES:
        out[name]["seed_phase"] = SEED_PHASES[name]
    return out


def decide(
    phases: dict, impact: dict, kind: str, provisional: bool = False
) -> tuple[str, list, str | None, str | None]:
    """(verdict, reasons, failed phase, error). Any failed phase is a no-go; a clean but partial run is deferred."""
    if provisional:
        return (
            "no-go",
            [
                "the run did not finish: the controller stopped or lost the host before writing the final verdict;"
                " the dead-man's switch restores Gemma at its deadline, and rollback-voxtral.yml gives the box back"
            ],
            None,
            "run did not finish",
        )
    failed = [name for name in PHASE_NAMES if phases[name]["status"] == "failed"]
    if failed:
        reasons = [
            f"phase {name} ({phases[name]['seed_phase']}) failed: {phases[name]['error'] or '?'}" for name in failed
        ]
        return "no-go", reasons, failed[0], phases[failed[0]]["error"]
    if impact.get("post_flight_gate_passed") is False:
        return (
            "no-go",
            ["Gemma's post-flight gate failed: p50 above the allowed multiple of its baseline"],
            "rollback",
            "post-flight gate failed",
        )
    missing = [n for n in KIND_PHASES[kind] if phases[n]["status"] == "not_run"]
    outside = [n for n in PHASE_NAMES if n not in KIND_PHASES[kind]]
    if missing or kind != "flight":
        reasons = []
        if missing:
            reasons.append(f"phases not run: {', '.join(missing)}")
        if outside:
            reasons.append(
                f"a {kind} run leaves out {' and '.join(outside)}: the go/no-go needs the whole flight (flight.yml)"
            )
        if impact.get("paused_now"):
            reasons.append("Gemma is still paused: rollback-voxtral.yml gives it back")
        return "deferred", reasons, None, None
    return "go", [], None, None


def _go_reasons(verdict: dict) -> list:
    reasons = []
    vox = verdict["voxtral"]
    if vox["ttfa_p50_ms"] is not None:
        reasons.append(
            f"Voxtral served: time to first audio p50 {fmt(vox['ttfa_p50_ms'], 1)} ms, p95"
            f" {fmt(vox['ttfa_p95_ms'], 1)} ms, RTF p50 {fmt(vox['rtf_p50'], 3)} ({vox['source']})"
        )
    impact = verdict["gemma_impact"]
    if impact["post_flight_p50_ms"] is not None:
        reasons.append(
            f"Gemma back: p50 {fmt(impact['post_flight_p50_ms'], 1)} ms against a baseline of"
            f" {fmt(impact['baseline_p50_ms'], 1)} ms (drift {fmt(impact['drift_ratio'], 2)}x), outage"
            f" {fmt(impact['outage_duration_minutes'], 2)} min"
        )
    if verdict["ab"]["configured"]:
        reasons.append(
            f"A/B against {verdict['ab']['label']}: the listener's verdict is pending ({verdict['ab']['sheet']})"
        )
    return reasons


def build_verdict(
    *,
    kind: str,
    host: str,
    run_id: str,
    timestamp: str,
    phases: dict | None = None,
    state_before: dict | None = None,
    state_after: dict | None = None,
    gemma_mode: str | None = None,
    release: dict | None = None,
    requested_build: dict | None = None,
    benchmark: dict | None = None,
    provisional: bool = False,
    files: dict | None = None,
    gemma_written: dict | None = None,
    speaker_similarity: dict | None = None,
) -> dict:
    """The verdict of one run on one host (see schemas/verdict.schema.json)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    files = dict(files or {})
    state_after = state_after if state_after is not None else state_before
    if kind == "benchmark" and not release:
        # A benchmark measures what is deployed: the release the state file says is serving.
        voxtral_state = (state_after or {}).get("voxtral") or {}
        release = voxtral_state.get("release") if voxtral_state.get("deployed") else None
    normalised = normalise_phases(phases, benchmark, kind)
    impact = gemma_impact(state_before, state_after, gemma_mode, gemma_written)
    verdict_word, reasons, failed_phase, error = decide(normalised, impact, kind, provisional)
    verdict = {
        "schema_version": SCHEMA_VERSION,
        "timestamp": timestamp,
        "host": host,
        "run_id": run_id,
        "kind": kind,
        "provisional": bool(provisional),
        "verdict": verdict_word,
        "reasons": reasons,
        "failed_phase": failed_phase,
        "error": error,
        "build": build_info(release, requested_build),
        "phases": normalised,
        "gemma_impact": impact,
        "voxtral": voxtral_figures(benchmark, state_after, run_id),
        "ab": ab_section(benchmark, files),
        "audio": audio_section(benchmark, speaker_similarity),
        "references": references(benchmark),
        "artifacts": files,
    }
    if verdict_word == "go":
        verdict["reasons"] = _go_reasons(verdict)
    elif verdict_word == "deferred":
        # Why it is deferred first (the verdict line), then what was measured.
        verdict["reasons"] = reasons + _go_reasons(verdict)
    return verdict
