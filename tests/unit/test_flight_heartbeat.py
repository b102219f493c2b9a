"""The flight's heartbeat: beaten by the modules the controller runs, never created by them; the guard's decision."""

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat
from ansible_collections.voxtral.deploy.plugins.modules import async_progress, flight_state


def run_module(capsys, module, **args) -> dict:
    with patch_module_args({**args, "_ansible_check_mode": True}), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def heartbeat(tmp_path):
    path = str(tmp_path / "run" / "voxtral-deploy" / "flight-heartbeat")
    flight_heartbeat.start(path)
    os.utime(path, (1_000_000, 1_000_000))  # an old beat
    return path


def test_start_creates_beat_refreshes_stop_removes(tmp_path):
    path = str(tmp_path / "run" / "flight-heartbeat")
    assert flight_heartbeat.beat(path) is False and not os.path.exists(path)  # no guard armed: nothing written
    assert flight_heartbeat.age(path) is None
    flight_heartbeat.start(path)
    os.utime(path, (1_000_000, 1_000_000))
    assert flight_heartbeat.age(path, now=1_000_042) == 42
    assert flight_heartbeat.beat(path) is True
    assert flight_heartbeat.age(path) < 5
    flight_heartbeat.stop(path)
    flight_heartbeat.stop(path)  # twice: harmless
    assert not os.path.exists(path)


def test_flight_state_beats_on_every_call_even_a_check_mode_read(capsys, heartbeat, tmp_path):
    result = run_module(capsys, flight_state, path=str(tmp_path / "state.json"), state="read", heartbeat=heartbeat)
    assert result["state_data"] == {}
    assert flight_heartbeat.age(heartbeat) < 5


def test_flight_state_never_creates_a_heartbeat(capsys, tmp_path):
    missing = str(tmp_path / "run" / "flight-heartbeat")
    run_module(capsys, flight_state, path=str(tmp_path / "state.json"), state="read", heartbeat=missing)
    assert not os.path.exists(missing)


def test_async_progress_poll_beats(capsys, heartbeat, tmp_path):
    job_file, log = tmp_path / "job", tmp_path / "build.log"
    job_file.write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "j1"}))
    log.write_text("== step\n")
    result = run_module(capsys, async_progress, job_file=str(job_file), log=str(log), heartbeat=heartbeat)
    assert result["finished"] is False
    assert flight_heartbeat.age(heartbeat) < 5


@pytest.mark.parametrize(
    ("heartbeat_age", "timeout", "armed", "deadline", "why"),
    [
        (5.0, 60, 100, 1200, None),  # alive, within the deadline
        (61.0, 60, 100, 1200, flight_heartbeat.WHY_HEARTBEAT),  # the controller is gone
        (None, 60, 100, 1200, flight_heartbeat.WHY_HEARTBEAT),  # no heartbeat while armed
        (5.0, 60, 1200, 1200, flight_heartbeat.WHY_DEADLINE),  # alive, but the deadline passed
        (61.0, 60, 1300, 1200, flight_heartbeat.WHY_DEADLINE),  # both: the deadline says it
        (500.0, 0, 100, 1200, None),  # heartbeat judged off: the deadline alone
    ],
)
def test_guard_decision(heartbeat_age, timeout, armed, deadline, why):
    assert flight_heartbeat.decide(heartbeat_age, timeout, armed, deadline) == why
