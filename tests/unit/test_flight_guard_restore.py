"""The flight guard's restore program (roles/flight_guard/files/flight_guard_restore.py), without systemd.

The commands it would run are recorded instead of run; the state file is real, written through the same
state_file helper (and lock) as the flight_state module. Both modes: the transient timer's (deadline) and the
boot step's (--boot: acts only when the state file still says armed). And the boot step's unit as the role
renders it. Every restore takes the guard lock first (a swap that holds it is stopped).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parents[2] / "roles" / "flight_guard" / "files" / "flight_guard_restore.py"


@pytest.fixture
def guard(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("flight_guard_restore", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = tmp_path / "state.json"
    config = tmp_path / "guard.json"
    settings = {
        "unit_name": "voxtral-flight-guard",
        "voxtral_unit": "voxtral-tts.service",
        "start_timeout": 30,
        # The host's /run is never touched (check() gives a heartbeat of its own).
        "lock_path": str(tmp_path / "run" / "flight-guard.lock"),
        "heartbeat_path": str(tmp_path / "run" / "flight-heartbeat"),
        "lock_wait_seconds": 5,
    }
    config.write_text(json.dumps({**settings, "state_path": str(state)}))
    commands = []
    installed = {"voxtral-tts.service"}
    monkeypatch.setattr(module, "run", lambda config, argv, timeout=120: commands.append(argv) or True)
    monkeypatch.setattr(module, "unit_exists", lambda unit: unit in installed)
    active = set()  # units systemd would call active
    monkeypatch.setattr(module, "unit_active", lambda unit: unit in active)

    class Guard:
        def fire(self, gemma=None):
            if gemma is not None:
                state.write_text(json.dumps({"gemma": gemma}))
            return module.main([str(config)])

        def boot(self, record=None):
            """The boot step, with `record` (the whole state file) written first when given."""
            if record is not None:
                state.write_text(json.dumps(record))
            return module.main(["--boot", str(config)])

        def check(self, record, heartbeat_age=None, heartbeat_timeout=60, deadline_seconds=1200):
            """One look of the heartbeat guard, with `record` as the state file and a heartbeat of that age."""
            heartbeat = tmp_path / "run" / "flight-heartbeat"
            heartbeat.unlink(missing_ok=True)
            if heartbeat_age is not None:
                heartbeat.parent.mkdir(exist_ok=True)
                heartbeat.touch()
                beat = time.time() - heartbeat_age
                os.utime(heartbeat, (beat, beat))
            config.write_text(json.dumps({
                **settings, "state_path": str(state), "heartbeat_path": str(heartbeat),
                "heartbeat_timeout": heartbeat_timeout, "deadline_seconds": deadline_seconds,
            }))  # fmt: skip
            state.write_text(json.dumps(record))
            status = module.main(["--check", str(config)])
            self.heartbeat_left = heartbeat.exists()
            return status

        def state(self):
            return json.loads(state.read_text())

    Guard.commands = commands
    Guard.installed = installed
    Guard.active = active
    Guard.settings = settings
    Guard.module = module
    Guard.state_path = state
    return Guard()


PAUSED_UNIT = {
    "mode": "systemd",
    "unit": "gemma.service",
    "paused": True,
    "was_active": True,
    "was_enabled": True,
    "paused_at": "2026-12-01T10:00:00Z",
}


def test_restores_the_unit_the_state_file_recorded_and_records_the_firing(guard):
    assert guard.fire(PAUSED_UNIT) == 0
    assert guard.commands == [
        ["systemctl", "disable", "--now", "voxtral-tts.service"],
        ["systemctl", "enable", "gemma.service"],
        ["systemctl", "start", "gemma.service"],
    ]
    state = guard.state()
    assert state["flight_guard"]["armed"] is False
    assert state["flight_guard"]["guard_ok"] is True
    assert state["flight_guard"]["guard_gemma"] == "started unit gemma.service"
    assert state["gemma"]["paused"] is False
    assert state["gemma"]["restored_by"] == "flight_guard"
    assert state["gemma"]["outage_seconds"] > 0
    assert state["gemma"]["guard_fired_at"] == state["flight_guard"]["guard_fired_at"]
    assert state["flight_guard"]["fired"] is True
    assert state["flight_guard"]["why"] == "deadline passed without a disarm"


def test_a_coexisting_flights_gemma_that_never_stopped_is_not_touched(guard):
    """Armed beside a serving Gemma (coexist): the guard takes Voxtral back and leaves Gemma as it is."""
    guard.active.add("gemma.service")
    assert guard.fire({**PAUSED_UNIT, "paused": False}) == 0
    assert guard.commands == [["systemctl", "disable", "--now", "voxtral-tts.service"]]
    state = guard.state()
    assert state["flight_guard"]["guard_gemma"] == "left serving: unit gemma.service was never stopped"
    assert state["flight_guard"]["guard_voxtral_stopped"] is True
    assert "restored_by" not in state["gemma"]


def test_restores_a_recorded_container(guard):
    guard.installed.clear()
    record = {"mode": "container", "container_engine": "docker", "container_name": "gemma", "paused": True}
    assert guard.fire(record) == 0
    assert guard.commands == [["docker", "start", "gemma"]]
    assert guard.state()["flight_guard"]["guard_gemma"] == "started docker container gemma"
    assert guard.state()["flight_guard"]["guard_voxtral_stopped"] is True


def test_leaves_a_gemma_that_was_not_running_stopped(guard):
    assert guard.fire({**PAUSED_UNIT, "was_active": False}) == 0
    assert guard.commands == [["systemctl", "disable", "--now", "voxtral-tts.service"]]


def test_starts_nothing_it_was_not_told_about(guard):
    """No gemma record (no baseline was taken): the guard guesses no unit, fails, and says why."""
    assert guard.fire({}) == 1
    assert guard.commands == [["systemctl", "disable", "--now", "voxtral-tts.service"]]
    assert "no Gemma recorded" in guard.state()["flight_guard"]["guard_gemma"]
    assert guard.state()["flight_guard"]["guard_ok"] is False


def test_waits_for_the_state_file_lock_the_flight_state_module_holds(guard):
    from ansible_collections.voxtral.deploy.plugins.module_utils import state_file

    guard.state_path.write_text(json.dumps({"gemma": PAUSED_UNIT}))
    outcome = []
    with state_file.locked(str(guard.state_path)):
        firing = threading.Thread(target=lambda: outcome.append(guard.fire()))
        firing.start()
        time.sleep(0.3)
        assert firing.is_alive(), "the guard read the state file while another writer held its lock"
        state_file.save(str(guard.state_path), {"gemma": PAUSED_UNIT, "release": {"version": "0.30.0"}})
    firing.join(5)
    assert outcome == [0]
    # The other writer's update survived the guard's write.
    assert guard.state()["release"] == {"version": "0.30.0"}


ARMED = {"armed": True, "armed_at": "2026-12-01T09:59:50Z", "deadline": "20min"}


def test_boot_with_the_guard_still_armed_stops_voxtral_restores_gemma_and_says_the_flight_was_interrupted(guard):
    assert guard.boot({"flight_guard": ARMED, "gemma": PAUSED_UNIT, "voxtral": {"deployed": True}}) == 0
    assert guard.commands == [
        ["systemctl", "disable", "--now", "voxtral-tts.service"],
        ["systemctl", "enable", "gemma.service"],
        ["systemctl", "start", "gemma.service"],
    ]
    state = guard.state()
    section = state["flight_guard"]
    assert section["armed"] is False
    assert section["fired"] is True
    assert section["why"] == "reboot during the flight"
    assert section["guard_fired_at"]
    assert section["guard_ok"] is True
    # What the arm recorded stays beside the firing.
    assert section["armed_at"] == ARMED["armed_at"]
    assert state["gemma"]["paused"] is False
    assert state["gemma"]["restored_by"] == "flight_guard"
    assert state["voxtral"] == {"deployed": True}


def test_boot_leaves_a_gemma_that_was_not_enabled_disabled(guard):
    assert guard.boot({"flight_guard": ARMED, "gemma": {**PAUSED_UNIT, "was_enabled": False}}) == 0
    assert ["systemctl", "enable", "gemma.service"] not in guard.commands
    assert ["systemctl", "start", "gemma.service"] in guard.commands


@pytest.mark.parametrize(
    "record",
    [
        {"flight_guard": {**ARMED, "armed": False, "disarmed_at": "2026-12-01T10:05:00Z"}, "gemma": PAUSED_UNIT},
        {"flight_guard": {**ARMED, "armed": False, "fired": True, "why": "deadline passed without a disarm"}},
        {"gemma": PAUSED_UNIT},
    ],
    ids=["disarmed after a good flight", "already fired", "never armed"],
)
def test_boot_with_the_guard_not_armed_does_nothing(guard, record):
    guard.boot(record)
    before = guard.state_path.read_bytes()
    assert guard.boot() == 0
    assert guard.commands == []
    assert guard.state_path.read_bytes() == before


def test_boot_on_a_host_without_a_state_file_does_nothing(guard):
    assert guard.boot() == 0
    assert guard.commands == []
    assert not guard.state_path.exists()


def test_boot_failure_to_start_gemma_is_recorded_and_fails_the_unit(guard, monkeypatch):
    monkeypatch.setattr(guard.module, "run", lambda config, argv, timeout=120: argv[:2] != ["systemctl", "start"])
    assert guard.boot({"flight_guard": ARMED, "gemma": PAUSED_UNIT}) == 1
    section = guard.state()["flight_guard"]
    assert section["guard_ok"] is False
    assert section["why"] == "reboot during the flight"
    assert guard.state()["gemma"]["paused"] is True


def render_boot_unit(**overrides):
    import yaml
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role = PROGRAM.parents[1]
    variables = {"ansible_managed": "Ansible managed"}
    for name in ("defaults/main.yml", "vars/main.yml"):
        variables.update(yaml.safe_load((role / name).read_text()))
    variables.update(overrides)
    trusted = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in variables.items()}
    templar = Templar(loader=DataLoader(), variables=trusted)
    return templar.template(trust_as_template((role / "templates" / "flight-guard-boot.service.j2").read_text()))


def test_boot_unit_runs_the_same_program_in_boot_mode_before_voxtral_and_is_wanted_at_boot():
    unit = render_boot_unit()
    assert unit.startswith("#\n# Ansible managed\n#\n")
    lines = unit.splitlines()
    script = "/usr/local/libexec/voxtral-deploy/flight-guard-restore"
    assert f"ExecStart={script} --boot {script}.json" in lines
    assert "Type=oneshot" in lines
    assert "Before=voxtral-tts.service multi-user.target" in lines
    assert "After=network.target docker.service" in lines
    assert "WantedBy=multi-user.target" in lines


def armed(seconds_ago: float) -> dict:
    from ansible_collections.voxtral.deploy.plugins.module_utils import state_file

    return {"armed": True, "armed_at": state_file.utc_iso(time.time() - seconds_ago)}


def test_check_with_a_fresh_heartbeat_within_the_deadline_changes_nothing(guard):
    record = {"gemma": PAUSED_UNIT, "flight_guard": armed(120)}
    assert guard.check(record, heartbeat_age=5) == 0
    assert guard.commands == []
    assert guard.state() == record
    assert guard.heartbeat_left


def test_check_with_a_stale_heartbeat_restores_gemma_and_records_its_age(guard):
    assert guard.check({"gemma": PAUSED_UNIT, "flight_guard": armed(120)}, heartbeat_age=75) == 0
    assert guard.commands == [
        ["systemctl", "disable", "--now", "voxtral-tts.service"],
        ["systemctl", "enable", "gemma.service"],
        ["systemctl", "start", "gemma.service"],
        ["systemctl", "stop", "--no-block", "voxtral-flight-guard.timer"],
    ]
    fired = guard.state()["flight_guard"]
    assert fired["why"] == "the controller's heartbeat stopped"
    assert fired["armed"] is False and fired["fired"] is True
    assert 74 <= fired["heartbeat_age_s"] <= 80
    assert 119 <= fired["armed_for_s"] <= 125
    assert guard.state()["gemma"]["restored_by"] == "flight_guard"
    assert not guard.heartbeat_left  # later beats of a late module write nothing


def test_check_with_no_heartbeat_while_armed_restores_gemma(guard):
    assert guard.check({"gemma": PAUSED_UNIT, "flight_guard": armed(10)}, heartbeat_age=None) == 0
    assert guard.state()["flight_guard"]["why"] == "the controller's heartbeat stopped"
    assert guard.state()["flight_guard"]["heartbeat_age_s"] is None


def test_check_past_the_deadline_restores_gemma_though_the_heartbeat_is_fresh(guard):
    assert guard.check({"gemma": PAUSED_UNIT, "flight_guard": armed(1300)}, heartbeat_age=1) == 0
    assert guard.state()["flight_guard"]["why"] == "deadline passed without a disarm"


def test_check_of_a_disarmed_guard_only_stops_its_timer(guard):
    record = {"gemma": {**PAUSED_UNIT, "paused": False}, "flight_guard": {"armed": False}}
    assert guard.check(record, heartbeat_age=500) == 0
    assert guard.commands == [["systemctl", "stop", "--no-block", "voxtral-flight-guard.timer"]]
    assert guard.state() == record


def test_restore_holds_the_guard_lock_while_it_acts(guard, monkeypatch, capsys):
    from ansible_collections.voxtral.deploy.plugins.module_utils import guard_lock

    refused = []

    def run(config, argv, timeout=120):
        try:
            with guard_lock.for_swap(guard.settings["lock_path"]):
                pass
        except guard_lock.LockBusy as exc:
            refused.append(str(exc))
        guard.commands.append(argv)
        return True

    monkeypatch.setattr(guard.module, "run", run)
    assert guard.fire(PAUSED_UNIT) == 0
    assert len(refused) == len(guard.commands) == 3  # a swap could start beside none of them
    journal = capsys.readouterr().out.splitlines()
    assert journal[0] == f"voxtral-flight-guard: took {guard.settings['lock_path']} (nobody held it)"


def test_restore_stops_a_swap_that_holds_the_lock_with_sigterm_and_removes_the_heartbeat(guard, capsys):
    files = PROGRAM.parent
    heartbeat = Path(guard.settings["heartbeat_path"])
    heartbeat.parent.mkdir(exist_ok=True)
    heartbeat.touch()
    code = (
        f"import sys, time; sys.path.insert(0, {str(files)!r}); import guard_lock\n"
        f"with guard_lock.for_swap({guard.settings['lock_path']!r}):\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    swap = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert swap.stdout.readline().strip() == "held"
    try:
        assert guard.fire(PAUSED_UNIT) == 0
        assert swap.wait(5) == -signal.SIGTERM
    finally:
        swap.kill()
        swap.wait()
    journal = capsys.readouterr().out.splitlines()
    assert journal[0].startswith(f"voxtral-flight-guard: stopped the swap (pid {swap.pid}) with SIGTERM, took ")
    assert journal[1].startswith("voxtral-flight-guard: deadline passed without a disarm (at ")
    assert not heartbeat.exists()  # a swap that comes later refuses to stop the Gemma restored here
    assert guard.commands[-1] == ["systemctl", "start", "gemma.service"]


def test_restore_goes_on_without_the_lock_when_it_cannot_be_taken(guard, tmp_path, capsys):
    (tmp_path / "not-a-dir").write_text("")
    lock_path = str(tmp_path / "not-a-dir" / "flight-guard.lock")  # its folder cannot be made
    (tmp_path / "guard.json").write_text(
        json.dumps({**guard.settings, "lock_path": lock_path, "state_path": str(guard.state_path)})
    )
    assert guard.fire(PAUSED_UNIT) == 0
    assert ["systemctl", "start", "gemma.service"] in guard.commands
    journal = capsys.readouterr().out
    assert f"could not take the guard lock {lock_path} (" in journal
    assert "): restoring Gemma without it" in journal
