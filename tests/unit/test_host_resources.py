"""host_resources: free disk of the nearest existing ancestor, MemAvailable from meminfo."""

import os

import pytest
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
