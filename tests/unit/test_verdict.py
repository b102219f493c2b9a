"""The verdict (module_utils/verdict.py), its schema, its pages (module_utils/verdict_pages.py), and the flight_verdict
module."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import jsonschema
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import summarize
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import (
    build_verdict,
    decide,
    gemma_impact,
    normalise_phases,
)
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict_pages import (
    histogram,
    render_ab_html,
    render_ab_markdown,
    render_report,
    verdict_line,
)
from ansible_collections.voxtral.deploy.plugins.modules import flight_verdict

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "verdict.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

SHA = "ee678cf3c15b64619aeb73040ceee4da99b80abd"
RELEASE = {
    "version": "0.30.0",
    "vllm_omni_version": "0.30.0",
    "ref": "v0.30.0",
    "sha": SHA,
    "patched_sha": SHA,
    "profile": "gb10-0.30",
    "release": "0.30.0-ee678cf3c15b-939bd5b5",
    "vllm_version": "0.30.0",
    "stage_config_flag": "--deploy-config",
    "built_at": "2026-11-25T18:09:10Z",
    "patches": [
        {"pr": 2405, "status": "superseded", "reason": "the same fix shipped as #3232 in 0.20.0", "head_sha": None},
        {"pr": 2790, "status": "applied", "reason": "cherry-picked", "head_sha": "42744c3d" + "0" * 32},
    ],
}
BEFORE = {
    "gemma": {
        "baseline_p50_ms": 185.0,
        "baseline_at": "2026-11-24T10:00:00Z",
        "paused": False,
        "paused_at": "2026-11-24T10:00:05Z",
        "restored_at": "2026-11-24T10:10:05Z",
        "outage_seconds": 600,
        "post_flight_at": "2026-11-24T10:10:30Z",
        "post_flight_p50_ms": 200.0,
        "drift_ratio": 1.08,
        "post_flight_gate_passed": True,
    }
}
AFTER = {
    "gemma": {
        "baseline_p50_ms": 190.4,
        "baseline_at": "2026-11-25T18:09:52Z",
        "abort_threshold_ms": 380.8,
        "paused": False,
        "paused_at": "2026-11-25T18:10:06Z",
        "restored_at": "2026-11-25T18:20:06Z",
        "outage_seconds": 600,
        "post_flight_at": "2026-11-25T18:20:19Z",
        "post_flight_p50_ms": 190.0,
        "drift_ratio": 0.9979,
        "post_flight_gate_passed": True,
    },
    "voxtral": {
        "deployed": False,
        "run_id": "R1",
        "ttfa_p50_ms": 121.5,
        "ttfa_p95_ms": 130.25,
        "rtf_p50": 0.21,
        "release": RELEASE,
    },
}


def samples(ttfb, total, audio):
    return [
        {"ok": True, "ttfb_ms": t, "total_ms": tt, "audio_seconds": audio, "rtf": tt / 1000 / audio}
        for t, tt in zip(ttfb, total, strict=True)
    ]


def run(utterance, concurrency, ttfb, total, audio, passed=True, failures=()):
    data = samples(ttfb, total, audio)
    return {
        "utterance": utterance,
        "concurrency": concurrency,
        "requests": len(data),
        "ok": len(data),
        "error_rate": 0.0,
        "passed": passed,
        "failures": list(failures),
        "ttfa_ms": summarize(ttfb, 3),
        "total_ms": summarize(total, 3),
        "audio_seconds": summarize([audio] * len(data), 4),
        "rtf": summarize([s["rtf"] for s in data], 4),
        "samples": data,
    }


UTTERANCES = [
    {"id": "short-ack", "length": "short", "text": "Sure, I can do that."},
    {"id": "samantha-preview", "length": "medium", "text": "It's good, it's good. <Listen> & \"Dear Theodore\"..."},
]
BENCHMARK = {
    "endpoint": {
        "label": "voxtral",
        "url": "http://127.0.0.1:8091/v1/audio/speech",
        "voice": "neutral_female",
        "voice_kind": "preset",
        "voice_note": "preset voice",
    },
    "utterances_source": "roles/tts_benchmark/files/utterances.yml",
    "utterances": UTTERANCES,
    "runs": [
        run("short-ack", 1, [120, 122, 124], [300, 310, 320], 1.2),
        run("samantha-preview", 1, [126, 128, 130], [900, 910, 920], 5.34),
        run("short-ack", 4, [150, 160, 170, 180], [400, 410, 420, 430], 1.2),
        run("samantha-preview", 4, [150, 160, 170, 180], [1000, 1010, 1020, 1030], 5.34),
    ],
    "wavs": {"short-ack": "wav/voxtral-short-ack.wav", "samantha-preview": "wav/voxtral-samantha-preview.wav"},
    "endpoint_passed": True,
    "ab": {
        "label": "chatterbox",
        "url": "http://127.0.0.1:4123/v1/audio/speech",
        "reference": {
            "path": "/opt/chatterbox-tts-api/voice-samples/samantha_movie_primary.wav",
            "sha256": "a" * 64,
            "size": 24044,
            "sent_in_field": None,
        },
        "runs": [
            run("short-ack", 1, [700, 710, 720], [700, 710, 720], 1.2),
            run("samantha-preview", 1, [1900, 1910, 1920], [1900, 1910, 1920], 5.34),
        ],
        "wavs": {"short-ack": "wav/chatterbox-short-ack.wav"},
        "passed": True,
        "failures": [],
    },
    "passed": True,
    "failures": [],
}
PASSED = {"status": "passed"}
FILES = {"verdict": "verdict.json", "report": "report.md", "ab_html": "ab.html", "ab_md": "ab.md"}
# A clean flight as the playbooks hand it over, to build_verdict and to the flight_verdict module alike.
FLIGHT = {
    "kind": "flight",
    "host": "titan",
    "run_id": "R1",
    "phases": {"deploy": PASSED, "benchmark": PASSED, "rollback": PASSED},
    "state_before": BEFORE,
    "state_after": AFTER,
    "gemma_mode": "pause",
    "release": RELEASE,
    "benchmark": BENCHMARK,
}


def verdict_of(**overrides):
    args = {**FLIGHT, "timestamp": "2026-11-25T18:21:00Z", "files": FILES, **overrides}
    verdict = build_verdict(**args)
    VALIDATOR.validate(verdict)
    return verdict


# -- the decision --------------------------------------------------------------------------------------------


def test_a_clean_flight_is_a_go_with_the_figures_as_reasons():
    verdict = verdict_of()
    assert verdict["verdict"] == "go"
    assert verdict["failed_phase"] is None and verdict["error"] is None
    assert [verdict["phases"][p]["status"] for p in ("deploy", "benchmark", "ab", "rollback")] == ["passed"] * 4
    assert verdict["reasons"][0].startswith("Voxtral served: time to first audio p50 125.0 ms, p95 129.5 ms")
    assert any("listener's verdict is pending (ab.md)" in r for r in verdict["reasons"])
    assert verdict_line(verdict).startswith("GO: Voxtral served")


def test_the_first_failed_phase_makes_a_no_go_with_its_error():
    phases = {
        "deploy": {"status": "failed", "error": "Fail with the original error: v9.9.9 is not a tag"},
        "benchmark": {"status": "skipped", "note": "the deploy failed"},
        "rollback": {"status": "failed", "error": "post-flight gate: p50 412 ms > 380 ms"},
    }
    verdict = verdict_of(phases=phases, release=None, benchmark=None)
    assert verdict["verdict"] == "no-go"
    assert verdict["failed_phase"] == "deploy"
    assert verdict["error"] == "Fail with the original error: v9.9.9 is not a tag"
    assert len(verdict["reasons"]) == 2 and "phase rollback (5) failed" in verdict["reasons"][1]
    assert verdict["phases"]["ab"]["status"] == "skipped"
    assert verdict["build"]["built"] is False
    assert verdict["voxtral"]["ttfa_p50_ms"] == 121.5  # the state's deploy-gate figures of this run
    assert verdict["voxtral"]["source"] == "deploy gate"
    assert verdict_line(verdict) == "NO-GO: phase deploy failed: Fail with the original error: v9.9.9 is not a tag"


def test_a_failed_post_flight_gate_is_a_no_go_even_when_no_phase_failed():
    after = copy.deepcopy(AFTER)
    after["gemma"]["post_flight_gate_passed"] = False
    verdict = verdict_of(state_after=after)
    assert (verdict["verdict"], verdict["failed_phase"]) == ("no-go", "rollback")


def test_a_benchmark_run_is_deferred_and_takes_the_build_from_the_state():
    after = copy.deepcopy(AFTER)
    after["voxtral"]["deployed"] = True
    after["gemma"]["paused"] = True
    verdict = verdict_of(
        kind="benchmark", phases={"benchmark": PASSED}, state_before=after, state_after=after, release=None
    )
    assert verdict["verdict"] == "deferred"
    assert verdict["phases"]["deploy"]["status"] == "not_run"
    assert verdict["phases"]["deploy"]["note"] == "not part of a benchmark run"
    assert verdict["build"]["vllm_omni_version"] == "0.30.0"
    assert verdict["reasons"][0].startswith("a benchmark run leaves out deploy and rollback")
    assert any("Gemma is still paused" in r for r in verdict["reasons"])
    assert any(r.startswith("Voxtral served: time to first audio p50 125.0 ms") for r in verdict["reasons"])
    report = render_report(verdict, BENCHMARK)
    assert "**DEFERRED: a benchmark run leaves out deploy and rollback" in report
    assert (
        "| Gemma outage | ongoing, Gemma is still paused, paused before this run (at 2026-11-25T18:10:06Z)"
        " (pause-gemma) |" in report
    )
    assert "| Gemma baseline p50 | 190.4 ms (recorded 2026-11-25T18:09:52Z, not in this run) |" in report
    # Gemma was paused before this run and still is: no outage figure of this run, no post-flight of it.
    assert verdict["gemma_impact"]["outage_duration_minutes"] is None
    assert verdict["gemma_impact"]["post_flight_p50_ms"] is None


def test_a_flight_with_a_phase_not_run_is_deferred():
    verdict = verdict_of(phases={"deploy": PASSED, "benchmark": PASSED})
    assert verdict["verdict"] == "deferred"
    assert verdict["reasons"][0] == "phases not run: rollback"


def test_a_provisional_verdict_says_the_run_did_not_finish():
    verdict = verdict_of(phases={}, benchmark=None, state_after=None, provisional=True)
    assert verdict["verdict"] == "no-go" and verdict["provisional"] is True
    assert verdict["failed_phase"] is None
    assert "did not finish" in verdict["reasons"][0]


def test_an_ab_failure_is_phase_4s_not_the_benchmarks():
    benchmark = copy.deepcopy(BENCHMARK)
    benchmark["ab"].update(passed=False, failures=["chatterbox short-ack at concurrency 1: error rate 1.00 > 0.00"])
    benchmark.update(passed=False, failures=benchmark["ab"]["failures"])
    phases = {"deploy": PASSED, "benchmark": {"status": "failed", "error": "Benchmark failed: ..."}, "rollback": PASSED}
    verdict = verdict_of(phases=phases, benchmark=benchmark)
    assert verdict["phases"]["benchmark"]["status"] == "passed"
    assert verdict["phases"]["ab"]["status"] == "failed"
    assert (verdict["verdict"], verdict["failed_phase"]) == ("no-go", "ab")
    assert "error rate 1.00" in verdict["error"]


def test_an_ab_never_reached_is_skipped_not_failed():
    benchmark = copy.deepcopy(BENCHMARK)
    benchmark["ab"].update(ran=False, runs=[], wavs={})
    benchmark.update(endpoint_passed=False, passed=False, failures=["Check that voxtral answers: refused"])
    phases = {"deploy": PASSED, "benchmark": {"status": "failed", "error": "refused"}, "rollback": PASSED}
    verdict = verdict_of(phases=phases, benchmark=benchmark)
    assert (verdict["phases"]["benchmark"]["status"], verdict["phases"]["ab"]["status"]) == ("failed", "skipped")
    assert verdict["failed_phase"] == "benchmark"


def test_without_a_second_endpoint_the_ab_is_skipped_and_a_go_is_still_possible():
    benchmark = {**BENCHMARK, "ab": None}
    verdict = verdict_of(benchmark=benchmark, files={"verdict": "verdict.json", "report": "report.md"})
    assert verdict["phases"]["ab"]["status"] == "skipped"
    assert "tts_benchmark_ab_url" in verdict["phases"]["ab"]["note"]
    assert verdict["ab"]["configured"] is False
    assert verdict["verdict"] == "go"


def test_unknown_phase_names_and_statuses_are_refused():
    with pytest.raises(ValueError, match="unknown phases"):
        normalise_phases({"deplyo": PASSED}, None, "flight")
    with pytest.raises(ValueError, match="phase status"):
        normalise_phases({"deploy": {"status": "ok"}}, None, "flight")


def test_decide_orders_failures_by_phase():
    phases = normalise_phases(
        {"rollback": {"status": "failed", "error": "r"}, "deploy": {"status": "failed", "error": "d"}}, None, "flight"
    )
    word, _, phase, error = decide(phases, {}, "flight")
    assert (word, phase, error) == ("no-go", "deploy", "d")


# -- Gemma's figures ---------------------------------------------------------------------------------------


def test_gemma_impact_counts_only_what_this_run_wrote():
    impact = gemma_impact(BEFORE, AFTER, "pause")
    assert impact == {
        "baseline_p50_ms": 190.4,
        "baseline_at": "2026-11-25T18:09:52Z",
        "baseline_from_this_run": True,
        "abort_threshold_ms": 380.8,
        "post_flight_p50_ms": 190.0,
        "post_flight_at": "2026-11-25T18:20:19Z",
        "drift_ratio": 0.9979,
        "outage_seconds": 600.0,
        "outage_duration_minutes": 10.0,
        "paused_now": False,
        "paused_at": "2026-11-25T18:10:06Z",
        "paused_before_this_run": False,
        "user_mode": "pause-gemma",
        "post_flight_gate_passed": True,
    }


def test_what_the_run_registered_decides_what_is_this_runs():
    """The gemma role's own record of what it wrote wins over comparing the two snapshots."""
    wrote_all = {key: AFTER["gemma"][key] for key in ("baseline_at", "paused_at", "restored_at", "post_flight_at")}
    assert gemma_impact(BEFORE, AFTER, "pause", wrote_all) == gemma_impact(BEFORE, AFTER, "pause")
    # Another writer changed the file during the run (the snapshots differ), but this run wrote nothing.
    untouched = gemma_impact(BEFORE, AFTER, "pause", {})
    assert untouched["baseline_from_this_run"] is False
    assert untouched["post_flight_p50_ms"] is None and untouched["post_flight_gate_passed"] is None
    assert untouched["outage_seconds"] == 0.0


