"""The flight as users run it: deploy-voxtral.yml and rollback-voxtral.yml on one simulated Spark.

One instance for the whole module (prepared once with tests/simulated/prepare-spark.yml); the tests run
in order: deploy → re-run → the flight's gate step against audio faults → rollback, then the failure matrix
(each case reset afterwards), then a controller that dies after the pause, and a deploy refused by a held
lock. Every failing case must end with Gemma active and answering, the previous release intact, the lock
released, and the original error in the play's failure.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from playbook_runner import ROOT
from sim_spark import LOCK_FILE, Spark, gemma_answers, write_behaviour, write_inventory

VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
GEMMA_BEHAVIOUR = "/etc/fake-gemma/behaviour.json"
GEMMA_NORMAL = {"latency_ms": 190, "jitter_ms": 10, "memory_mib": 256}
ROLLED_BACK = "Voxtral deploy on titan failed and was rolled back, Gemma is serving again. Original error: "
# This module flies the pause path (auto, the default, coexists on the simulated Spark: test_coexist.py).
PAUSE = {"voxtral_gemma_mode": "pause"}


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    with Flight.prepared("voxtral-flight", tmp_path_factory.mktemp("flight")) as flight:
        yield flight


class Flight(Spark):
    def current_release(self):
        return self.sh("readlink -f /opt/vllm-omni/current").stdout.strip()

    def gemma_answers(self):
        return gemma_answers(self.hostvars)

    def behave(self, path, behaviour):
        write_behaviour(self.hostvars, path, behaviour)

    def reset(self):
        """Back to 'Gemma serving, Voxtral stopped', whatever a case left behind."""
        self.behave(VOXTRAL_BEHAVIOUR, {})
        self.behave(GEMMA_BEHAVIOUR, GEMMA_NORMAL)
        self.reset_units()


def assert_gemma_back(flight, release_before):
    assert flight.is_active("gemma.service")
    assert flight.gemma_answers()
    assert not flight.is_active("voxtral-tts.service")
    assert flight.current_release() == release_before
    assert flight.sh(f"test -e {LOCK_FILE}").returncode == 1
    assert not flight.is_active("voxtral-flight-guard.timer")


def test_deploy_serves_voxtral_with_gemma_paused(flight):
    run = flight.run("deploy-voxtral.yml", PAUSE)
    assert run.status == "successful", run.stdout[-3000:]
    assert flight.is_active("voxtral-tts.service")
    assert flight.sh("systemctl is-enabled voxtral-tts.service").stdout.strip() == "enabled"
    assert not flight.is_active("gemma.service")
    assert not flight.is_active("voxtral-flight-guard.timer")
    assert flight.sh(f"test -e {LOCK_FILE}").returncode == 1
    state = flight.state()
    # The fake Gemma answers in 190 ± 10 ms: the recorded baseline says so.
    assert 180 <= state["gemma"]["baseline_p50_ms"] <= 230
    assert state["gemma"]["paused"] is True
    assert state["voxtral"]["deployed"] is True
    assert state["voxtral"]["release"]["version"] == "0.30.0"
    assert state["voxtral"]["ttfa_p50_ms"] > 0
    assert state["voxtral"]["serving_since_gemma_paused_s"] >= 0


def test_deploy_rerun_changes_nothing_and_rebuilds_nothing(flight):
    build_log = "stat -c %Y /opt/vllm-omni/current/build.log"
    before = flight.sh(build_log).stdout
    release = flight.current_release()
    run = flight.run("deploy-voxtral.yml", PAUSE)
    assert run.status == "successful", run.stdout[-3000:]
    assert run.changed_count() == 0, [
        e["event_data"]["task"]
        for e in run.events
        if e.get("event") == "runner_on_ok" and e["event_data"]["res"].get("changed")
    ]
    assert flight.sh(build_log).stdout == before
    assert flight.current_release() == release


# A fast Voxtral that streams no voice: the timing passes, the audio checks do not. The flight's gate step alone
# (tests/integration/playbooks/gate.yml) against the Voxtral the deploy above left serving: that a failed gate
# gives Gemma back is the failure matrix's "voxtral gate fails", which flies it whole.
AUDIO_FAULTS = [
    ("voxtral streams silence", {"audio": "silence"}, "speech ratio 0 < 0.5 (min_speech_ratio)"),
    ("voxtral streams clipped noise", {"audio": "noise"}, "(max_clipping_ratio)"),
    ("voxtral cuts its speech short", {"audio": "truncate"}, "(min_duration_ratio)"),
]


@pytest.mark.parametrize(("case", "behaviour", "expected"), AUDIO_FAULTS, ids=[a[0] for a in AUDIO_FAULTS])
def test_the_flights_gate_fails_on_what_it_hears(flight, case, behaviour, expected):
    assert flight.is_active("voxtral-tts.service")
    flight.behave(VOXTRAL_BEHAVIOUR, behaviour)  # the fake reads its speech knobs on every request
    try:
        run = flight.run("tests/integration/playbooks/gate.yml")
        assert run.status == "failed", run.stdout[-3000:]
        message = run.host_errors()["titan"]
        assert message.startswith('voxtral-tts.service: "Gate Voxtral (time to first audio, RTF, no errors)" failed')
        assert expected in message, message
    finally:
        flight.behave(VOXTRAL_BEHAVIOUR, {})
    assert flight.is_active("voxtral-tts.service")


def test_rollback_restores_gemma_and_records_the_drift(flight):
    release = flight.current_release()
    run = flight.run("rollback-voxtral.yml")
    assert run.status == "successful", run.stdout[-3000:]
    assert_gemma_back(flight, release)
    assert flight.sh("systemctl is-enabled voxtral-tts.service").stdout.strip() == "disabled"
    state = flight.state()
    gemma = state["gemma"]
    assert gemma["post_flight_gate_passed"] is True
    assert 0.5 <= gemma["drift_ratio"] <= 1.5
    assert gemma["outage_seconds"] > 0
    assert state["voxtral"]["deployed"] is False
    assert "rolled_back_at" in state["voxtral"]


def test_rollback_is_harmless_when_nothing_is_deployed(flight):
    run = flight.run("rollback-voxtral.yml")
    assert run.status == "successful", run.stdout[-3000:]
    assert flight.is_active("gemma.service")


# Bad input: (case, extra vars, what the one error must contain). Refused before the lock is taken.
BAD_INPUT = [
    ("wrong architecture", {"preflight_allowed_architectures": ["aarch64"]}, "architecture x86_64 is not in"),
    ("unknown flight mode", {"voxtral_gemma_mode": "bogus"}, "voxtral_gemma_mode must be one of: pause, coexist"),
    ("unknown build profile", {"vllm_omni_build_profile": "gb10-9.99"}, "gb10-9.99"),
]


@pytest.mark.parametrize(("case", "extravars", "expected"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_one_error_before_anything_changes(flight, case, extravars, expected):
    state_before, release = flight.state(), flight.current_release()
    run = flight.run("deploy-voxtral.yml", extravars)
    assert run.status == "failed", run.stdout[-3000:]
    [message] = run.failure_messages()
    assert expected in message, message
    assert run.changed_count() == 0
    assert flight.state() == state_before
    assert flight.is_active("gemma.service") and flight.gemma_answers()
    assert not flight.is_active("voxtral-tts.service")
    assert flight.current_release() == release
    assert flight.sh(f"test -e {LOCK_FILE}").returncode == 1


# The failure matrix: (case, set-up on the host, extra vars, what the failure message must contain).
MATRIX = [
    ("bad ref", None, {"vllm_omni_build_version": "v9.9.9"}, "v9.9.9"),
    (
        "cherry-pick conflict",
        None,
        # Unpinned on purpose (allowed, with a warning): the fixture's PR heads are not the real pinned ones.
        {
            "vllm_omni_build_profile": "seed-0.18",
            "vllm_omni_build_patches": [{"pr": 9001}],
            "vllm_omni_build_allow_unpinned": True,
        },
        "does not apply on",
    ),
    (
        "weights missing",
        "mv /root/.cache/huggingface/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots "
        "/root/.cache/huggingface/snapshots.away",
        None,
        "Voxtral weights missing",
    ),
    ("unit crashes at start", {"crash_at_start": True}, None, ROLLED_BACK),
    ("health timeout", {"warmup_s": 600}, {"voxtral_service_init_timeout": 8}, ROLLED_BACK),
    ("voxtral gate fails", {"first_audio_ms": 2500}, None, "time to first byte p50"),
]


@pytest.mark.parametrize(("case", "setup", "extravars", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_failure_gives_gemma_back(flight, case, setup, extravars, expected):
    release = flight.current_release()
    if isinstance(setup, dict):
        flight.behave(VOXTRAL_BEHAVIOUR, setup)
    elif setup:
        flight.sh(setup)
    try:
        run = flight.run("deploy-voxtral.yml", {**PAUSE, **(extravars or {})})
        assert run.status == "failed", run.stdout[-3000:]
        errors = run.host_errors()
        assert list(errors) == ["titan"] and expected in errors["titan"], errors
        assert_gemma_back(flight, release)
    finally:
        if case == "weights missing":
            flight.sh(
                "mv /root/.cache/huggingface/snapshots.away "
                "/root/.cache/huggingface/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots"
            )
        flight.reset()


def test_gemma_slow_to_come_back_fails_the_rollback_with_numbers(flight):
    flight.run("deploy-voxtral.yml", PAUSE)
    flight.behave(GEMMA_BEHAVIOUR, {**GEMMA_NORMAL, "slow_after_restart_ms": 900})
    try:
        run = flight.run("rollback-voxtral.yml")
        assert run.status == "failed"
        message = run.host_errors()["titan"]
        assert "× baseline" in message
        assert flight.is_active("gemma.service")
        assert flight.gemma_answers()
        assert flight.sh(f"test -e {LOCK_FILE}").returncode == 1
    finally:
        flight.reset()


def test_controller_dies_after_the_pause_and_the_guard_restores_gemma(flight, tmp_path):
    inventory = tmp_path / "inventory.yml"
    write_inventory(str(inventory), {"titan": flight.hostvars})
    # Voxtral takes 60 s to open its port, so the controller is surely killed while Gemma is paused.
    flight.behave(VOXTRAL_BEHAVIOUR, {"start_delay_s": 60})
    log = open(tmp_path / "deploy.log", "w")  # noqa: SIM115 (handed to the child process)
    deploy = subprocess.Popen(
        ["ansible-playbook", "-i", str(inventory), "deploy-voxtral.yml", "-e", "flight_guard_deadline=25s",
         "-e", "voxtral_gemma_mode=pause"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        # The pause records itself before it stops the unit: wait for both.
        while not (flight.state().get("gemma", {}).get("paused") and not flight.is_active("gemma.service")):
            assert deploy.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "Gemma was never paused"
            time.sleep(1)
        os.killpg(deploy.pid, signal.SIGKILL)
        deploy.wait()
        assert not flight.is_active("gemma.service")
        waited = 0
        while not flight.is_active("gemma.service") and waited < 90:
            time.sleep(2)
            waited += 2
        assert flight.is_active("gemma.service"), "the guard did not restore Gemma"
        assert flight.gemma_answers()
        assert not flight.is_active("voxtral-tts.service")
        assert flight.state()["flight_guard"]["guard_fired_at"]
        # The dead controller's lock is still there: a rollback from anywhere takes it over.
        assert flight.sh(f"test -e {LOCK_FILE}").returncode == 0
        rollback = flight.run("rollback-voxtral.yml", {"voxtral_force_lock": True})
        assert rollback.status == "successful", rollback.stdout[-3000:]
        assert flight.sh(f"test -e {LOCK_FILE}").returncode == 1
    finally:
        log.close()
        if deploy.poll() is None:
            os.killpg(deploy.pid, signal.SIGKILL)
        flight.reset()


def test_concurrent_deploy_is_refused_and_touches_nothing(flight):
    held = {
        "run_id": "other-run",
        "owner": "carol@other-controller",
        "purpose": "deploy-voxtral",
        "acquired_at": "2026-11-25T10:00:00Z",
        "acquired_epoch": int(time.time()),
    }
    flight.sh(f"echo '{json.dumps(held)}' > {LOCK_FILE}")
    state_before = flight.state()
    release = flight.current_release()
    try:
        run = flight.run("deploy-voxtral.yml")
        assert run.status == "failed"
        [message] = run.failure_messages()
        assert message.startswith(f"flight lock {LOCK_FILE} is held by carol@other-controller for deploy-voxtral")
        assert flight.state() == state_before
        assert flight.current_release() == release
        assert flight.is_active("gemma.service")
        assert json.loads(flight.sh(f"cat {LOCK_FILE}").stdout) == held
    finally:
        flight.reset()
