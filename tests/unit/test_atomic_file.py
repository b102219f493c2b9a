"""atomic_file: the one atomic write the modules share (temporary file beside the target, then rename)."""

import os

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils import atomic_file
from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import (
    current_mode,
    write_atomically,
    write_if_changed,
)


def test_writes_a_new_file_with_the_umask_mode(tmp_path):
    target = tmp_path / "state.json"
    umask = os.umask(0o022)
    try:
        write_atomically(str(target), b"{}\n")
    finally:
        os.umask(umask)
    assert target.read_bytes() == b"{}\n"
    assert current_mode(str(target)) == 0o644
    assert os.listdir(tmp_path) == ["state.json"]  # no temporary file left behind


def test_keeps_the_replaced_file_mode_unless_told(tmp_path):
    target = tmp_path / "gate.json"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_atomically(str(target), b"new")
    assert (target.read_bytes(), current_mode(str(target))) == (b"new", 0o600)
    write_atomically(str(target), b"newer", 0o640)
    assert (target.read_bytes(), current_mode(str(target))) == (b"newer", 0o640)


def test_write_if_changed_says_whether_it_wrote(tmp_path):
    target = tmp_path / "verdict.json"
    assert write_if_changed(str(target), b"go", 0o644) is True
    before = target.stat().st_ino
    assert write_if_changed(str(target), b"go", 0o644) is False
    assert target.stat().st_ino == before  # untouched, not rewritten
    assert write_if_changed(str(target), b"no-go", 0o644) is True
    assert target.read_bytes() == b"no-go"


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(atomic_file.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_atomically(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]
