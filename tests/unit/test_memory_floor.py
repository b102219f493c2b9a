"""The memory floor (roles/voxtral_service/files/memory_floor.py): below the floor it kills the unit at once and
records why with the figures; above it, it only watches. systemctl is a stand-in on PATH that logs its calls."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("memory_floor", ROOT / "roles/voxtral_service/files/memory_floor.py")
memory_floor = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(memory_floor)
GIB_KIB = 1024 * 1024


def meminfo(path: Path, available_gib: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"MemTotal:       25165824 kB\nMemFree:         1000000 kB\nMemAvailable: {int(available_gib * GIB_KIB)} kB\n"
    )
    os.replace(tmp, path)


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    """A systemctl that logs each call; the unit is gone once it was killed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$1" in\n'
        f'  show) if grep -q "^kill" {calls}; then echo ActiveState=failed; echo MainPID=0;'
        " else echo ActiveState=active; echo MainPID=4242; fi;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_below_the_floor_the_unit_is_killed_at_once_and_the_figures_recorded(tmp_path, systemctl):
    info, record = tmp_path / "meminfo", tmp_path / "memory-floor.json"
    meminfo(info, 12.0)

    def fall():  # a start that overshoots: MemAvailable falls past the 4 GiB floor
        time.sleep(0.3)
        meminfo(info, 3.2)

    threading.Thread(target=fall).start()
    result = memory_floor.watch("voxtral-tts.service", 4 * GIB_KIB, 0.05, str(record), str(info))

    calls = systemctl.read_text().splitlines()
    assert calls[0] == "kill --signal=SIGKILL voxtral-tts.service"
    assert all(call.startswith("show voxtral-tts.service") for call in calls[1:])
    written = json.loads(record.read_text())
    assert written == result
    assert (written["mem_available_gib"], written["floor_gib"], written["poll_ms"]) == (3.2, 4.0, 50)
    assert written["why"] == "MemAvailable fell below the memory floor"
    assert 0 <= written["gone_after_s"] < 5
    assert written["mem_available_after_gib"] == 3.2
    assert written["fired_at"].endswith("Z")


def test_above_the_floor_it_only_watches(tmp_path, systemctl):
    info, record = tmp_path / "meminfo", tmp_path / "memory-floor.json"
    meminfo(info, 12.0)
    seen_before_the_fall = {}

    def fall():  # half a second (25 looks) above the floor, then below it
        time.sleep(0.5)
        seen_before_the_fall.update(calls=systemctl.exists(), record=record.exists())
        meminfo(info, 1.0)

    threading.Thread(target=fall).start()
    memory_floor.watch("voxtral-tts.service", 4 * GIB_KIB, 0.02, str(record), str(info))
    assert seen_before_the_fall == {"calls": False, "record": False}  # it only watched
    assert json.loads(record.read_text())["mem_available_gib"] == 1.0


def test_a_meminfo_without_mem_available_is_an_error_not_a_silent_watch(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 1 kB\n")
    with pytest.raises(RuntimeError, match="has no MemAvailable"):
        memory_floor.mem_available_kib(str(info))
