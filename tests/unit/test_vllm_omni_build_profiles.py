"""vllm_omni_build's version knowledge: the data file is consistent, and the role resolves profiles,
version ranges, paired vLLM and patches as documented (ansible-playbook on localhost, check mode;
the preflight stops bad input before anything changes)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.voxtral.deploy.plugins.modules import git_pr_patches

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm_omni_build"
PROFILES = yaml.safe_load((ROLE / "vars" / "profiles.yml").read_text())
SPECS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
V = git_pr_patches.parse_version


# ---- the data file --------------------------------------------------------------------------------
def test_profiles_are_the_argument_spec_choices():
    assert sorted(PROFILES["__vllm_omni_build_profiles"]) == sorted(SPECS["vllm_omni_build_profile"]["choices"])
    assert DEFAULTS["vllm_omni_build_profile"] in PROFILES["__vllm_omni_build_profiles"]


def test_every_option_has_a_spec_and_the_same_default():
    assert sorted(DEFAULTS) == sorted(SPECS)
    for name, value in DEFAULTS.items():
        assert SPECS[name].get("default") == value, name


def test_version_ranges_are_contiguous_and_name_known_prs():
    ranges = PROFILES["__vllm_omni_build_version_ranges"]
    known = {p["pr"] for p in PROFILES["__vllm_omni_build_known_patches"]}
    assert V(ranges[0]["from"]) == V("0")
    for before, after in itertools.pairwise(ranges):
        assert V(before["until"]) == V(after["from"])
    for row in ranges:
        assert V(row["from"]) < V(row["until"])
        assert set(row["patches"]) <= known
        assert row["stage_config_flag"] in ("--stage-configs-path", "--deploy-config")


def test_known_patches_carry_a_reason_full_pins_and_tree_checks():
    for patch in PROFILES["__vllm_omni_build_known_patches"]:
        assert patch["reason"] and V(patch["superseded_from"])
        assert patch.get("files") or patch.get("anchors")  # superseded decided from the tree, not fetched
        assert bool(patch.get("head_sha")) != bool(patch.get("left_out"))  # pinned, or left out with a reason
        if patch.get("head_sha"):
            assert len(patch["head_sha"]) == 40 and git_pr_patches.HEX_RE.match(patch["head_sha"])


def test_known_patches_match_upstream():
    known = {p["pr"]: p for p in PROFILES["__vllm_omni_build_known_patches"]}
    assert known[2405]["head_sha"] == "42744c3debad5c8fc3ebf854eabe2f213932c17f"
    assert known[2405]["files"] == ["vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py"]
    assert known[2405]["superseded_from"] == "0.20.0"
    assert known[2790]["anchors"] == [
        {"path": "vllm_omni/entrypoints/openai/serving_speech.py", "text": "_build_voxtral_prompt"}
    ]
    assert known[2790]["superseded_from"] == "0.30.0"  # still there at 0.20.0..0.28.0
    assert "no audio-encoder weights" in known[2790]["left_out"] and "pin its head" in known[2790]["left_out"]


# ---- the role's resolution (preflight + derived variables) ---------------------------------------
RESOLVE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: voxtral.deploy.vllm_omni_build
        tasks_from: preflight
        public: true
    - ansible.builtin.copy:
        dest: "{{ out }}"
        mode: "0644"
        content: "{{ {'ref': __vllm_omni_build_ref, 'version': __vllm_omni_build_package_version,
                      'file': __vllm_omni_build_range.stage_config_file,
                      'flag': __vllm_omni_build_range.stage_config_flag,
                      'vllm': __vllm_omni_build_vllm_spec, 'patches': __vllm_omni_build_patches,
                      'source_args': __vllm_omni_build_source_args} | to_json }}"
"""
FULL = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - voxtral.deploy.vllm_omni_build
"""


def playbook(tmp_path: Path, text: str, extra: dict, check: bool = False) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(text)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_LIBRARY": str(ROOT / "plugins" / "modules"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_NOCOLOR": "1",
    }
    extra = {"ansible_python_interpreter": sys.executable, "out": str(tmp_path / "out.json"), **extra}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(play),
           "-e", json.dumps(extra)] + (["--check"] if check else [])  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def resolve(tmp_path: Path, **extra) -> dict:
    done = playbook(tmp_path, RESOLVE, extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((tmp_path / "out.json").read_text())


def test_default_profile_is_gb10_0_30_with_both_prs_superseded_there(tmp_path):
    got = resolve(tmp_path)
    assert (got["ref"], got["version"], got["vllm"]) == ("v0.30.0", "0.30.0", "vllm==0.30.0")
    assert (got["file"], got["flag"]) == ("vllm_omni/deploy/voxtral_tts.yaml", "--deploy-config")
    assert [p["pr"] for p in got["patches"]] == [2405, 2790]
    assert all(V(got["version"]) >= V(p["superseded_from"]) for p in got["patches"])
    assert got["source_args"] == ["--torch-backend", "cu130"]


def test_seed_profile_is_the_seeds_plan(tmp_path):
    got = resolve(tmp_path, vllm_omni_build_profile="seed-0.18")
    assert (got["ref"], got["version"], got["vllm"]) == ("v0.18.0", "0.18.0", "vllm==0.18.1")
    assert got["file"] == "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml"
    assert got["flag"] == "--stage-configs-path"
    assert [p["pr"] for p in got["patches"]] == [2405, 2790]
    assert all(V(got["version"]) < V(p["superseded_from"]) for p in got["patches"])  # neither superseded
    assert got["patches"][0]["head_sha"] == "42744c3debad5c8fc3ebf854eabe2f213932c17f"
    assert "head_sha" not in got["patches"][1] and "ref_audio cannot work" in got["patches"][1]["left_out"]


def test_other_tag_takes_its_range_and_the_same_minor_of_vllm(tmp_path):
    got = resolve(tmp_path, vllm_omni_build_version="v0.24.0")
    assert (got["version"], got["vllm"], got["flag"]) == ("0.24.0", "vllm==0.24.*", "--deploy-config")


def test_branch_with_an_explicit_version(tmp_path):
    got = resolve(tmp_path, vllm_omni_build_version="main", vllm_omni_build_package_version="0.31.0")
    assert (got["ref"], got["vllm"], got["file"]) == ("main", "vllm==0.31.*", "vllm_omni/deploy/voxtral_tts.yaml")


def test_explicit_patches_spec_and_indexes(tmp_path):
    got = resolve(
        tmp_path,
        vllm_omni_build_patches=[],
        vllm_omni_build_vllm_spec="vllm==0.30.1",
        vllm_omni_build_torch_backend="",
        vllm_omni_build_extra_index_urls=["https://download.pytorch.org/whl/cu130"],
        vllm_omni_build_index_strategy="unsafe-best-match",
    )
    assert got["patches"] == [] and got["vllm"] == "vllm==0.30.1"
    assert got["source_args"] == [
        "--extra-index-url=https://download.pytorch.org/whl/cu130",
        "--index-strategy",
        "unsafe-best-match",
    ]


def test_unpinned_prs_pass_the_preflight_only_when_allowed_left_out_or_expected_superseded(tmp_path):
    allowed = resolve(
        tmp_path, vllm_omni_build_profile="seed-0.18", vllm_omni_build_patches=[{"pr": 2790}],
        vllm_omni_build_allow_unpinned=True,
    )  # fmt: skip
    assert allowed["patches"] == [{"pr": 2790}]
    anchor = {"path": "vllm_omni/entrypoints/openai/serving_speech.py", "text": "_build_voxtral_prompt"}
    expected = resolve(
        tmp_path, vllm_omni_build_patches=[{"pr": 2790, "superseded_from": "0.30.0", "anchors": [anchor]}]
    )
    assert [p["pr"] for p in expected["patches"]] == [2790]  # the module then checks the tree at v0.30.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"vllm_omni_build_profile": "gb10-9.99"}, "vllm_omni_build_profile must be one of"),
        ({"vllm_omni_build_patches": [{"head_sha": "abcdef0"}]}, "missing required arguments: pr"),
        ({"vllm_omni_build_patches": [{"pr": 2405, "sha": "abcdef0"}]}, "sha"),
        ({"vllm_omni_build_patches": [{"pr": 2405, "head_sha": "not-hex"}]}, "malformed patch entry"),
        ({"vllm_omni_build_patches": [{"pr": 2405}, {"pr": 2405}]}, "each PR once"),
        ({"vllm_omni_build_version": "main"}, "set vllm_omni_build_package_version"),
        ({"vllm_omni_build_python": "3.9"}, "Requires-Python"),
        ({"vllm_omni_build_keep_releases": 0}, "keep_releases >= 1"),
        ({"vllm_omni_build_wheelhouse": "/nonexistent/wheels"}, "must be a directory on the controller"),
        ({"vllm_omni_build_patches": [{"pr": 2405, "head_sha": "abcdef0", "left_out": "x"}]}, "not both head_sha"),
        (
            {"vllm_omni_build_patches": [{"pr": 2790, "anchors": [{"path": "x.py"}]}]},
            "missing required arguments: text",
        ),
        ({"vllm_omni_build_smoke_serve_options": ["deploy-config"]}, 'smoke_serve_options "--option" names'),
        (
            {
                "vllm_omni_build_profile": "seed-0.18",
                "vllm_omni_build_patches": [{"pr": 2405, "head_sha": "42744c3d"}, {"pr": 2790}],
            },
            "PR #2790 would be applied to vllm-omni 0.18.0 but has no head_sha: review the PR (refs/pull/2790/head of "
            "https://github.com/vllm-project/vllm-omni.git) and pin its head in vllm_omni_build_patches",
        ),
        (  # the data expects it superseded on 0.30, but without files/anchors only a fetch could tell
            {"vllm_omni_build_patches": [{"pr": 2790, "superseded_from": "0.30.0"}]},
            "PR #2790 would be applied to vllm-omni 0.30.0 but has no head_sha",
        ),
    ],
)
def test_bad_values_fail_before_any_change(tmp_path, extra, message):
    root = tmp_path / "opt"
    done = playbook(tmp_path, FULL, {"vllm_omni_build_root": str(root), **extra}, check=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert message in output, output
    assert not root.exists()