def test_an_outage_an_earlier_run_began_and_this_run_ended_is_counted():
    before = copy.deepcopy(AFTER)
    before["gemma"].update(paused=True, restored_at=None, outage_seconds=None)
    impact = gemma_impact(before, AFTER, "pause")
    assert (impact["outage_seconds"], impact["paused_before_this_run"]) == (600.0, True)
    assert impact["paused_at"] == "2026-11-25T18:10:06Z"


def test_a_run_that_never_paused_gemma_had_no_outage_and_keeps_the_old_baseline_apart():
    after = copy.deepcopy(BEFORE)
    after["gemma"].update(post_flight_at="2026-11-25T18:00:00Z", post_flight_p50_ms=188.0, drift_ratio=1.016)
    impact = gemma_impact(BEFORE, after, "pause")
    assert impact["outage_duration_minutes"] == 0.0
    assert impact["baseline_from_this_run"] is False
    assert impact["post_flight_p50_ms"] == 188.0
    # An earlier run's post-flight gate is not this run's.
    assert gemma_impact(BEFORE, BEFORE, "coexist")["post_flight_p50_ms"] is None
    assert gemma_impact(BEFORE, BEFORE, "coexist")["user_mode"] == "coexist"


def test_the_abort_threshold_is_the_limit_this_runs_post_flight_gate_applied():
    """An override of the recorded ratio is what the verdict reports; without one, the baseline's threshold."""
    overridden = {"gemma": {**AFTER["gemma"], "post_flight_max_ratio": 3.0, "post_flight_threshold_ms": 571.2}}
    assert gemma_impact(BEFORE, overridden, "pause")["abort_threshold_ms"] == 571.2
    assert gemma_impact(BEFORE, AFTER, "pause")["abort_threshold_ms"] == 380.8


