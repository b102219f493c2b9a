"""host_resources: free disk of the nearest existing ancestor, MemAvailable from meminfo."""

import contextlib
import io
import json
import os
import time

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.modules import host_resources
from ansible_collections.voxtral.deploy.plugins.modules.host_resources import GIB, disk_usage, read_meminfo


def test_disk_usage_walks_up_to_an_existing_ancestor(tmp_path):
    result = disk_usage(str(tmp_path / "not" / "yet" / "there"))
    assert result["measured_at"] == str(tmp_path)
    stats = os.statvfs(tmp_path)
    assert result["free_bytes"] == stats.f_bavail * stats.f_frsize
    assert result["free_gib"] == round(result["free_bytes"] / GIB, 2)


def test_meminfo_parsed_in_bytes(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       127601640 kB\nMemFree:         1000 kB\nMemAvailable:   115343360 kB\n")
    result = read_meminfo(str(meminfo))
    assert result["available_bytes"] == 115343360 * 1024
    assert result["available_gib"] == 110.0
    assert result["total_gib"] == round(127601640 * 1024 / GIB, 2)


def test_meminfo_without_memavailable_is_a_clear_error(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\n")
    with pytest.raises(ValueError, match="has no MemAvailable line"):
        read_meminfo(str(meminfo))


def test_every_call_refreshes_the_flights_heartbeat_while_it_exists(tmp_path):
    def call(heartbeat):
        stdout = io.StringIO()
        args = {"path": str(tmp_path), "heartbeat": str(heartbeat)}
        with patch_module_args(args), contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
            host_resources.main()
        return json.loads(stdout.getvalue())

    heartbeat = tmp_path / "flight-heartbeat"
    heartbeat.touch()
    os.utime(heartbeat, (1000, 1000))
    assert call(heartbeat)["memory"]["available_bytes"] > 0
    assert time.time() - heartbeat.stat().st_mtime < 60
    missing = tmp_path / "gone" / "flight-heartbeat"
    assert not call(missing).get("failed")
    assert not missing.parent.exists()
