"""auto mode on one simulated Spark: the memory plan decides, and coexisting Gemma is gated under load.

One instance for the whole module (prepared once with tests/simulated/prepare-spark.yml: the fake vllm-omni
refuses to start like vLLM when its claims exceed the free memory and holds a tenth of each claim; the fake
Gemma slows by interference_ms while the fake Voxtral streams). The tests run in order, each one reset
afterwards:
1. room to spare: the plan says coexist, Voxtral starts with the computed fractions, Gemma's unit is never
   stopped (its ActiveEnterTimestampMonotonic unchanged across deploy, re-run and rollback);
2. too little room (a margin larger than the machine): the plan says pause, Gemma is paused for the flight
   and restored by the rollback;
3. an interfering co-tenant (Gemma slower than the ratio allows while Voxtral streams): the coexist gate
   fails, Voxtral is rolled back, Gemma keeps serving, never stopped;
4. a memory setting out of range is one error before the lock;
5. the memory floor: a start whose profiling overshoots (the fake's profile_spike_gib) crosses a floor set just
   below this machine's MemAvailable; the floor kills Voxtral at once, records why, and the flight fails
   with the figures — coexisting, Gemma is never stopped and Voxtral is not restarted; paused, Gemma comes
   back. (The floor is set near this machine's MemAvailable with a margin of 0, so the spike crosses it by
   several GiB whatever the other lanes hold.)
"""

import json

import pytest
from sim_spark import LOCK_FILE, Spark, gemma_answers, write_behaviour

VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
GEMMA_BEHAVIOUR = "/etc/fake-gemma/behaviour.json"
MARKER = "/var/cache/voxtral-tts/fake-streaming"
# What tests/simulated/prepare-spark.yml gives the fakes.
VOXTRAL_NORMAL = {"memory_check": True, "memory_scale": 0.1, "streaming_marker": MARKER}
GEMMA_NORMAL = {
    "latency_ms": 190,
    "jitter_ms": 10,
    "memory_mib": 256,
    "interference_ms": 0,
    "interference_marker": MARKER,
}
ROLLED_BACK = "Voxtral deploy on titan failed and was rolled back, Gemma is serving again. Original error: "


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    with CoexistSpark.prepared("voxtral-coexist", tmp_path_factory.mktemp("coexist")) as spark:
        yield spark


class CoexistSpark(Spark):
    def gemma_started_at(self):
        return self.started_at("gemma.service")

    def run_dir(self, state):
        return self.artifacts / "titan" / state["voxtral"]["run_id"]

    def reset(self):
        """Back to 'Gemma serving, Voxtral stopped, the fakes as prepared', whatever a case left behind."""
        write_behaviour(self.hostvars, VOXTRAL_BEHAVIOUR, VOXTRAL_NORMAL)
        write_behaviour(self.hostvars, GEMMA_BEHAVIOUR, GEMMA_NORMAL)
        self.reset_units()


def assert_gemma_serving_and_voxtral_stopped(spark):
    assert spark.is_active("gemma.service")
    assert gemma_answers(spark.hostvars)
    assert not spark.is_active("voxtral-tts.service")
    assert not spark.is_active("voxtral-flight-guard.timer")
    assert spark.sh(f"test -e {LOCK_FILE}").returncode == 1


