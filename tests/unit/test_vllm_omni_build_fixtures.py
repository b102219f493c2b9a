"""The build role's test fixtures have the shape the molecule scenario relies on: the upstream repo
(tags, layouts and PR refs shaped like upstream's real history, what each PR does) and the stand-in vLLM
wheels (valid, offline)."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("upstream")
    assert load("make_upstream").main(["make_upstream", str(out)]) == 0
    return out / "vllm-omni.git", json.loads((out / "refs.json").read_text())


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=check)


def files_at(repo: Path, rev: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", rev).stdout.split())


def test_rebuild_is_skipped_and_shas_are_stable(tmp_path, upstream):
    _, refs = upstream
    make_upstream = load("make_upstream")
    assert make_upstream.main(["make_upstream", str(tmp_path)]) == 0
    first = (tmp_path / "refs.json").read_text()
    assert make_upstream.main(["make_upstream", str(tmp_path)]) == 0  # cached
    assert json.loads(first) == refs  # same files, same SHAs as another build


CONFIG_018 = "vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py"
CONFIG_020 = "vllm_omni/transformers_utils/configs/voxtral_tts.py"
STAGE_018 = "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml"
DEPLOY_020 = "vllm_omni/deploy/voxtral_tts.yaml"
SPEECH = "vllm_omni/entrypoints/openai/serving_speech.py"
ADAPTER = "vllm_omni/entrypoints/openai/tts_adapters/voxtral.py"


def test_tags_follow_upstreams_layouts(upstream):
    repo, refs = upstream
    tree = {tag: files_at(repo, tag) for tag in refs["tags"]}
    assert sorted(refs["tags"]) == ["v0.18.0", "v0.20.0", "v0.26.0", "v0.30.0"]
    assert {STAGE_018, CONFIG_018} <= tree["v0.18.0"] and not {DEPLOY_020, CONFIG_020, ADAPTER} & tree["v0.18.0"]
    # 0.20.0: #3065 moved the config file, #3232 fixed it; deploy/ layout; the prompt code still in serving_speech.py
    assert {DEPLOY_020, CONFIG_020} <= tree["v0.20.0"] and not {STAGE_018, CONFIG_018, ADAPTER} & tree["v0.20.0"]
    assert "text_config = dict(text_config)" in git(repo, "show", f"v0.20.0:{CONFIG_020}").stdout
    assert ADAPTER in tree["v0.26.0"]
    for tag in ("v0.18.0", "v0.20.0", "v0.26.0"):
        assert "def _build_voxtral_prompt" in git(repo, "show", f"{tag}:{SPEECH}").stdout, tag
    assert "_build_voxtral_prompt" not in git(repo, "show", f"v0.30.0:{SPEECH}").stdout
    for tag, files in tree.items():
        assert "vllm_omni/entrypoints/cli/main.py" in files
        assert not any(f.startswith("recorded/") or "/recorded/" in f for f in files)
        assert refs["tags"][tag] == git(repo, "rev-parse", f"{tag}^{{commit}}").stdout.strip()
    assert refs["main"] == refs["tags"]["v0.30.0"]
    assert git(repo, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"  # the default branch


def test_version_comes_from_setuptools_scm_like_upstream(upstream):
    repo, _ = upstream
    pyproject = git(repo, "show", "v0.18.0:pyproject.toml").stdout
    assert '"setuptools-scm>=8"' in pyproject and 'version_file = "vllm_omni/_version.py"' in pyproject
    assert "VLLM_OMNI_VERSION_OVERRIDE" in git(repo, "show", "v0.18.0:setup.py").stdout
    assert "from vllm_omni._version import __version__" in git(repo, "show", "v0.18.0:vllm_omni/version.py").stdout
    assert "vllm_omni/_version.py" in git(repo, "show", "v0.18.0:.gitignore").stdout  # the build leaves src clean
    wheelhouse = load("make_wheelhouse")
    assert {"setuptools-scm==8.3.1", "packaging==25.0"} <= set(wheelhouse.BUILD_BACKEND)


def test_pr_refs_exist_only_under_refs_pull(upstream):
    repo, refs = upstream
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads").stdout.split() == ["refs/heads/main"]
    for number, sha in refs["pulls"].items():
        assert git(repo, "rev-parse", f"refs/pull/{number}/head").stdout.strip() == sha


def count(repo: Path, spec: str) -> int:
    return int(git(repo, "rev-list", "--count", spec).stdout)


def test_each_pr_has_its_role(upstream):
    repo, refs = upstream
    pulls, bases, base = refs["pulls"], refs["pull_bases"], refs["tags"]["v0.18.0"]
    own = {n: git(repo, "diff", "--name-only", f"{sha}~1", sha).stdout.split() for n, sha in pulls.items()}
    # #2405 and #2790: one commit each, on main commits past v0.18.0 with other work between.
    for number, changed in (("2405", [CONFIG_018]), ("2790", [SPEECH])):
        assert count(repo, f"main..{pulls[number]}") == 1 and own[number] == changed
        assert git(repo, "rev-parse", f"{pulls[number]}~1").stdout.strip() == bases[number]
        assert git(repo, "merge-base", "--is-ancestor", bases[number], "main", check=False).returncode == 0
    assert count(repo, f"{base}..{pulls['2405']}") == 4  # "every commit not in v0.18.0" would take 4
    assert count(repo, f"{bases['2405']}..{bases['2790']}") == 2  # #2790 sits on a later main
    assert git(repo, "merge-base", "--is-ancestor", pulls["9002"], base, check=False).returncode == 0
    assert git(repo, "cherry", base, pulls["9003"]).stdout.startswith("- ")  # squash-merged
    merge = git(repo, "merge-tree", "--write-tree", base, pulls["9001"], check=False)
    assert merge.returncode == 1 and "voxtral_tts.yaml" in merge.stdout  # conflicts with the base


def test_recordings_are_not_an_input(tmp_path, monkeypatch):
    make_upstream = load("make_upstream")
    sources = tmp_path / "upstream"
    shutil.copytree(make_upstream.SOURCES / "common", sources / "common")
    (sources / "recorded").mkdir()
    (sources / "recorded" / "cases.json").write_text("{}")
    monkeypatch.setattr(make_upstream, "SOURCES", sources)
    monkeypatch.setattr(make_upstream, "RECORDED", sources / "recorded")
    before = make_upstream.inputs_hash()
    (sources / "recorded" / "cases.json").write_text('{"changed": true}')
    assert make_upstream.inputs_hash() == before
    (sources / "common" / "README.md").write_text("changed\n")
    assert make_upstream.inputs_hash() != before


def test_standin_vllm_wheels_are_valid(tmp_path):
    make_wheelhouse = load("make_wheelhouse")
    for version in make_wheelhouse.VLLM_VERSIONS:
        make_wheelhouse.standin_vllm_wheel(tmp_path, version)
        wheel = tmp_path / f"vllm-{version}-py3-none-any.whl"
        before = wheel.read_bytes()
        make_wheelhouse.standin_vllm_wheel(tmp_path, version)
        assert wheel.read_bytes() == before  # reproducible
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            assert archive.read("vllm/version.py").decode() == f'__version__ = "{version}"\n'
            record = list(csv.reader(archive.read(f"vllm-{version}.dist-info/RECORD").decode().splitlines()))
            for name, digest, size in record:
                if name.endswith("RECORD"):
                    continue
                data = archive.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert (digest, int(size)) == (f"sha256={expected}", len(data))
            assert {r[0] for r in record} == names
        target = tmp_path / f"site-{version}"
        zipfile.ZipFile(wheel).extractall(target)
        probe = subprocess.run(
            [sys.executable, "-c", "import vllm; from vllm.model_executor.models.registry import _VLLM_MODELS, "
             "_LazyRegisteredModel, _ModelRegistry; print(vllm.__version__)"],
            env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        # Like real vLLM, the stand-in logs to stdout while imported (test_real_build_recorded.py): the probe's
        # own line is the last.
        assert probe.stdout.splitlines()[-1] == version
        assert len(probe.stdout.splitlines()) > 1