def test_gemma_impact_of_an_empty_state_is_all_unknown():
    impact = gemma_impact({}, {}, None)
    assert impact["baseline_p50_ms"] is None and impact["post_flight_gate_passed"] is None
    assert impact["outage_duration_minutes"] == 0.0


# -- the build and Voxtral's figures -------------------------------------------------------------------------


def test_the_build_lists_each_pr_applied_or_skipped_and_why():
    build = verdict_of()["build"]
    assert (build["vllm_omni_version"], build["ref"], build["sha"]) == ("0.30.0", "v0.30.0", SHA)
    assert [(p["pr"], p["applied"], p["status"]) for p in build["patches"]] == [
        (2405, False, "superseded"),
        (2790, True, "applied"),
    ]
    assert "#3232" in build["patches"][0]["reason"]


def test_voxtral_headline_is_the_lowest_concurrency_pooled_with_latency_stats():
    vox = verdict_of()["voxtral"]
    ttfb = [120, 122, 124, 126, 128, 130]
    assert vox["ttfa_p50_ms"] == summarize(ttfb, 3)["p50"] == 125.0
    assert vox["ttfa_p95_ms"] == summarize(ttfb, 3)["p95"]
    rtfs = [s["rtf"] for r in BENCHMARK["runs"][:2] for s in r["samples"]]
    assert vox["rtf_p50"] == summarize(rtfs, 4)["p50"]
    assert vox["source"] == "benchmark, concurrency 1, 6 requests"
    assert vox["per_concurrency"]["4"]["ttfa_ms"]["count"] == 8
    assert vox["per_concurrency"]["4"]["ttfa_ms"]["p50"] == 165.0
    assert vox["deploy_gate"] == {"ttfa_p50_ms": 121.5, "ttfa_p95_ms": 130.25, "rtf_p50": 0.21}


