#!/usr/bin/env python3
"""Record how the real vllm-omni CLI behaves, as test data the fake is checked against in CI.

    scripts/capture_upstream.py [VERSION ...]        (default: every version in VERSIONS)
    make capture-upstream [VERSIONS="0.18.0 0.30.0"]

For each version: installs the real `vllm-omni==VERSION` and its paired vLLM (the same minor; vllm-omni
declares no vllm dependency, UPSTREAM.md) from the package index with uv into a throwaway venv under
/var/tmp/voxtral-deploy/upstream/<version>/ (about 9 GB each, CUDA torch included: never in the repo, never
in CI; a second run reuses it), then writes tests/fixtures/upstream/recorded/<version>/:
  help-top.txt          `vllm-omni --help` (vLLM's top-level help)
  help-serve-omni.txt   `vllm-omni serve --omni --help=all` (every serve option under --omni)
  verdicts.json         per argument set of recorded/cases.json: exit code, error line, accepted or not
  meta.json             the versions installed, the Python, the date, this command
No GPU is needed: scripts/upstream_probe.py stops each accepted command line before it would serve.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from vllm_output import vllm_error_line  # noqa: E402  (the smoke test's own reading of an error)

RECORDED = ROOT / "tests" / "fixtures" / "upstream" / "recorded"
PROBE = ROOT / "scripts" / "upstream_probe.py"
CACHE = Path(os.environ.get("VOXTRAL_UPSTREAM_CACHE", "/var/tmp/voxtral-deploy/upstream"))
UV_VERSION = "0.13.9"
VERSIONS = ["0.18.0", "0.20.0", "0.26.0", "0.28.0", "0.30.0"]
# The stage-config flag each version range expects (roles/vllm_omni_build/vars/profiles.yml).
OLD_FLAG, NEW_FLAG = "--stage-configs-path", "--deploy-config"
OLD_CONFIG = "vllm_omni/model_executor/stage_configs/voxtral_tts.yaml"
NEW_CONFIG = "vllm_omni/deploy/voxtral_tts.yaml"
# Deterministic help text: argparse wraps at $COLUMNS; vLLM colours nothing without a TTY.
ENV = {
    "COLUMNS": "100",
    "NO_COLOR": "1",
    "VLLM_LOGGING_COLOR": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONWARNINGS": "ignore",
    "TERM": "dumb",
}


def vllm_spec(version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"vllm=={major}.{minor}.*"


def run(argv, **kwargs):
    print("+", " ".join(map(str, argv)), flush=True)
    return subprocess.run(argv, check=True, **kwargs)


def uv() -> Path:
    tools = CACHE / f"uv-{UV_VERSION}"
    if not (tools / "bin" / "uv").exists():
        run([sys.executable, "-m", "venv", str(tools)])
        run([str(tools / "bin" / "pip"), "install", "-q", f"uv=={UV_VERSION}"])
    return tools / "bin" / "uv"


def install(version: str) -> Path:
    venv = CACHE / version / "venv"
    stamp = venv / ".installed"
    if stamp.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(CACHE / "uv-cache"),
        "UV_LINK_MODE": "copy",
        "SSL_CERT_FILE": os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    }
    run([str(uv()), "venv", "--python", sys.executable, str(venv)], env=env)
    # vLLM first, then vllm-omni of the same minor (upstream's documented order).
    run([str(uv()), "pip", "install", "--python", str(venv / "bin" / "python"), vllm_spec(version)], env=env)
    run([str(uv()), "pip", "install", "--python", str(venv / "bin" / "python"), f"vllm-omni=={version}"], env=env)
    stamp.write_text(version + "\n")
    return venv


def package_version(venv: Path, name: str) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def help_text(stdout: str) -> str:
    """argparse's help without the log lines vLLM prints while importing (they start with a level)."""
    start = stdout.find("usage: ")
    return stdout[start:] if start >= 0 else stdout


