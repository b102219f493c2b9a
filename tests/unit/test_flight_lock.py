"""flight_lock: atomic take, refusal with who/when, stale take-over, release by the owner only."""

import json
import os
import time

import pytest
from ansible_collections.voxtral.deploy.plugins.modules.flight_lock import FlightLock, LockHeld


class Clock:
    def __init__(self, start=1_800_000_000.0):
        self.t = start

    def __call__(self):
        return self.t


@pytest.fixture
def lock_path(tmp_path):
    return str(tmp_path / "state" / "flight.lock")


def make(lock_path, run_id, clock, **kw):
    return FlightLock(
        lock_path,
        run_id,
        owner=kw.pop("owner", f"user-{run_id}@ctl"),
        purpose=kw.pop("purpose", "deploy-voxtral"),
        now=clock,
        **kw,
    )


def test_take_creates_record_with_who_and_when(lock_path):
    clock = Clock()
    result = make(lock_path, "run-a", clock).acquire()
    assert result["held"] and not result["taken_over"]
    with open(lock_path) as handle:
        record = json.load(handle)
    assert record["owner"] == "user-run-a@ctl"
    assert record["run_id"] == "run-a"
    assert record["acquired_epoch"] == int(clock.t)
    assert record["acquired_at"].endswith("Z")


def test_same_run_takes_again_without_change(lock_path):
    clock = Clock()
    make(lock_path, "run-a", clock).acquire()
    again = make(lock_path, "run-a", clock).acquire()
    assert again["held"]
    assert "already held by this run" in again["message"]


def test_held_lock_refuses_another_run_with_holder_and_age(lock_path):
    clock = Clock()
    make(lock_path, "run-a", clock, owner="alice@laptop").acquire()
    clock.t += 5 * 60
    with pytest.raises(LockHeld) as exc:
        make(lock_path, "run-b", clock, stale_after_minutes=120).acquire()
    message = str(exc.value)
    assert f"flight lock {lock_path} is held by alice@laptop for deploy-voxtral (run run-a)" in message
    assert "5 min ago" in message
    assert "another flight is running on this host" in message


def test_stale_lock_is_taken_over(lock_path):
    clock = Clock()
    make(lock_path, "run-a", clock).acquire()
    clock.t += 121 * 60
    result = make(lock_path, "run-b", clock, stale_after_minutes=120).acquire()
    assert result["taken_over"]
    assert result["previous"]["run_id"] == "run-a"
    assert "taken over" in result["message"]
    with open(lock_path) as handle:
        assert json.load(handle)["run_id"] == "run-b"


def test_release_only_by_owner(lock_path):
    clock = Clock()
    make(lock_path, "run-a", clock).acquire()
    other = make(lock_path, "run-b", clock).release()
    assert "left alone" in other["message"]
    mine = make(lock_path, "run-a", clock).release()
    assert mine["message"].endswith("released")
    assert make(lock_path, "run-a", clock).release()["message"].endswith("was not held")


def test_force_release(lock_path):
    clock = Clock()
    make(lock_path, "run-a", clock).acquire()
    assert make(lock_path, "run-b", clock).release(force=True)["message"].endswith("released")


def test_check_mode_refuses_but_writes_nothing(lock_path):
    clock = Clock()
    result = make(lock_path, "run-a", clock, check_mode=True).acquire()
    assert result["held"]
    assert not os.path.exists(lock_path)
    make(lock_path, "run-a", clock).acquire()
    with pytest.raises(LockHeld):
        make(lock_path, "run-b", clock, check_mode=True).acquire()


def test_unreadable_lock_counts_as_held(lock_path, tmp_path):
    clock = Clock(time.time())  # the age of a torn lock comes from the file's real mtime
    (tmp_path / "state").mkdir()
    with open(lock_path, "w") as handle:
        handle.write("{torn")
    with pytest.raises(LockHeld, match="unreadable lock file"):
        make(lock_path, "run-b", clock).acquire()