def test_failed_requests_are_counted_as_errors_not_as_latencies():
    benchmark = copy.deepcopy(BENCHMARK)
    benchmark["runs"][0]["samples"].append({"ok": False, "ttfb_ms": None, "total_ms": 5.0, "error": "status 500"})
    benchmark["runs"][0]["requests"] = 4
    vox = verdict_of(benchmark=benchmark)["voxtral"]
    assert vox["per_concurrency"]["1"]["errors"] == 1
    assert vox["per_concurrency"]["1"]["total_ms"]["min"] == 300.0


# -- the pages -----------------------------------------------------------------------------------------------


def test_report_has_the_verdict_line_a_table_of_figures_and_a_histogram():
    verdict = verdict_of()
    report = render_report(verdict, BENCHMARK)
    lines = report.splitlines()
    assert lines[0] == "# Flight on titan, run R1"
    assert lines[2] == f"**{verdict_line(verdict)}**"
    assert "| vllm-omni | 0.30.0 (v0.30.0 @ ee678cf3c15b, profile gb10-0.30) |" in lines
    assert "| PRs | #2405 skipped (superseded), #2790 applied (applied) |" in lines
    assert "| Gemma baseline p50 | 190.4 ms |" in lines
    assert "| Gemma outage | 10.00 min (pause-gemma) |" in lines
    assert "| Voxtral time to first audio p50 / p95 | 125.0 / 129.5 ms |" in lines
    assert "| samantha-preview | medium | 4 | 4 | 0 | 165.0 / 178.5 | 1015.0 | 5.34 | 0.190 |" in lines
    histogram_lines = report.split("## Time to first audio, concurrency 1 (6 requests)")[1].split("```")[1].splitlines()
    assert sum(int(line.rsplit(" ", 1)[1]) for line in histogram_lines if line) == 6