def verdict(out: str, err: str, exit_code: int) -> dict:
    parsed = [line for line in out.splitlines() if line.startswith("PROBE-PARSED ")]
    return {
        "exit_code": exit_code,
        "accepted": exit_code == 0 and bool(parsed),
        "parsed": json.loads(parsed[-1][len("PROBE-PARSED ") :]) if parsed else None,
        "error_line": "" if parsed else vllm_error_line(err),
    }


def probe_batch(venv: Path, cases: dict[str, list[str]], cwd: Path) -> dict[str, tuple[str, str, int]]:
    """Every case through the real console script (scripts/upstream_probe.py --batch): name -> out, err, rc."""
    results = cwd / "results"
    results.mkdir()
    (cwd / "cases.json").write_text(json.dumps(cases))
    # The probe's own output is vLLM's import chatter: kept in a file, shown only when the probe fails.
    with open(cwd / "probe.log", "w") as log:
        probe = subprocess.run(
            [str(venv / "bin" / "python"), str(PROBE), "--batch", str(venv / "bin" / "vllm-omni"),
             str(cwd / "cases.json"), str(results)],
            cwd=cwd, env={**os.environ, **ENV}, timeout=1800, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    if probe.returncode != 0:
        raise SystemExit(f"{venv}: the probe failed:\n{(cwd / 'probe.log').read_text()[-3000:]}")
    return {
        name: (
            (results / f"{name}.out").read_text(),
            (results / f"{name}.err").read_text(),
            int((results / f"{name}.rc").read_text()),
        )
        for name in cases
    }


def record(version: str) -> None:
    venv = install(version)
    out = RECORDED / version
    out.mkdir(parents=True, exist_ok=True)
    new_layout = tuple(map(int, version.split(".")[:2])) >= (0, 20)
    flag, other = (NEW_FLAG, OLD_FLAG) if new_layout else (OLD_FLAG, NEW_FLAG)
    cases = json.loads((RECORDED / "cases.json").read_text())["cases"]
    # find_spec: the package's folder without importing it (its import logs to stdout).
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.util as u; print(u.find_spec('vllm_omni').submodule_search_locations[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    ).parent
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "snapshot"
        model.mkdir()
        config = work / "voxtral_tts.yaml"
        shutil.copy(site / (NEW_CONFIG if new_layout else OLD_CONFIG), config)
        values = {
            "model": str(model),
            "config": str(config),
            "flag": flag,
            "other_flag": other,
            "seed_config": OLD_CONFIG,
        }
        argv = {
            name: [part.format(**values) if re.fullmatch(r"\{[a-z_]+\}", part) else part for part in template]
            for name, template in cases.items()
        }
        # Help texts through the probe too: without a GPU, vLLM's parser cannot even build its help
        # ("Failed to infer device type") unless the platform is told, as a GPU box resolves it.
        helps = {"help-top": ["--help"], "help-serve-omni": ["serve", "--omni", "--help=all"]}
        outputs = probe_batch(venv, {**argv, **helps}, cwd=work)
        verdicts = {}
        for name in cases:
            verdicts[name] = verdict(*outputs[name])
            # The throwaway folder's name is no part of the verdict.
            verdicts[name] = json.loads(json.dumps(verdicts[name]).replace(str(work), "{work}"))
            print(f"  {name}: exit {verdicts[name]['exit_code']} {verdicts[name]['error_line'][:160]}", flush=True)
        for name in helps:
            out_text, err_text, code = outputs[name]
            if code != 0:
                raise SystemExit(f"{version}: vllm-omni {' '.join(helps[name])} exited {code}:\n{err_text[-2000:]}")
            (out / f"{name}.txt").write_text(help_text(out_text))
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=2, sort_keys=True) + "\n")
    meta = {
        "vllm_omni": package_version(venv, "vllm-omni"),
        "vllm": package_version(venv, "vllm"),
        "torch": package_version(venv, "torch"),
        "transformers": package_version(venv, "transformers"),
        "python": subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "stage_config_flag": flag,
        "recorded": datetime.date.today().isoformat(),
        "command": f"scripts/capture_upstream.py {version}",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="*", default=VERSIONS)
    for version in parser.parse_args(argv).versions:
        record(version)


if __name__ == "__main__":
    main()
