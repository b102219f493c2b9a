"""What the real vllm-omni build showed (`make real-build`, tests/fixtures/upstream/recorded/build-<version>/),
read by the role's own code, and the doubles agreeing with it.

Recorded on a simulated Spark from the real source tree (fork snapshot with upstream's history) and the real
package index: vLLM's import-time log lines on stdout, the smoke test's two commands as the role runs them
(stdout and stderr apart), 0.18's help without a platform, the build log's steps, and the role's own messages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "fixtures" / "upstream" / "recorded"
BUILD_ROLE = ROOT / "roles" / "vllm_omni_build"
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "plugins" / "filter"))

import conformance  # noqa: E402  (the role's own help judgement, as `make conformance` applies it)
from vllm_output import vllm_error_line, vllm_smoke_result  # noqa: E402

BUILDS = sorted(p.name.removeprefix("build-") for p in RECORDED.glob("build-*") if (p / "meta.json").is_file())
# vLLM's log format (vllm/logger.py): "INFO 12-07 23:35:39 [importing.py:44] message".
LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR) \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+:\d+\] (.*)$")
ARCHITECTURES = yaml.safe_load((BUILD_ROLE / "defaults" / "main.yml").read_text())[
    "vllm_omni_build_smoke_architectures"
]
PROFILES = yaml.safe_load((BUILD_ROLE / "vars" / "profiles.yml").read_text())


def recorded(version: str, name: str) -> str:
    return (RECORDED / f"build-{version}" / name).read_text()


def meta(version: str) -> dict:
    return json.loads(recorded(version, "meta.json"))


def flag_of(version: str) -> str:
    key = tuple(map(int, version.split(".")))
    (row,) = [
        r
        for r in PROFILES["__vllm_omni_build_version_ranges"]
        if tuple(map(int, r["from"].split("."))) <= key < tuple(map(int, r["until"].split(".")))
    ]
    return row["stage_config_flag"]


def test_both_profiles_were_recorded():
    # The seed's plan (v0.18.0 + #2405's one commit) and the newest range the source has (0.26).
    assert BUILDS == ["0.18.0", "0.26.0"]
    assert meta("0.18.0")["vllm_omni_version"] == "0.18.1.dev1+ga639235a3"  # setuptools-scm, one pick past v0.18.0
    assert [(p["pr"], p["status"]) for p in meta("0.18.0")["patches"]] == [(2405, "applied"), (2790, "left_out")]
    assert [(p["pr"], p["status"]) for p in meta("0.26.0")["patches"]] == [(2405, "superseded"), (2790, "left_out")]


@pytest.mark.parametrize("version", BUILDS)
def test_real_vllm_logs_to_stdout_when_imported(version):
    stdout = recorded(version, "import-registry.stdout").splitlines()
    assert recorded(version, "import-registry.stderr") == ""
    assert recorded(version, "import-registry.rc").strip() == "0"
    assert 4 <= len(stdout) <= 7, stdout
    assert all(LOG_LINE.match(line) for line in stdout), stdout


@pytest.mark.parametrize("version", BUILDS)
def test_the_role_reads_the_real_architectures_check(version):
    """smoke_registry.py sends vLLM's lines to stderr: stdout is the one JSON line the role's filter reads."""
    result = vllm_smoke_result(recorded(version, "smoke-registry.stdout"))
    assert result["problems"] == []
    assert sorted(result["architectures"]) == sorted(ARCHITECTURES)
    assert (result["vllm"], result["vllm_omni"]) == (meta(version)["vllm_version"], meta(version)["vllm_omni_version"])
    moved = recorded(version, "smoke-registry.stderr").splitlines()
    assert moved and all(LOG_LINE.match(line) for line in moved), moved
    # What the role once did: parse the whole stdout of a plain import as JSON.
    assert vllm_smoke_result(recorded(version, "import-registry.stdout")) == {}


@pytest.mark.parametrize("version", BUILDS)
def test_the_role_finds_its_flag_in_the_real_help_despite_the_log_lines(version):
    stdout = recorded(version, "smoke-help.stdout")
    assert recorded(version, "smoke-help.rc").strip() == "0"
    assert LOG_LINE.match(stdout.splitlines()[0])  # log lines first, on stdout, then argparse's usage
    flag = flag_of(version)
    ok, message = conformance.judge_help(stdout, flag, f"real-{version}", version)
    assert ok, message
    other = "--deploy-config" if flag == "--stage-configs-path" else "--stage-configs-path"
    if version.startswith("0.18"):
        # 0.18 has no --deploy-config: a range that needs it is refused, in one line.
        refused, message = conformance.judge_help(stdout, other, f"real-{version}", version)
        assert not refused
        assert message.startswith(f"smoke test of release real-{version} (vllm-omni {version} at v{version}): ")
        assert f"does not list {other};" in message and "\n" not in message


def test_vllm_018_without_a_platform_fails_with_one_line_saying_why():
    stderr = recorded("0.18.0", "smoke-help-without-a-platform.stderr")
    assert recorded("0.18.0", "smoke-help-without-a-platform.rc").strip() == "1"
    line = vllm_error_line(stderr)
    assert line.startswith("RuntimeError: Failed to infer device type")
    [hint] = [h for h in PROFILES["__vllm_omni_build_smoke_hints"] if h["match"] in line]
    # The role's own message on the real build, recorded: subject, the error line, the hint, the venv kept.
    [message] = meta("0.18.0")["smoke_failures_before_proven"]
    assert message.startswith("smoke test of release 0.18.0-")
    assert f"exited 1: {line}" in message
    assert " ".join(hint["hint"].split()) in message
    assert "its built venv is kept, so the next run repeats only the smoke test" in message
    assert "\n" not in message and "Traceback" not in message
    assert meta("0.26.0")["smoke_failures_before_proven"] == []  # 0.26 builds its parser without a GPU


@pytest.mark.parametrize("version", BUILDS)
def test_the_build_script_runs_the_recorded_steps_in_order(version):
    steps = [line for line in recorded(version, "build-log-shape.txt").splitlines() if line.startswith("== <time>")]
    commands = [re.sub(r"^== <time>  \S+/bin/uv |   \[\d+ lines\]$", "", step) for step in steps]
    template = (BUILD_ROLE / "templates" / "build.sh.j2").read_text()
    in_script = re.findall(r'^step "\$uv" (\S+(?: \S+)?)', template, re.MULTILINE)
    assert [" ".join(command.split()[:2]) for command in commands] == in_script


def run_python(code_or_file: list[str], pythonpath: list[Path]) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    return subprocess.run([sys.executable, *code_or_file], capture_output=True, text=True, env=env, timeout=60)


def test_the_standin_vllm_logs_to_stdout_like_the_real_one():
    result = run_python(["-c", "import vllm"], [FIXTURES / "vllm_standin"])
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    real = {LOG_LINE.match(line).group(2) for line in recorded("0.18.0", "import-registry.stdout").splitlines()}
    assert {LOG_LINE.match(line).group(2) for line in lines} <= real


def test_the_smoke_script_keeps_stdout_to_its_json_line_with_the_standin():
    result = run_python(
        [str(BUILD_ROLE / "files" / "smoke_registry.py"), "voxtral_tts", *ARCHITECTURES],
        [FIXTURES / "vllm_standin", FIXTURES / "upstream" / "common"],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert vllm_smoke_result(result.stdout)["problems"] == []
    assert any(LOG_LINE.match(line) for line in result.stderr.splitlines()), result.stderr


def test_a_registry_that_cannot_be_imported_is_one_problem_and_still_one_json_line(tmp_path):
    broken = tmp_path / "vllm_omni" / "model_executor" / "models"
    broken.mkdir(parents=True)
    for folder in (broken, broken.parent, broken.parent.parent):
        (folder / "__init__.py").write_text("")
    (broken / "registry.py").write_text("raise RuntimeError('Failed to infer device type')\n")
    result = run_python([str(BUILD_ROLE / "files" / "smoke_registry.py"), "voxtral_tts", *ARCHITECTURES], [tmp_path])
    assert result.returncode == 1
    [problem] = vllm_smoke_result(result.stdout)["problems"]
    assert problem == (
        "importing vllm_omni.model_executor.models.registry failed: RuntimeError: Failed to infer device type"
    )
    assert "Traceback" in result.stderr  # the whole story stays on stderr, the role's message says its line
    assert vllm_error_line(result.stderr) == "RuntimeError: Failed to infer device type"