def test_report_of_a_no_go_names_the_phase_and_lists_phases():
    verdict = verdict_of(phases={"deploy": {"status": "failed", "error": "boom\nline 2"}}, benchmark=None)
    report = render_report(verdict, None)
    assert "**NO-GO: phase deploy failed: boom**" in report
    assert "| deploy | 0-2 | failed | boom |" in report
    assert "| rollback | 5 | not_run |  |" in report


def test_histogram_counts_every_value_once():
    lines = histogram([1, 2, 2, 3, 10], bins=3, width=10)
    assert len(lines) == 3
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == [4, 0, 1]
    assert histogram([]) == ["(no samples)"]
    assert [line.strip() for line in histogram([5, 5])] == ["5.0 ms | ██ 2"]


def test_ab_pages_put_both_players_side_by_side_and_escape_the_text():
    verdict = verdict_of()
    page = render_ab_html(verdict, BENCHMARK)
    assert page.count("<audio controls") == 3  # the second utterance has no Chatterbox WAV
    assert 'src="wav/voxtral-samantha-preview.wav"' in page
    assert "&lt;Listen&gt; &amp; &quot;Dear Theodore&quot;" in page
    assert "<Listen>" not in page
    assert 'name="pref-short-ack" value="voxtral"' in page
    sheet = render_ab_markdown(verdict, BENCHMARK)
    assert "| utterance | Voxtral | chatterbox | preferred | notes |" in sheet
    assert "([wav](wav/chatterbox-short-ack.wav))" in sheet
    assert "first audio p50 710.0 ms" in sheet
    assert "## Listener's verdict" in sheet
    assert "score" not in sheet.lower()


