#!/usr/bin/env python3
"""Conformance of the roles and the fake against the REAL vllm-omni (`make conformance`; not in CI).

For each build profile (roles/vllm_omni_build/vars/profiles.yml):
  1. renders voxtral-tts.service with the voxtral_service role's own template and variables, takes its
     ExecStart, and runs that command line - and every argument set of recorded/cases.json - through
     the real installed CLI (scripts/upstream_probe.py) and through the fake (parse only);
  2. runs the vllm_omni_build smoke test's commands against the real install: the role's
     `serve --omni --help=all` command, judged by the role's own expression from tasks/smoke.yml
     (Ansible's templar), and files/smoke_registry.py with the release's Python;
  3. shows the smoke test failing, with its message, against a release that lacks the range's flag
     (the other profile's flag on this install).
Prints one table; exit 1 if the fake disagrees with the real CLI anywhere or a smoke check fails.
The real installs are scripts/capture_upstream.py's venvs under /var/tmp/voxtral-deploy/upstream/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

import capture_upstream  # noqa: E402  (puts plugins/filter on the path)
from ansible.template import Templar, trust_as_template  # noqa: E402
from test_fake_conformance import CLI, case_argv, profile_releases  # noqa: E402
from unit_render import FACTS, exec_start_argv, render_unit  # noqa: E402
from vllm_output import vllm_error_line, vllm_smoke_result  # noqa: E402

BUILD_ROLE = ROOT / "roles" / "vllm_omni_build"


def smoke_tasks() -> dict:
    """The smoke block's tasks of vllm_omni_build, by name prefix."""
    (block,) = yaml.safe_load((BUILD_ROLE / "tasks" / "smoke.yml").read_text())
    return {task["name"].split(" {{")[0]: task for task in block["block"]}


def role_variables() -> dict:
    """The build role's defaults and vars, trusted as templates as a play trusts role files."""
    variables = {}
    for path in (BUILD_ROLE / "defaults" / "main.yml", BUILD_ROLE / "vars" / "main.yml"):
        variables.update(yaml.safe_load(path.read_text()))
    return {key: trust_as_template(value) if isinstance(value, str) else value for key, value in variables.items()}


def judge_help(stdout: str, flag: str, release: str, version: str) -> tuple[bool, str]:
    """The role's own check of the help text: its `__vllm_omni_build_missing` expression and message."""
    check = smoke_tasks()["Check the serve command lists"]
    variables = {
        **role_variables(),
        "__vllm_omni_build_help": {"stdout": stdout},
        "__vllm_omni_build_range": {"stage_config_flag": flag},
        "__vllm_omni_build_release": release,
        "__vllm_omni_build_package_version": version,
        "__vllm_omni_build_ref": f"v{version}",
    }
    templar = Templar(variables=variables)
    for name, expression in check["vars"].items():
        variables[name] = templar.template(trust_as_template(expression))
        templar = Templar(variables=variables)
    missing = variables["__vllm_omni_build_missing"]
    if not missing:
        return True, "lists " + flag
    return False, " ".join(templar.template(trust_as_template(check["ansible.builtin.assert"]["fail_msg"])).split())


def run_smoke(venv: Path, flag: str, version: str) -> list[tuple[str, bool, str]]:
    help_task = smoke_tasks()["Run vllm-omni serve --omni --help=all"]
    argv = [str(venv / "bin" / "vllm-omni"), *help_task["ansible.builtin.command"]["argv"][1:]]
    env = {**capture_upstream.os.environ, **capture_upstream.ENV, **help_task.get("environment", {})}
    # The role's command as it is; where vLLM cannot resolve a platform without a GPU (0.18 - 0.28 here; a
    # Spark has its GPU), again through the probe, which tells it the CPU platform and nothing else.
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    how = "as the role runs it"
    if result.returncode != 0 and "Failed to infer device type" in result.stderr:
        result = subprocess.run(
            [str(venv / "bin" / "python"), str(capture_upstream.PROBE), *argv], capture_output=True, text=True, env=env
        )
        how = "through the probe (no GPU here: 'Failed to infer device type' as the role runs it)"
    rows = [("serve --omni --help=all exits 0", result.returncode == 0, f"exit {result.returncode}, {how}")]
    ok, message = judge_help(result.stdout, flag, f"real-{version}", version)
    rows.append((f"help lists {flag}", ok, message))
    other = capture_upstream.NEW_FLAG if flag == capture_upstream.OLD_FLAG else capture_upstream.OLD_FLAG
    refused, message = judge_help(result.stdout, other, f"real-{version}", version)
    rows.append((f"(negative) a range needing {other} is refused", not refused, message))
    defaults = yaml.safe_load((BUILD_ROLE / "defaults" / "main.yml").read_text())
    registry = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(BUILD_ROLE / "files" / "smoke_registry.py"),
            "voxtral_tts",
            *defaults["vllm_omni_build_smoke_architectures"],
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    ok, detail = judge_registry(registry)
    rows.append(("Voxtral architectures registered", ok, detail))
    return rows


