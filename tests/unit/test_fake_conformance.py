"""The fake `vllm-omni` agrees with the real one, as scripts/capture_upstream.py recorded it.

tests/fixtures/upstream/recorded/<version>/ holds what the real wheels did (vllm-omni + its paired vLLM,
installed in a throwaway venv): the help texts and the parser's verdict for each argument set of
recorded/cases.json. Here the fake runs the same argument sets and must give the same verdict (accepted
or not, exit code, error line), accept no option the real help lacks, and show the same top-level usage.
The unit the voxtral_service role renders must be the command line that was recorded as accepted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from unit_render import FACTS, exec_start_argv, render_unit

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "fixtures" / "fake_vllm_omni" / "cli.py"
RECORDED = ROOT / "tests" / "fixtures" / "upstream" / "recorded"
PROFILES = ROOT / "roles" / "vllm_omni_build" / "vars" / "profiles.yml"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(CLI.parent))

import capture_upstream  # noqa: E402  (the recording's own verdict logic, so both sides are judged alike)
import cli as fake  # noqa: E402

CASES = json.loads((RECORDED / "cases.json").read_text())["cases"]
VERSIONS = sorted(p.name for p in RECORDED.iterdir() if (p / "verdicts.json").is_file())
# Option strings in argparse help: "  --port PORT", "  --omni-master-address ADDR, -oma ADDR", "  -h, --help".
OPTION = re.compile(r"(?:^ {2}|, )(--?[A-Za-z][\w-]*)", re.MULTILINE)


def recorded(version: str, name: str):
    path = RECORDED / version / name
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()


def vtuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def run_fake(version: str, args: list[str], cwd: Path, parse_only: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "VLLM_OMNI_FAKE_VERSION": version, "COLUMNS": "100"}
    if parse_only:
        env["FAKE_VLLM_OMNI_PARSE_ONLY"] = "1"
    return subprocess.run(
        [sys.executable, str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def case_argv(template: list[str], version: str, work: Path) -> list[str]:
    old = vtuple(version) < (0, 20)
    flag, other = (capture_upstream.OLD_FLAG, capture_upstream.NEW_FLAG)[:: 1 if old else -1]
    values = {
        "model": str(work / "snapshot"),
        "config": str(work / "voxtral_tts.yaml"),
        "flag": flag,
        "other_flag": other,
        "seed_config": capture_upstream.OLD_CONFIG,
    }
    return [part.format(**values) if re.fullmatch(r"\{[a-z_]+\}", part) else part for part in template]


def test_recordings_cover_the_versions_the_capture_script_knows():
    assert set(capture_upstream.VERSIONS) <= set(VERSIONS), f"re-run scripts/capture_upstream.py: have {VERSIONS}"
    for version in VERSIONS:
        meta = recorded(version, "meta.json")
        assert meta["vllm_omni"] == version
        assert meta["vllm"].split(".")[:2] == version.split(".")[:2], "vLLM of the same minor (UPSTREAM.md)"
        assert set(recorded(version, "verdicts.json")) == set(CASES), f"{version}: cases.json changed, re-record"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_fake_parser_gives_the_real_verdict(version, case, tmp_path):
    real = recorded(version, "verdicts.json")[case]
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "voxtral_tts.yaml").write_text("stages: []\n")
    result = run_fake(version, case_argv(CASES[case], version, tmp_path), tmp_path)
    mine = capture_upstream.verdict(result.stdout, result.stderr, result.returncode)
    mine = json.loads(json.dumps(mine).replace(str(tmp_path), "{work}"))
    assert (mine["accepted"], mine["exit_code"], mine["error_line"]) == (
        real["accepted"],
        real["exit_code"],
        real["error_line"],
    ), f"stderr of the fake:\n{result.stderr}"
    if real["accepted"]:
        shared = sorted(set(mine["parsed"]) & set(real["parsed"]))
        assert {k: mine["parsed"][k] for k in shared} == {k: real["parsed"][k] for k in shared}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_option_of_the_fake_is_in_the_real_help(version, monkeypatch):
    monkeypatch.setenv("VLLM_OMNI_FAKE_VERSION", version)
    real_options = set(OPTION.findall(recorded(version, "help-serve-omni.txt")))
    serve = fake.omni_parser(vtuple(version)).get_default("serve_parser")
    fake_options = {opt for action in serve._actions for opt in action.option_strings}
    assert fake_options - real_options == set()


@pytest.mark.parametrize("version", VERSIONS)
def test_top_level_help_is_vllms_and_does_not_mention_omni(version, tmp_path):
    real = recorded(version, "help-top.txt")
    result = run_fake(version, ["--help"], tmp_path, parse_only=False)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == real.splitlines()[0]
    # The fact the build's smoke test once got wrong: only `serve --omni --help` lists the omni options.
    assert "--omni" not in real
    assert "--omni" not in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_serve_omni_help_lists_the_stage_config_flag_of_its_range(version, tmp_path):
    flag = recorded(version, "meta.json")["stage_config_flag"]
    real = recorded(version, "help-serve-omni.txt")
    result = run_fake(version, ["serve", "--omni", "--help=all"], tmp_path, parse_only=False)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == real.splitlines()[0]
    assert flag in OPTION.findall(real)
    assert flag in OPTION.findall(result.stdout)


def profile_releases():
    """(profile name, the release facts voxtral_service reads from release.json) for every build profile."""
    data = yaml.safe_load(PROFILES.read_text())
    ranges = data["__vllm_omni_build_version_ranges"]
    for name, profile in data["__vllm_omni_build_profiles"].items():
        version = profile["version"]
        key = tuple(int(p) for p in version.split("."))
        (row,) = [
            r for r in ranges if tuple(map(int, r["from"].split("."))) <= key < tuple(map(int, r["until"].split(".")))
        ]
        yield name, dict(FACTS["voxtral_service_release"], version=version, stage_config_flag=row["stage_config_flag"])


@pytest.mark.parametrize(("profile", "release"), list(profile_releases()))
def test_the_rendered_exec_start_is_the_recorded_command_line(profile, release):
    """The unit's command line is the `rendered_exec_start` case: its recorded verdict is about the real unit."""
    argv = exec_start_argv(render_unit(voxtral_service_release=release))
    assert argv[0].endswith("/bin/vllm-omni")
    values = {
        FACTS["voxtral_service_snapshot_dir"]: "{model}",
        "/var/lib/voxtral-tts/voxtral_tts.yaml": "{config}",
        release["stage_config_flag"]: "{flag}",
    }
    assert [values.get(arg, arg) for arg in argv[1:]] == CASES["rendered_exec_start"]
    version = release["version"]
    if version in VERSIONS:
        assert recorded(version, "verdicts.json")["rendered_exec_start"]["accepted"], f"{profile}: real CLI refused"