def test_ab_html_escapes_every_value_it_shows():
    """Labels, host, run id, voice, reference, ids and paths come from settings and files: none is markup."""
    hostile = "<b>x</b>&\"'"
    benchmark = copy.deepcopy(BENCHMARK)
    benchmark["endpoint"]["voice"] = hostile
    benchmark["ab"].update(label=hostile, reference={"path": hostile, "sha256": None})
    benchmark["utterances"] = [{**UTTERANCES[0], "id": hostile}]
    benchmark["wavs"] = {hostile: hostile}
    page = render_ab_html(verdict_of(host=hostile, run_id=hostile, benchmark=benchmark), benchmark)
    assert "<b>" not in page and "&lt;b&gt;x&lt;/b&gt;&amp;&quot;&#x27;" in page
    assert page.count("&lt;b&gt;x&lt;/b&gt;") >= 10


# -- the module ---------------------------------------------------------------------------------------------


def run_module(args: dict, check_mode: bool = False) -> dict:
    args = {**args, "_ansible_check_mode": check_mode}
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        flight_verdict.main()
    return json.loads(stdout.getvalue())


def module_args(tmp_path, **overrides):
    return {"dest": str(tmp_path / "artifacts" / "titan" / "R1"), **FLIGHT, **overrides}


def test_module_writes_a_verdict_that_validates_the_report_and_the_ab_sheet(tmp_path):
    result = run_module(module_args(tmp_path))
    assert result["changed"] is True
    dest = tmp_path / "artifacts" / "titan" / "R1"
    assert sorted(p.name for p in dest.iterdir()) == ["ab.html", "ab.md", "report.md", "verdict.json"]
    written = json.loads((dest / "verdict.json").read_text(encoding="utf-8"))
    VALIDATOR.validate(written)
    assert written == result["verdict"]
    assert written["artifacts"]["wavs"] == [
        "wav/chatterbox-short-ack.wav",
        "wav/voxtral-samantha-preview.wav",
        "wav/voxtral-short-ack.wav",
    ]
    assert result["verdict_line"] in (dest / "report.md").read_text(encoding="utf-8")


def test_module_provisional_then_final_replaces_the_verdict(tmp_path):
    provisional = run_module(module_args(tmp_path, provisional=True, phases={}, state_after=None))
    dest = tmp_path / "artifacts" / "titan" / "R1"
    assert sorted(p.name for p in dest.iterdir()) == ["report.md", "verdict.json"]
    assert provisional["verdict"]["provisional"] is True
    final = run_module(module_args(tmp_path))
    assert json.loads((dest / "verdict.json").read_text(encoding="utf-8"))["verdict"] == final["verdict"]["verdict"]


def test_module_in_check_mode_writes_nothing(tmp_path):
    result = run_module(module_args(tmp_path), check_mode=True)
    assert result["changed"] is False
    assert result["verdict"]["verdict"] == "go"
    assert not (tmp_path / "artifacts").exists()


def test_module_refuses_a_benchmark_that_is_not_a_mapping(tmp_path):
    result = run_module(module_args(tmp_path, benchmark=[1, 2]))
    assert result["failed"] is True
    assert "benchmark must be a mapping" in result["msg"]
