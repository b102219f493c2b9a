"""flight_state: real files in a temporary directory, the module run in-process as Ansible runs it."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.modules import flight_state


def run(capsys, check: bool = False, diff: bool = False, **args) -> dict:
    """Run the module once; return its JSON result (failed results included)."""
    args = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    with patch_module_args(args), pytest.raises(SystemExit):
        flight_state.main()
    return json.loads(capsys.readouterr().out)


def read(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "var" / "lib" / "voxtral-deploy" / "state.json")


def test_creates_parent_directory_and_file_0644(capsys, path):
    result = run(capsys, path=path, section="gemma", data={"baseline_p50_ms": 190})
    assert result["changed"] is True
    assert read(path) == {"gemma": {"baseline_p50_ms": 190}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert result["state_data"] == {"gemma": {"baseline_p50_ms": 190}}
    assert result["section_data"] == {"baseline_p50_ms": 190}
    assert result["exists"] is False


def test_merge_keeps_other_keys_and_sections(capsys, path):
    run(capsys, path=path, section="gemma", data={"unit": "gemma.service", "baseline_p50_ms": 190})
    run(capsys, path=path, section="release", data={"version": "0.30.0"})
    result = run(capsys, path=path, section="gemma", data={"baseline_p50_ms": 201, "paused": True})
    assert result["changed"] is True
    assert read(path) == {
        "gemma": {"unit": "gemma.service", "baseline_p50_ms": 201, "paused": True},
        "release": {"version": "0.30.0"},
    }


def test_same_content_is_not_a_change_and_file_untouched(capsys, path):
    run(capsys, path=path, section="gemma", data={"a": 1, "nested": {"b": [1, 2]}})
    inode = os.stat(path).st_ino
    result = run(capsys, path=path, section="gemma", data={"nested": {"b": [1, 2]}})
    assert result["changed"] is False
    assert os.stat(path).st_ino == inode  # not rewritten


def test_absent_removes_section_and_is_idempotent(capsys, path):
    run(capsys, path=path, section="gemma", data={"a": 1})
    run(capsys, path=path, section="flight_guard", data={"armed": True})
    assert run(capsys, path=path, section="flight_guard", state="absent")["changed"] is True
    assert read(path) == {"gemma": {"a": 1}}
    assert run(capsys, path=path, section="flight_guard", state="absent")["changed"] is False


def test_absent_on_missing_file_creates_nothing(capsys, path):
    result = run(capsys, path=path, section="gemma", state="absent")
    assert result["changed"] is False
    assert not os.path.exists(path)


def test_remove_keys_and_replace(capsys, path):
    run(capsys, path=path, section="gemma", data={"a": 1, "b": 2, "c": 3})
    assert run(capsys, path=path, section="gemma", remove_keys=["b", "missing"])["changed"] is True
    assert read(path)["gemma"] == {"a": 1, "c": 3}
    assert run(capsys, path=path, section="gemma", remove_keys=["b"])["changed"] is False
    run(capsys, path=path, section="gemma", data={"z": 0}, replace=True)
    assert read(path)["gemma"] == {"z": 0}


def test_remove_keys_happens_before_the_merge(capsys, path):
    run(capsys, path=path, section="gemma", data={"paused_at": "old", "restored_at": "old", "keep": 1})
    run(
        capsys,
        path=path,
        section="gemma",
        data={"paused_at": "new"},
        remove_keys=["paused_at", "restored_at"],
    )
    assert read(path)["gemma"] == {"paused_at": "new", "keep": 1}


def test_stamp_only_when_section_changes(capsys, path):
    first = run(capsys, path=path, section="gemma", data={"paused": True}, stamp="paused_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["stamped"])
    assert read(path)["gemma"]["paused_at"] == first["stamped"]
    again = run(capsys, path=path, section="gemma", data={"paused": True}, stamp="paused_at")
    assert again["changed"] is False
    assert "stamped" not in again
    assert read(path)["gemma"]["paused_at"] == first["stamped"]


def test_read_mode_never_writes(capsys, path):
    missing = run(capsys, path=path, state="read")
    missing.pop("invocation")
    assert missing == {"changed": False, "path": path, "state_data": {}, "section_data": {}, "exists": False}
    assert not os.path.exists(os.path.dirname(path))
    run(capsys, path=path, section="gemma", data={"baseline_p50_ms": 190})
    before = os.stat(path)
    result = run(capsys, path=path, state="read", section="gemma")
    assert result["changed"] is False
    assert result["section_data"] == {"baseline_p50_ms": 190}
    assert result["state_data"] == {"gemma": {"baseline_p50_ms": 190}}
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert run(capsys, path=path, state="read", section="nope")["section_data"] == {}


def test_check_mode_reports_and_writes_nothing(capsys, path):
    result = run(capsys, check=True, path=path, section="gemma", data={"a": 1}, stamp="at")
    assert result["changed"] is True
    assert result["state_data"]["gemma"]["a"] == 1
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))
    run(capsys, path=path, section="gemma", data={"a": 1})
    text = Path(path).read_text(encoding="utf-8")
    assert run(capsys, check=True, path=path, section="gemma", data={"a": 2})["changed"] is True
    assert run(capsys, check=True, path=path, section="gemma", data={"a": 1})["changed"] is False
    assert run(capsys, check=True, path=path, section="gemma", state="absent")["changed"] is True
    assert Path(path).read_text(encoding="utf-8") == text


def test_diff_shows_whole_file_before_and_after(capsys, path):
    run(capsys, path=path, section="gemma", data={"a": 1})
    result = run(capsys, diff=True, check=True, path=path, section="gemma", data={"a": 2})
    assert json.loads(result["diff"]["before"]) == {"gemma": {"a": 1}}
    assert json.loads(result["diff"]["after"]) == {"gemma": {"a": 2}}
    assert result["diff"]["before_header"] == path
    created = run(capsys, diff=True, path=path + ".new", section="gemma", data={"a": 1})
    assert created["diff"]["before"] == ""
    assert json.loads(created["diff"]["after"]) == {"gemma": {"a": 1}}


def test_mode_is_enforced(capsys, path):
    run(capsys, path=path, section="gemma", data={"a": 1})
    os.chmod(path, 0o600)
    assert run(capsys, path=path, section="gemma", data={"a": 1})["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    run(capsys, path=path, section="gemma", data={"a": 1}, mode="0640")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_no_temporary_files_left(capsys, path):
    for value in range(3):
        run(capsys, path=path, section="gemma", data={"a": value})
    names = sorted(os.listdir(os.path.dirname(path)))
    assert names == ["state.json", "state.json.lock"]


def test_file_is_stable_pretty_json(capsys, path):
    run(capsys, path=path, section="gemma", data={"b": 1, "a": 2})
    text = Path(path).read_text(encoding="utf-8")
    assert text == '{\n  "gemma": {\n    "a": 2,\n    "b": 1\n  }\n}\n'


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_refuses_to_overwrite_a_file_that_is_not_a_json_object(capsys, path, content):
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    result = run(capsys, path=path, section="gemma", data={"a": 1})
    assert result["failed"] is True
    assert path in result["msg"] and "refusing" in result["msg"]
    assert Path(path).read_text(encoding="utf-8") == content


def test_section_that_is_not_an_object_fails(capsys, path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"gemma": "oops"}, handle)
    result = run(capsys, path=path, section="gemma", data={"a": 1})
    assert result["failed"] is True
    assert "'gemma'" in result["msg"]


def test_empty_file_reads_as_empty_state(capsys, path):
    os.makedirs(os.path.dirname(path))
    Path(path).touch()
    assert run(capsys, path=path, state="read")["state_data"] == {}
    run(capsys, path=path, section="gemma", data={"a": 1})
    assert read(path) == {"gemma": {"a": 1}}


def test_section_required_unless_read(capsys, path):
    result = run(capsys, path=path, data={"a": 1})
    assert result["failed"] is True
    assert "section" in result["msg"]


def test_concurrent_writers_lose_no_update(path):
    """Writers serialise on <path>.lock: every section written by a thread survives."""
    os.makedirs(os.path.dirname(path))

    class Module:
        check_mode = False
        _diff = False

        def __init__(self, section):
            self.params = {
                "path": path,
                "section": section,
                "data": {"v": section},
                "remove_keys": [],
                "replace": False,
                "stamp": None,
                "state": "present",
                "mode": "0644",
            }

    threads = [threading.Thread(target=flight_state.FlightState(Module(f"s{n}")).run) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read(path)) == [f"s{n}" for n in range(8)]