def test_room_to_spare_coexists_and_gemma_is_never_stopped(spark):
    started_at = spark.gemma_started_at()
    assert started_at not in ("", "0")
    try:
        run = spark.run("deploy-voxtral.yml")
        assert run.status == "successful", run.stdout[-3000:]
        assert spark.is_active("voxtral-tts.service") and spark.is_active("gemma.service")
        assert spark.gemma_started_at() == started_at, "Gemma's unit was restarted by a coexisting deploy"

        state = spark.state()
        voxtral, plan = state["voxtral"], state["voxtral"]["memory_plan"]
        assert voxtral["deployed"] is True and voxtral["mode"] == "coexist"
        assert (plan["requested_mode"], plan["mode"], plan["decided_by"]) == ("auto", "coexist", "memory plan")
        assert plan["plan"]["decision"] == "coexist" and plan["plan"]["spare_bytes"] > 0
        assert plan["fractions_from"] == {"0": "plan", "1": "plan"}
        assert plan["fractions"] == plan["plan"]["fractions"]
        assert "gemma" not in state or state["gemma"].get("paused") is not True
        # The service was given the computed fractions, and the fake's vLLM-like memory check passed with them.
        config = spark.sh("cat /var/lib/voxtral-tts/voxtral_tts.yaml").stdout
        assert f"gpu_memory_utilization: {plan['fractions']['0']}" in config
        assert f"gpu_memory_utilization: {plan['fractions']['1']}" in config
        journal = spark.sh("journalctl -u voxtral-tts.service --no-pager -o cat").stdout
        assert f"({plan['fractions']['0']})" in journal and "holding" in journal
        # Gemma measured while the Voxtral gate streamed, against its baseline (p50 and p95).
        under_load = voxtral["gemma_under_load"]
        assert under_load["passed"] is True and under_load["requests"] > 0
        assert under_load["p50_ratio"] <= under_load["max_ratio"] and under_load["p95_ratio"] <= under_load["max_ratio"]
        # The decision in the run's artifacts, and in one line of the play's output.
        run_dir = spark.run_dir(state)
        assert json.loads((run_dir / "memory-plan.json").read_text()) == plan
        assert json.loads((run_dir / "gemma-under-load.json").read_text()) == under_load
        [line] = [r["msg"] for r in run.ok_results("Say how Gemma fares, and why")]
        assert line.startswith("Gemma mode coexist (auto: memory plan); Voxtral's stage fractions")
        assert "memory plan: coexist: Voxtral " in line

        rerun = spark.run("deploy-voxtral.yml")
        assert rerun.status == "successful", rerun.stdout[-3000:]
        assert rerun.changed_count() == 0, [
            e["event_data"]["task"]
            for e in rerun.events
            if e.get("event") == "runner_on_ok" and e["event_data"]["res"].get("changed")
        ]
        assert spark.state()["voxtral"]["memory_plan"] == plan
        assert spark.gemma_started_at() == started_at

        rollback = spark.run("rollback-voxtral.yml")
        assert rollback.status == "successful", rollback.stdout[-3000:]
        assert_gemma_serving_and_voxtral_stopped(spark)
        assert spark.gemma_started_at() == started_at, "Gemma's unit was restarted by the rollback"
        assert spark.state()["gemma"]["post_flight_gate_passed"] is True
    finally:
        spark.reset()


def test_too_little_room_pauses_gemma_and_the_rollback_restores_it(spark):
    try:
        run = spark.run("deploy-voxtral.yml", {"voxtral_memory_margin_gib": 1000})
        assert run.status == "successful", run.stdout[-3000:]
        assert spark.is_active("voxtral-tts.service")
        assert not spark.is_active("gemma.service")
        state = spark.state()
        plan = state["voxtral"]["memory_plan"]
        assert (plan["requested_mode"], plan["mode"], plan["decided_by"]) == ("auto", "pause", "memory plan")
        assert plan["plan"]["decision"] == "pause" and plan["plan"]["spare_bytes"] < 0
        assert "exceeds the" in plan["summary"]
        assert state["gemma"]["paused"] is True and state["voxtral"]["mode"] == "pause"
        [line] = [r["msg"] for r in run.ok_results("Say how Gemma fares, and why")]
        assert line.startswith("Gemma mode pause (auto: memory plan)")

        rollback = spark.run("rollback-voxtral.yml")
        assert rollback.status == "successful", rollback.stdout[-3000:]
        assert_gemma_serving_and_voxtral_stopped(spark)
        gemma = spark.state()["gemma"]
        assert gemma["paused"] is False and gemma["post_flight_gate_passed"] is True
        assert gemma["outage_seconds"] > 0
    finally:
        spark.reset()


def test_an_interfering_co_tenant_fails_the_coexist_gate_and_gemma_keeps_serving(spark):
    # While the fake Voxtral streams, each chat completion takes 400 ms more: 590 ms against a limit of
    # 2 x the ~190 ms baseline.
    write_behaviour(spark.hostvars, GEMMA_BEHAVIOUR, {**GEMMA_NORMAL, "interference_ms": 400})
    started_at = spark.gemma_started_at()
    try:
        run = spark.run("deploy-voxtral.yml")
        assert run.status == "failed", run.stdout[-3000:]
        errors = run.host_errors()
        assert list(errors) == ["titan"], errors
        message = errors["titan"]
        assert message.startswith(
            ROLLED_BACK + "Assert that Gemma kept its latency beside the streaming Voxtral: "
            "Gemma's gate under Voxtral's load failed (http://127.0.0.1:8000/v1/chat/completions): "
        ), message
        assert "× baseline" in message and "Gemma was not stopped." in message
        assert_gemma_serving_and_voxtral_stopped(spark)
        assert spark.gemma_started_at() == started_at, "Gemma's unit was restarted by a coexisting flight"
        voxtral = spark.state()["voxtral"]
        assert voxtral["deployed"] is False and voxtral["failed"] is True and voxtral["mode"] == "coexist"
        assert voxtral["gemma_under_load"]["passed"] is False
        assert voxtral["gemma_under_load"]["p50_ratio"] > voxtral["gemma_under_load"]["max_ratio"]
    finally:
        spark.reset()


