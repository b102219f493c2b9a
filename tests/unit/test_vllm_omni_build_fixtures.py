"""The build role's test fixtures have the shape the molecule scenario relies on: the upstream repo
(tags, layouts, PR refs and what each PR does) and the stand-in vLLM wheels (valid, offline)."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import json
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


def test_tags_carry_the_two_layouts(upstream):
    repo, refs = upstream
    old, new = files_at(repo, "v0.18.0"), files_at(repo, "v0.30.0")
    assert "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml" in old
    assert "vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py" in old
    assert "vllm_omni/deploy/voxtral_tts.yaml" in new
    assert "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml" not in new
    assert "vllm_omni/entrypoints/openai/tts_adapters/voxtral.py" in new
    for tag, version in (("v0.18.0", "0.18.0"), ("v0.30.0", "0.30.0")):
        assert git(repo, "show", f"{tag}:vllm_omni/version.py").stdout.strip() == f'__version__ = "{version}"'
        assert "vllm_omni/entrypoints/cli/main.py" in files_at(repo, tag)
        assert refs["tags"][tag] == git(repo, "rev-parse", f"{tag}^{{commit}}").stdout.strip()
    assert refs["main"] == refs["tags"]["v0.30.0"]


def test_pr_refs_exist_only_under_refs_pull(upstream):
    repo, refs = upstream
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads").stdout.split() == ["refs/heads/main"]
    for number, sha in refs["pulls"].items():
        assert git(repo, "rev-parse", f"refs/pull/{number}/head").stdout.strip() == sha


def test_each_pr_has_its_role(upstream):
    repo, refs = upstream
    pulls, base = refs["pulls"], refs["tags"]["v0.18.0"]
    changed = {n: git(repo, "diff", "--name-only", f"{base}...{sha}").stdout.split() for n, sha in pulls.items()}
    assert changed["2405"] == ["vllm_omni/model_executor/models/voxtral_tts/configuration_voxtral_tts.py"]
    assert changed["2790"] == ["vllm_omni/entrypoints/openai/serving_speech.py"]
    assert git(repo, "rev-list", "--count", f"{base}..{pulls['2790']}").stdout.strip() == "2"
    assert git(repo, "merge-base", "--is-ancestor", pulls["9002"], base, check=False).returncode == 0
    assert git(repo, "cherry", base, pulls["9003"]).stdout.startswith("- ")  # squash-merged
    merge = git(repo, "merge-tree", "--write-tree", base, pulls["9001"], check=False)
    assert merge.returncode == 1 and "voxtral_tts.yaml" in merge.stdout  # conflicts with the base


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
        assert probe.stdout.strip() == version
