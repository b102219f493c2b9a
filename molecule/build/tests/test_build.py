"""What vllm_omni_build leaves on a host after converge (the seed's plan) and side_effect (a release
lacking its flag, the default profile with keep_releases 1, a conflicting PR, an unpinned PR): current
is the 0.30.0 release, previous the seed's 0.18.0 release, nothing else; each release works without the
other."""

import json

import pytest

ROOT = "/opt/vllm-omni"
MANIFEST_KEYS = {
    "version", "ref", "sha", "profile", "patches", "vllm_spec", "python", "stage_config_file",
    "stage_config_flag", "release_dir", "venv", "built_at",
}  # fmt: skip


def manifest(host, link):
    return json.loads(host.file(f"{ROOT}/{link}/release.json").content_string)


@pytest.fixture
def current(host):
    return manifest(host, "current")


@pytest.fixture
def previous(host):
    return manifest(host, "previous")


def test_links_are_relative_and_only_current_and_previous_are_left(host, current, previous):
    assert host.file(f"{ROOT}/current").linked_to == current["release_dir"]
    assert host.file(f"{ROOT}/previous").linked_to == previous["release_dir"]
    assert host.check_output(f"readlink {ROOT}/current") == f"releases/{current['release']}"
    listed = host.check_output(f"ls {ROOT}/releases").split()
    assert sorted(listed) == sorted([current["release"], previous["release"]])


def test_manifests_have_the_contract_keys(current, previous):
    for release in (current, previous):
        assert release.keys() >= MANIFEST_KEYS
        assert release["release_dir"] == f"{ROOT}/releases/{release['release']}"
        assert release["venv"] == f"{release['release_dir']}/venv"
        assert release["release"].startswith(f"{release['version']}-{release['sha'][:12]}-")


def test_current_is_0_30_with_both_prs_superseded(current):
    assert (current["version"], current["profile"], current["vllm_version"]) == ("0.30.0", "gb10-0.30", "0.30.0")
    assert (current["stage_config_flag"], current["stage_config_file"]) == (
        "--deploy-config",
        "vllm_omni/deploy/voxtral_tts.yaml",
    )
    assert [(p["pr"], p["status"]) for p in current["patches"]] == [(2405, "superseded"), (2790, "superseded")]
    assert all("(from the tree)" in p["reason"] for p in current["patches"])
    assert current["patched_sha"] == current["sha"]
    assert current["vllm_omni_version"] == "0.30.0"  # setuptools-scm on the tag itself


def test_previous_is_the_seed_plan(previous):
    assert (previous["version"], previous["profile"], previous["vllm_version"]) == ("0.18.0", "seed-0.18", "0.18.1")
    assert (previous["stage_config_flag"], previous["stage_config_file"]) == (
        "--stage-configs-path",
        "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml",
    )
    assert {p["pr"]: p["status"] for p in previous["patches"]} == {
        2405: "applied",
        2790: "left_out",  # no head SHA known, no encoder weights for ref_audio (vars/profiles.yml)
        9002: "contained",
        9003: "contained",
    }
    # A patched build's own version (setuptools-scm) is not the range's: still the 0.18 flag and file.
    assert previous["vllm_omni_version"].startswith("0.18.1.dev1+g")


def test_seed_src_is_the_patched_checkout(host, previous):
    src = f"{previous['release_dir']}/src"
    assert host.check_output(f"git -C {src} rev-parse HEAD") == previous["patched_sha"]
    assert host.check_output(f"git -C {src} status --porcelain") == ""
    # Exactly #2405's own commit: not the main commits its branch sits on (v0.18.0..head is 4 commits).
    assert host.check_output(f"git -C {src} rev-list --count {previous['sha']}..HEAD") == "1"
    [pr2405] = [p for p in previous["patches"] if p["pr"] == 2405]
    assert [c["picked"] for c in pr2405["commits"]] == [previous["patched_sha"]]
    assert not host.file(f"{src}/docs/changes").exists
    config = host.file(f"{src}/vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py")
    assert "self.text_config = dict(text_config)" in config.content_string  # the fixture's #2405
    assert "ref_audio" not in host.file(f"{src}/vllm_omni/entrypoints/openai/serving_speech.py").content_string
    assert host.file(f"{src}/{previous['stage_config_file']}").is_file


@pytest.mark.parametrize("link", ["current", "previous"])
def test_each_release_runs_on_its_own(host, link):
    release = manifest(host, link)
    venv = release["venv"]
    assert release["stage_config_flag"] in host.check_output(f"{venv}/bin/vllm-omni serve --omni --help=all")
    probe = host.check_output(
        f"{venv}/bin/python -c 'import json, vllm, vllm_omni; "
        "from vllm_omni.model_executor.models.registry import _OMNI_MODELS as m; "
        "print(json.dumps([vllm.__version__, vllm_omni.__version__, sorted(m)]))'"
    )
    # vLLM's import-time log lines come first on stdout (as real vLLM's do): this probe's own line is the last.
    vllm_version, omni_version, archs = json.loads(probe.splitlines()[-1])
    assert (vllm_version, omni_version) == (release["vllm_version"], release["vllm_omni_version"])
    assert "VoxtralTTSForConditionalGeneration" in archs


@pytest.mark.parametrize("link", ["current", "previous"])
def test_build_log_stamp_and_script_are_kept(host, link):
    release = manifest(host, link)
    release_dir = release["release_dir"]
    assert host.file(f"{release_dir}/build.log").content_string.rstrip().endswith("== done")
    assert json.loads(host.file(f"{release_dir}/stamp.json").content_string) == release["inputs"]
    # The build's own record that its venv is complete (what lets a failed smoke test keep the venv).
    assert json.loads(host.file(f"{release_dir}/built.json").content_string) == release["inputs"]
    assert host.file(f"{release_dir}/build.sh").mode == 0o755


def test_uv_is_the_pinned_version_in_its_own_venv(host):
    assert host.check_output(f"{ROOT}/tools/uv-0.13.9/bin/uv --version").startswith("uv 0.13.9")
    assert host.file(f"{ROOT}/cache/uv").is_directory


def test_the_checkout_is_clean_with_no_leftover_worktree(host):
    checkout = f"{ROOT}/git/vllm-omni"
    assert host.check_output(f"git -C {checkout} status --porcelain") == ""
    assert len(host.check_output(f"git -C {checkout} worktree list").splitlines()) == 1
    # Fetched: the seed's PRs and the conflicting one; superseded, left-out and unpinned PRs never are.
    assert host.check_output(f"git -C {checkout} for-each-ref --format='%(refname)' refs/pull").split() == [
        "refs/pull/2405/head", "refs/pull/9001/head", "refs/pull/9002/head", "refs/pull/9003/head",
    ]  # fmt: skip
    # The base branch the PRs' own commits are counted from, fetched from the same remote.
    assert host.check_output(f"git -C {checkout} rev-parse refs/git_pr_patches/base/main")