def test_a_memory_setting_out_of_range_is_one_error_before_the_lock(spark):
    state_before = spark.state()
    run = spark.run("deploy-voxtral.yml", {"voxtral_memory_margin_gib": -1})
    assert run.status == "failed", run.stdout[-3000:]
    [message] = run.failure_messages()
    assert message == "voxtral_memory_margin_gib is -1; allowed: GiB, 0 or more"
    assert run.changed_count() == 0
    assert spark.state() == state_before
    assert_gemma_serving_and_voxtral_stopped(spark)


FLOOR_RECORD = "/var/lib/voxtral-tts/memory-floor.json"
SPIKE_GIB = 5


def mem_available_gib(spark):
    line = spark.sh("grep MemAvailable /proc/meminfo").stdout.split()
    return int(line[1]) / 1024 / 1024


def floor_settings(spark, mode):
    """A floor 2.5 GiB below MemAvailable now (the 5 GiB spike crosses it by 2.5 GiB), no plan margin."""
    floor = round(mem_available_gib(spark) - 2.5, 1)
    return floor, {
        "voxtral_gemma_mode": mode,
        "voxtral_memory_margin_gib": 0,
        "voxtral_service_memory_floor_gib": floor,
    }


def assert_floor_fired(spark, run, floor):
    assert run.status == "failed", run.stdout[-3000:]
    [message] = run.host_errors().values()
    assert message.startswith(ROLLED_BACK), message
    assert "memory floor: Voxtral was killed at " in message, message
    assert f"fell below the floor of {floor} GiB (voxtral_service_memory_floor_gib)" in message, message
    record = json.loads(spark.sh(f"cat {FLOOR_RECORD}").stdout)
    assert record["why"] == "MemAvailable fell below the memory floor"
    assert record["mem_available_gib"] < floor == record["floor_gib"]
    assert record["gone_after_s"] is not None and record["gone_after_s"] < 30
    journal = spark.sh("journalctl -u voxtral-memory-floor.service -o cat --no-pager").stdout
    assert "killed voxtral-tts.service" in journal, journal
    assert not spark.is_active("voxtral-tts.service")
    assert spark.sh("systemctl show -p Result --value voxtral-tts.service").stdout.strip() == "signal"
    return record


def test_coexisting_a_start_past_the_memory_floor_is_killed_and_gemma_never_stopped(spark):
    write_behaviour(
        spark.hostvars, VOXTRAL_BEHAVIOUR, {**VOXTRAL_NORMAL, "profile_spike_gib": SPIKE_GIB, "profile_spike_s": 20}
    )
    started_at = spark.gemma_started_at()
    floor, settings = floor_settings(spark, "coexist")
    try:
        run = spark.run("deploy-voxtral.yml", settings)
        assert_floor_fired(spark, run, floor)
        assert spark.gemma_started_at() == started_at, "Gemma's unit was restarted by a coexisting flight"
        # Beside a serving Gemma a killed Voxtral stays down (Restart=no): it would squeeze Gemma again.
        assert spark.sh("systemctl show -p NRestarts --value voxtral-tts.service").stdout.strip() == "0"
        assert_gemma_serving_and_voxtral_stopped(spark)
        assert spark.state()["voxtral"]["mode"] == "coexist"
    finally:
        spark.reset()


def test_paused_a_start_past_the_memory_floor_is_killed_and_gemma_comes_back(spark):
    write_behaviour(
        spark.hostvars, VOXTRAL_BEHAVIOUR, {**VOXTRAL_NORMAL, "profile_spike_gib": SPIKE_GIB, "profile_spike_s": 20}
    )
    floor, settings = floor_settings(spark, "pause")
    try:
        run = spark.run("deploy-voxtral.yml", settings)
        assert_floor_fired(spark, run, floor)
        assert_gemma_serving_and_voxtral_stopped(spark)
        assert spark.state()["gemma"]["paused"] is False
    finally:
        spark.reset()
