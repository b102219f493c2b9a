"""The flight guard's heartbeat on one simulated Spark: a dead controller costs Gemma about a minute, a slow but
live flight is never interrupted.

Both cases fly the pause path with a fake Voxtral whose start outlasts the heartbeat timeout several times over:
1. alive, about the mechanism, with short guard settings (a look every 5 s, a 20 s timeout, a 60 s start): the
   controller waits out the whole start (its polls refresh the heartbeat); the deploy succeeds, the guard
   looked many times and never fired.
2. dead, about the defaults (a look every flight_guard_heartbeat_poll = 10 s, flight_guard_heartbeat_timeout =
   60 s, the deadline of tests/simulated/spark-vars.yml, 10 min; a 180 s start): the controller is killed
   (SIGKILL of ansible-playbook's process group) during Voxtral's start; the
   guard stops the swap still running on the host, stops Voxtral and gives Gemma back, recording why and the
   heartbeat's age, well before the deadline. How many seconds that takes is measured by
   benchmarks/flight_bench.py, not asserted here: the host's own record of the heartbeat's age is.
3. dead while coexisting (short settings again; issue 26): the controller is killed during the start of a
   Voxtral beside the serving Gemma; the guard takes the unproven Voxtral back and leaves Gemma alone (its
   unit's start time unchanged).
"""

import re
import time

import pytest
from sim_spark import (
    LOCK_FILE,
    Spark,
    gemma_answers,
    kill_deploy_during_voxtrals_start,
    write_behaviour,
)

NAME = "voxtral-heartbeat"
VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
GUARD_SERVICE = "voxtral-flight-guard.service"
HEARTBEAT = "/run/voxtral-deploy/flight-heartbeat"
# The role's defaults (roles/flight_guard/defaults/main.yml), which the dead case keeps.
HEARTBEAT_TIMEOUT, HEARTBEAT_POLL = 60, 10
# A start of several heartbeat timeouts; the service's own limits are raised to let it finish.
START_DELAY_S = 180
SLOW_START = {"voxtral_gemma_mode": "pause", "voxtral_service_init_timeout": START_DELAY_S + 120}
# The live case is about the mechanism: the same shape, three times shorter.
SHORT_TIMEOUT, SHORT_POLL, SHORT_START_S = 20, 5, 60
SHORT_SETTINGS = {
    "voxtral_gemma_mode": "pause",
    "voxtral_service_init_timeout": SHORT_START_S + 120,
    "flight_guard_heartbeat_timeout": SHORT_TIMEOUT,
    "flight_guard_heartbeat_poll": SHORT_POLL,
}


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    with Spark.prepared(NAME, tmp_path_factory.mktemp("heartbeat")) as spark:
        yield spark


def guard_looks(spark):
    """How many times the guard's service ran during this flight (one start job per look)."""
    result = spark.sh(f'journalctl -u {GUARD_SERVICE} -o json --no-pager | grep -c \'"JOB_TYPE":"start"\'')
    return int(result.stdout.strip() or 0)


def guard_journal(spark):
    return spark.sh(f"journalctl -u {GUARD_SERVICE} -o cat --no-pager").stdout


def test_a_slow_start_with_a_live_controller_is_never_interrupted(spark):
    write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {"start_delay_s": SHORT_START_S, "start_log_every_s": 10})
    spark.sh(f"journalctl --rotate --vacuum-time=1s >/dev/null 2>&1; systemctl reset-failed {GUARD_SERVICE}")
    try:
        deploy = spark.run("deploy-voxtral.yml", SHORT_SETTINGS)
        assert deploy.status == "successful", deploy.stdout[-3000:]
        guard = spark.state()["flight_guard"]
        assert guard["armed"] is False
        assert "fired" not in guard, guard
        assert guard["heartbeat_timeout"] == SHORT_TIMEOUT
        assert guard["heartbeat_poll"] == SHORT_POLL
        # It was watching all along: about one look per poll over a start of SHORT_START_S.
        assert guard_looks(spark) >= SHORT_START_S // SHORT_POLL // 2, guard_journal(spark)
        assert "restoring Gemma" not in guard_journal(spark)
        assert spark.is_active("voxtral-tts.service")
        assert spark.sh(f"test -e {HEARTBEAT}").returncode == 1  # disarm removed it
    finally:
        write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {})
        rollback = spark.run("rollback-voxtral.yml")
        assert rollback.status == "successful", rollback.stdout[-3000:]


