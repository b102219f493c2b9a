"""The flight summary's lines (plugins/callback/voxtral_summary.py) for the runs a flight has."""

from ansible_collections.voxtral.deploy.plugins.callback.voxtral_summary import summary_lines

LIMITS = {"ttfa_p50_ms": 1500, "rtf_p50": 1.0}
RELEASE = {"release": "0.30.0-bc730621723e-34fe8229"}


def test_a_paused_deploy_shows_the_outage_and_the_gate_against_its_limits():
    run = {
        "run": "deploy-voxtral",
        "run_id": "20261202T075950Z-c20d7edf",
        "artifacts": "/srv/x/playbooks/../artifacts/titan/20261202T075950Z-c20d7edf",
        "voxtral": {"deployed": True, "mode": "pause", "release": RELEASE, "ttfa_p50_ms": 51.924, "rtf_p50": 0.11053},
        "gemma": {"paused": True, "outage_seconds": 7.93, "baseline_p50_ms": 194.879},
        "limits": LIMITS,
    }
    assert summary_lines("titan", run) == [
        "titan  deploy-voxtral 20261202T075950Z-c20d7edf: Voxtral serving, Gemma paused"
        " (release 0.30.0-bc730621723e-34fe8229)",
        "  gemma     outage 7.93 s; baseline p50 195 ms",
        "  voxtral   TTFA p50 51.9 ms (limit 1500 ms), RTF p50 0.111 (limit 1.0)",
        "  artifacts /srv/x/artifacts/titan/20261202T075950Z-c20d7edf/",
    ]


def test_coexist_says_gemma_never_stopped():
    run = {"run": "deploy-voxtral", "voxtral": {"deployed": True, "mode": "coexist"}, "gemma": {}, "limits": LIMITS}
    lines = summary_lines("titan", run)
    assert lines[0].endswith("Voxtral serving, Gemma serving beside it")
    assert "  gemma     never stopped (coexist)" in lines


def test_a_rollback_shows_the_post_flight_gate():
    run = {
        "run": "rollback-voxtral",
        "run_id": "r2",
        "voxtral": {"deployed": False},
        "gemma": {
            "paused": False,
            "baseline_p50_ms": 194.879,
            "post_flight_p50_ms": 191.908,
            "drift_ratio": 0.9848,
            "post_flight_max_ratio": 2,
            "post_flight_gate_passed": True,
        },
    }
    assert summary_lines("titan", run)[1] == (
        "  gemma     baseline p50 195 ms; post-flight p50 192 ms = 0.985x baseline (limit 2x): passed"
    )


def test_a_failed_deploy_names_the_error_and_no_missing_figure_prints_none():
    run = {
        "run": "deploy-voxtral",
        "run_id": "r3",
        "voxtral": {"deployed": False, "failed": True, "error": "Voxtral gate failed: TTFA p50 2100 ms > 1500 ms"},
        "gemma": {"paused": False, "outage_seconds": None, "baseline_p50_ms": None},
        "limits": LIMITS,
    }
    lines = summary_lines("titan", run)
    assert lines[0] == "titan  deploy-voxtral r3: FAILED and rolled back, Gemma serving again"
    assert lines[1] == "  error     Voxtral gate failed: TTFA p50 2100 ms > 1500 ms"
    assert not any("None" in line for line in lines)
    # A check-mode run hands over only its name and folder.
    assert summary_lines("titan", {"run": "deploy-voxtral", "run_id": "r4"}) == ["titan  deploy-voxtral r4: done"]


def test_a_dry_run_says_so_and_names_the_error_the_real_run_would_meet():
    run = {"run": "deploy-voxtral", "run_id": "c1", "check_mode": True, "error": None, "voxtral": {}, "gemma": {}}
    assert summary_lines("titan", run) == ["titan  deploy-voxtral c1: dry run (check mode), nothing changed"]
    run["error"] = "No vllm-omni release at /opt/vllm-omni/current"
    assert summary_lines("titan", run) == [
        "titan  deploy-voxtral c1: dry run (check mode), nothing changed; the real run would FAIL",
        "  error     No vllm-omni release at /opt/vllm-omni/current",
    ]


def test_a_failure_before_anything_was_recorded_is_a_failure_not_done():
    run = {"run": "deploy-voxtral", "run_id": "f1", "error": "flight lock is held by carol", "voxtral": {}}
    assert summary_lines("titan", run) == [
        "titan  deploy-voxtral f1: FAILED",
        "  error     flight lock is held by carol",
    ]
