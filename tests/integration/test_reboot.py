"""A reboot during a flight and after one, on one simulated Spark (its container restarted: systemd shuts down
and boots again, the disk is kept, /run and the guard's transient timer are not).

One instance for the module (prepared once with tests/simulated/prepare-spark.yml); the cases run in order:
1. mid-flight: a pause-mode deploy whose Voxtral takes minutes to start, its controller killed once Gemma is
   paused, then the host rebooted. The guard's boot step (voxtral-flight-guard-boot.service) finds the guard
   still armed in the state file and gives Gemma back: Gemma active, enabled as before and answering, Voxtral
   stopped, the state file saying the flight was interrupted by the reboot. A rollback from the controller
   then takes over the dead run's lock (reset for the next case).
2. after a good flight: a pause-mode deploy that succeeds (guard disarmed), then the host rebooted. The boot
   step does nothing: the state file is unchanged, Gemma stays paused, Voxtral is as the flight left it
   (serving when its unit is enabled, stopped when the flight leaves it not enabled at boot).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from playbook_runner import ROOT
from sim_spark import Spark, gemma_answers, write_behaviour, write_inventory

NAME = "voxtral-reboot"
LOCK = "/var/lib/voxtral-deploy/flight.lock"
VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
BOOT_UNIT = "voxtral-flight-guard-boot.service"
# This module flies the pause path: only a paused Gemma needs the guard (auto coexists on the simulated Spark).
PAUSE = {"voxtral_gemma_mode": "pause"}


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    with Spark.prepared(NAME, tmp_path_factory.mktemp("reboot")) as spark:
        yield spark


def boot_journal(spark):
    """What the guard's boot step said during this boot."""
    return spark.sh(f"journalctl -b -u {BOOT_UNIT} --no-pager -o cat").stdout


def eventually(check, what, timeout=60):
    """Poll until check() is true (a unit of Type=exec is active before its port is open)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(1)


def test_reboot_mid_flight_gives_gemma_back_and_stops_voxtral(spark, tmp_path):
    assert spark.is_enabled("gemma.service")
    inventory = tmp_path / "inventory.yml"
    write_inventory(str(inventory), {"titan": spark.hostvars})
    # Voxtral takes 10 minutes to open its port: the host surely goes down while Gemma is paused. The guard's
    # deadline is further still and its heartbeat check is off (the dead controller's heartbeat would otherwise
    # restore Gemma a minute after the kill), so only the boot step can give Gemma back.
    write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {"start_delay_s": 600})
    log = open(tmp_path / "deploy.log", "w")  # noqa: SIM115 (handed to the child process)
    deploy = subprocess.Popen(
        ["ansible-playbook", "-i", str(inventory), "deploy-voxtral.yml", "-e", "flight_guard_deadline=1h",
         "-e", "flight_guard_heartbeat_timeout=0",
         "-e", "voxtral_gemma_mode=pause", "-e", f"voxtral_artifacts_dir={spark.artifacts}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        # The pause records itself before it stops the unit: wait for both.
        while not (spark.state().get("gemma", {}).get("paused") and not spark.is_active("gemma.service")):
            assert deploy.poll() is None, Path(log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "Gemma was never paused"
            time.sleep(1)
        os.killpg(deploy.pid, signal.SIGKILL)
        deploy.wait()
        before = spark.state()
        assert before["flight_guard"]["armed"] is True
        assert spark.is_enabled(BOOT_UNIT)
        # The fake Voxtral would start at once after the reboot if its unit were started at boot.
        write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {})

        spark.reboot()

        assert not spark.is_active("voxtral-flight-guard.timer")  # transient: gone with the reboot
        assert spark.is_active("gemma.service")
        assert spark.is_enabled("gemma.service")  # it was before the flight
        eventually(lambda: gemma_answers(spark.hostvars), "Gemma does not answer after the reboot")
        assert not spark.is_active("voxtral-tts.service")
        assert not spark.is_enabled("voxtral-tts.service")
        guard = spark.state()["flight_guard"]
        assert guard["armed"] is False
        assert guard["fired"] is True
        assert guard["why"] == "reboot during the flight"
        assert guard["guard_ok"] is True
        assert guard["guard_fired_at"] >= before["flight_guard"]["armed_at"]
        gemma = spark.state()["gemma"]
        assert gemma["paused"] is False
        assert gemma["restored_by"] == "flight_guard"
        assert "reboot during the flight" in boot_journal(spark)

        # The dead controller's lock survived the reboot (it is on disk): a rollback takes it over.
        assert spark.sh(f"test -e {LOCK}").returncode == 0
        rollback = spark.run("rollback-voxtral.yml", {"voxtral_force_lock": True})
        assert rollback.status == "successful", rollback.stdout[-3000:]
        assert spark.sh(f"test -e {LOCK}").returncode == 1
        assert spark.is_active("gemma.service")
    finally:
        log.close()
        if deploy.poll() is None:
            os.killpg(deploy.pid, signal.SIGKILL)
        write_behaviour(spark.hostvars, VOXTRAL_BEHAVIOUR, {})


def test_reboot_after_a_good_flight_keeps_its_end_state(spark):
    deploy = spark.run("deploy-voxtral.yml", PAUSE)
    assert deploy.status == "successful", deploy.stdout[-3000:]
    # The second arm on this host: the boot step is installed and enabled already.
    for task in ("Install the guard's boot step", "Enable the guard's boot step"):
        [result] = deploy.ok_results(task)
        assert not result["changed"], task
    state = spark.state()
    assert state["flight_guard"]["armed"] is False
    assert not spark.is_active("gemma.service")
    voxtral_at_boot = spark.is_enabled("voxtral-tts.service")
    gemma_at_boot = spark.is_enabled("gemma.service")

    spark.reboot()

    journal = boot_journal(spark)
    assert "not armed" in journal
    assert "restoring Gemma" not in journal
    assert spark.state() == state
    assert not spark.is_active("gemma.service")
    assert spark.is_enabled("gemma.service") == gemma_at_boot
    # The flight's end state: a Voxtral enabled at boot serves again, one that is not stays stopped.
    assert spark.is_enabled("voxtral-tts.service") == voxtral_at_boot
    assert spark.is_active("voxtral-tts.service") == voxtral_at_boot