def test_a_dead_controller_gives_gemma_back_at_the_heartbeat_timeout(spark, tmp_path):
    write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {"start_delay_s": START_DELAY_S, "start_log_every_s": 20})
    try:
        killed = kill_deploy_during_voxtrals_start(
            spark.hostvars, tmp_path, {**SLOW_START, "voxtral_artifacts_dir": spark.artifacts}
        )
        # An operator's status read meanwhile shows the silence, and does not break it (it never beats). The
        # dead controller's last remote task may still end and beat: read the heartbeat once it stands still.
        beat_before = None
        while beat_before != (beat_before := spark.sh(f"stat -c %.9Y {HEARTBEAT}").stdout):
            time.sleep(3)
        status = spark.run("status-voxtral.yml")
        assert status.status == "successful", status.stdout[-3000:]
        assert re.search(
            r"guard    armed since .*; controller last seen [0-9.]+ s ago, restores Gemma after 60 s", status.stdout
        )
        assert spark.sh(f"stat -c %.9Y {HEARTBEAT}").stdout == beat_before
        while not gemma_answers(spark.hostvars):
            assert time.monotonic() - killed < 600, f"the guard did not restore Gemma:\n{guard_journal(spark)}"
            time.sleep(2)
        print(f"controller killed -> Gemma answering: {time.monotonic() - killed:.1f} s")
        print(spark.sh(f"journalctl -u {GUARD_SERVICE} -o short-precise --no-pager | grep -v systemd").stdout)

        guard = spark.state()["flight_guard"]
        assert guard["why"] == "the controller's heartbeat stopped", guard
        assert guard["guard_ok"] is True
        assert (guard["heartbeat_timeout"], guard["heartbeat_poll"]) == (HEARTBEAT_TIMEOUT, HEARTBEAT_POLL)
        # The host's own record: fired one look (plus the timer's accuracy and the look itself) after the timeout.
        assert HEARTBEAT_TIMEOUT <= guard["heartbeat_age_s"] <= HEARTBEAT_TIMEOUT + HEARTBEAT_POLL + 5, guard
        assert guard["armed_for_s"] < 600, guard  # well before the deadline
        assert not spark.is_active("voxtral-tts.service")
        assert spark.state()["gemma"]["restored_by"] == "flight_guard"
        journal = guard_journal(spark)
        assert "the controller's heartbeat stopped" in journal
        # The swap was still waiting for Voxtral on the host: the guard stopped it before restoring.
        assert "stopped the swap" in journal, journal
        assert spark.sh(f"test -e {HEARTBEAT}").returncode == 1
        # The dead controller's lock stays: a rollback from anywhere takes it over.
        assert spark.sh(f"test -e {LOCK_FILE}").returncode == 0
        rollback = spark.run("rollback-voxtral.yml", {"voxtral_force_lock": True})
        assert rollback.status == "successful", rollback.stdout[-3000:]
    finally:
        write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {})


def test_a_dead_controller_while_coexisting_takes_voxtral_back_and_leaves_gemma_alone(spark, tmp_path):
    write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {"start_delay_s": SHORT_START_S, "start_log_every_s": 10})
    gemma_started_at = spark.started_at("gemma.service")
    coexist = {**SHORT_SETTINGS, "voxtral_gemma_mode": "coexist", "voxtral_artifacts_dir": spark.artifacts}
    try:
        killed = kill_deploy_during_voxtrals_start(spark.hostvars, tmp_path, coexist, coexisting=True)
        while spark.is_active("voxtral-tts.service") or spark.sh(f"test -e {HEARTBEAT}").returncode == 0:
            assert time.monotonic() - killed < 300, f"the guard did not take Voxtral back:\n{guard_journal(spark)}"
            time.sleep(2)
        guard = spark.state()["flight_guard"]
        assert guard["why"] == "the controller's heartbeat stopped", guard
        assert guard["guard_voxtral_stopped"] is True and guard["guard_ok"] is True, guard
        assert guard["guard_gemma"] == "left serving: unit gemma.service was never stopped", guard
        assert SHORT_TIMEOUT <= guard["heartbeat_age_s"] <= SHORT_TIMEOUT + SHORT_POLL + 5, guard
        assert spark.started_at("gemma.service") == gemma_started_at, "the guard stopped or restarted Gemma"
        assert gemma_answers(spark.hostvars)
        assert spark.sh("systemctl is-enabled voxtral-tts.service").stdout.strip() != "enabled"
        rollback = spark.run("rollback-voxtral.yml", {"voxtral_force_lock": True})
        assert rollback.status == "successful", rollback.stdout[-3000:]
        assert spark.started_at("gemma.service") == gemma_started_at
    finally:
        write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {})