def judge_registry(registry: subprocess.CompletedProcess) -> tuple[bool, str]:
    """The role's own reading of files/smoke_registry.py's output (its filters, plugins/filter/vllm_output.py)."""
    result = vllm_smoke_result(registry.stdout)
    if registry.returncode == 0 and "problems" in result:
        return True, "all three (stdout: one JSON line)"
    return False, "; ".join(result.get("problems", [])) or vllm_error_line(registry.stderr)


def parse_verdicts(venv: Path, version: str, cases: dict[str, list[str]]) -> dict[str, tuple[dict, dict]]:
    """name -> (real verdict, fake verdict) for the same command lines."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "snapshot").mkdir()
        config = capture_upstream.NEW_CONFIG if version >= "0.20" else capture_upstream.OLD_CONFIG
        shutil.copy(next(venv.glob(f"lib/python3*/site-packages/{config}")), work / "voxtral_tts.yaml")
        argv = {name: case_argv(template, version, work) for name, template in cases.items()}
        real = capture_upstream.probe_batch(venv, argv, cwd=work)
        out = {}
        for name, args in argv.items():
            fake = subprocess.run(
                [sys.executable, str(CLI), *args],
                capture_output=True,
                text=True,
                env={"PATH": "/usr/bin:/bin", "VLLM_OMNI_FAKE_VERSION": version, "FAKE_VLLM_OMNI_PARSE_ONLY": "1"},
            )
            pair = (
                capture_upstream.verdict(*real[name]),
                capture_upstream.verdict(fake.stdout, fake.stderr, fake.returncode),
            )
            out[name] = json.loads(json.dumps(pair).replace(str(work), "{work}"))
        return out


def show(verdict: dict) -> str:
    text = "accepted" if verdict["accepted"] else f"exit {verdict['exit_code']}: {verdict['error_line']}"
    return text if len(text) <= 44 else text[:43] + "…"


def main() -> int:
    cases = json.loads((capture_upstream.RECORDED / "cases.json").read_text())["cases"]
    failures = 0
    for profile, release in profile_releases():
        version, flag = release["version"], release["stage_config_flag"]
        venv = capture_upstream.install(version)
        rendered = exec_start_argv(render_unit(voxtral_service_release=release))[1:]
        values = {
            FACTS["voxtral_service_snapshot_dir"]: "{model}",
            "/var/lib/voxtral-tts/voxtral_tts.yaml": "{config}",
            flag: "{flag}",
        }
        print(f"\n## {profile}: vllm-omni {version} (real install {venv})")
        print(f"{'argument set':32} | {'real':44} | {'fake':44} | same")
        print("-" * 132)
        all_cases = {"role's rendered ExecStart": [values.get(a, a) for a in rendered], **cases}
        for name, (real, fake) in parse_verdicts(venv, version, all_cases).items():
            same = (real["accepted"], real["exit_code"], real["error_line"]) == (
                fake["accepted"],
                fake["exit_code"],
                fake["error_line"],
            )
            failures += not same
            print(f"{name:32} | {show(real):44} | {show(fake):44} | {'yes' if same else 'NO'}")
        print(f"\n{'smoke check (real install)':52} | ok  | detail")
        for check, ok, detail in run_smoke(venv, flag, version):
            failures += not ok
            print(f"{check:52} | {'yes' if ok else 'NO ':3} | {detail[:150]}")
    print(f"\nconformance: {'all agree' if not failures else f'{failures} disagreement(s) or failed check(s)'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
