"""The recorded aarch64 resolutions (scripts/resolve_aarch64.py, tests/fixtures/upstream/recorded/aarch64/)
agree with roles/vllm_omni_build/vars/profiles.yml: every profile has one, made from its ref and paired vLLM,
and it pins that vLLM and a torch. A profile change without a new resolution fails here. Hermetic: reads files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "upstream" / "recorded" / "aarch64"
PROFILES = yaml.safe_load((ROOT / "roles" / "vllm_omni_build" / "vars" / "profiles.yml").read_text())[
    "__vllm_omni_build_profiles"
]
# Resolved besides the profiles: a ref other than the profile's, paired as the role pairs it (major.minor.*).
EXTRA = {"v0.26.0": {"ref": "v0.26.0", "version": "0.26.0", "vllm_spec": "vllm==0.26.*"}}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def parse(path: Path) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """(header fields, header lists, pins) of one recorded resolution."""
    fields, lists, pins, key = {}, {}, {}, None
    for line in path.read_text().splitlines():
        if m := PIN.match(line):
            pins[m[1].lower()] = m[2]
        elif line.startswith("#   ") and key is not None and not pins:
            lists[key].append(line[4:])
        elif not pins and (m := re.match(r"# ([^:]+?)(?: \(.*\))?: ?(.*)$", line)):
            key = m[1]
            fields[key], lists[key] = m[2], []
    return fields, lists, pins


def test_every_profile_and_only_those_are_recorded():
    assert sorted(p.stem for p in RECORDED.glob("*.txt")) == sorted({*PROFILES, *EXTRA})


@pytest.mark.parametrize("name", sorted({*PROFILES, *EXTRA}))
def test_recorded_resolution_matches_the_profile(name):
    spec = {**PROFILES, **EXTRA}[name]
    path = RECORDED / f"{name}.txt"
    assert path.exists(), f"no recorded resolution for {name}: run scripts/resolve_aarch64.py"
    fields, lists, pins = parse(path)
    stale = f"{path.name} was resolved for another {{}}: re-run scripts/resolve_aarch64.py"
    assert fields["profile"] == name
    assert fields["ref"] == spec["ref"], stale.format("ref")
    assert fields["version"] == spec["version"], stale.format("version")
    assert fields["vllm spec"] == spec["vllm_spec"], stale.format("vLLM spec")
    assert "--python-platform aarch64-manylinux_2_28 --python-version 3.12" in fields["command"]
    assert lists["input"][0] == spec["vllm_spec"]
    # The vLLM pin of the profile is what was resolved, and the full install has a torch.
    name_, _, wanted = spec["vllm_spec"].partition("==")
    assert name_ == "vllm"
    assert Version(pins["vllm"]) in SpecifierSet(f"=={wanted}"), (pins["vllm"], spec["vllm_spec"])
    assert "torch" in pins
    # vllm-omni's dependencies came from the release: its tree's commit, or the published package.
    if "vllm-omni" in pins:
        assert pins["vllm-omni"] == spec["version"]
        assert f"vllm-omni=={spec['version']}" in lists["input"]
    else:
        assert re.match(rf"vllm-omni [0-9a-f]{{40}} \({re.escape(spec['ref'])}\)", fields["source"])
    # The findings are lists of pinned packages.
    for finding in lists["older than manylinux_2_28"] + lists["sdist only at manylinux_2_28"]:
        assert pins.get(finding.split("==")[0]) == finding.split("==")[1].split()[0], finding


def test_gb10_030_pulls_fa3_fwd_whose_aarch64_wheel_is_manylinux_2_24():
    # Issue 24: a wheelhouse from `pip download --platform manylinux_2_28_aarch64` misses it; uv takes it.
    _, lists, pins = parse(RECORDED / "gb10-0.30.txt")
    assert pins["fa3-fwd"] == "0.0.3"
    assert "fa3-fwd==0.0.3 (manylinux_2_24)" in lists["older than manylinux_2_28"]


def test_recorded_files_name_no_index_host():
    for path in RECORDED.glob("*.txt"):
        assert not re.search(r"https?://|pypi\.org|pythonhosted", path.read_text()), path.name
