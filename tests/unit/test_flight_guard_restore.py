"""The flight guard's restore program (roles/flight_guard/files/flight_guard_restore.py), without systemd.

The commands it would run are recorded instead of run; the state file is real, written through the same
state_file helper (and lock) as the flight_state module.
"""

from __future__ import annotations

import importlib.util
import json
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
    settings = {"unit_name": "voxtral-flight-guard", "voxtral_unit": "voxtral-tts.service", "start_timeout": 30}
    config.write_text(json.dumps({**settings, "state_path": str(state)}))
    commands = []
    installed = {"voxtral-tts.service"}
    monkeypatch.setattr(module, "run", lambda config, argv, timeout=120: commands.append(argv) or True)
    monkeypatch.setattr(module, "unit_exists", lambda unit: unit in installed)

    class Guard:
        def fire(self, gemma=None):
            if gemma is not None:
                state.write_text(json.dumps({"gemma": gemma}))
            return module.main([str(config)])

        def state(self):
            return json.loads(state.read_text())

    Guard.commands = commands
    Guard.installed = installed
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
