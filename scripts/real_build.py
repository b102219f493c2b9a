#!/usr/bin/env python3
"""The vllm_omni_build role on the REAL vllm-omni source tree and the real package index (not in CI).

    make real-build SOURCE=<git dir or URL of a vllm-omni snapshot>
    scripts/real_build.py SOURCE [--keep] [--no-record]

SOURCE is a clone of vllm-omni with upstream's history (e.g. a snapshot of the fork RuixiangMa/vllm-omni,
which carries upstream `main` to 2026-08 and #2405's head as branch `fixvoxtral_tts`). The fork has no release
tags: they are set here from RELEASE_COMMITS, found by matching each release wheel's files on the package index
against the fork's commits. The script then
  1. makes a bare "upstream" of SOURCE under /var/tmp/voxtral-deploy/real-build/ (tags, refs/pull/2405/head),
  2. starts a simulated Spark with it at /srv/upstream/vllm-omni.git and gives the Spark this machine's CA trust
     (the package index is reached through an intercepting proxy here): /etc/pip.conf and /etc/uv/uv.toml,
  3. runs the role (tests/integration/playbooks/build.yml) for each profile of PROFILES with the real index,
     then again and again until it is proven, and once more to show `changed=0` with nothing rebuilt,
  4. prints a table (profile, ref, PRs, build time, venv size, smoke checks, re-run changed) and records what
     the real build showed under tests/fixtures/upstream/recorded/build-<version>/ (--no-record: not).
vLLM 0.18.1 cannot build its command line without a GPU ("Failed to infer device type"): its first smoke test
fails with the role's one-line message, then the test double of a GPU's platform (tests/fixtures/
gpu_platform_standin) is put on the smoke test's PYTHONPATH and the role repeats only the smoke test.
Each venv is 8-10 GB inside the instance; uv's cache (a bind mount) stays under /var/tmp between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sim_spark  # noqa: E402
from playbook_runner import run_on  # noqa: E402

CACHE = Path("/var/tmp/voxtral-deploy/real-build")
RECORDED = ROOT / "tests" / "fixtures" / "upstream" / "recorded"
PLAYBOOK = "tests/integration/playbooks/build.yml"
PLATFORM_STANDIN = ROOT / "tests" / "fixtures" / "gpu_platform_standin"
INSTANCE = "voxtral-real-build"
# Release commits of upstream main, found by matching each release wheel's vllm_omni/ files (package index)
# against the fork's commits (issue 24: v0.18.0 0 of 495 files differ). v0.28.0 / v0.30.0: in no snapshot.
RELEASE_COMMITS = {
    "v0.18.0": "f55ea280",
    "v0.20.0": "54277a8d",
    "v0.22.0": "963ba1ab",
    "v0.24.0": "d4a869fe",
    "v0.26.0": "76de642c",
}
BUILD_ROLE = ROOT / "roles" / "vllm_omni_build"
# The PR heads the role pins (vars/profiles.yml; #2405's is the fork's branch fixvoxtral_tts), as refs/pull/N/head.
PULL_HEADS = {
    patch["pr"]: patch["head_sha"]
    for patch in yaml.safe_load((BUILD_ROLE / "vars" / "profiles.yml").read_text())["__vllm_omni_build_known_patches"]
    if patch.get("head_sha")
}
# The architectures the role's smoke test requires (defaults/main.yml).
ARCHITECTURES = yaml.safe_load((BUILD_ROLE / "defaults" / "main.yml").read_text())[
    "vllm_omni_build_smoke_architectures"
]
# The seed's plan and the newest release range the source has (0.26: --deploy-config, both PRs superseded).
PROFILES = {
    "seed-0.18": {"vllm_omni_build_profile": "seed-0.18"},
    "0.26 (v0.26.0)": {"vllm_omni_build_profile": "gb10-0.30", "vllm_omni_build_version": "v0.26.0"},
}
# The real index, as a Spark reaches it: no wheelhouse; no torch index (unreachable here: PyPI's torch).
REAL_INDEX = {
    "vllm_omni_build_wheelhouse": "",
    "vllm_omni_build_torch_backend": "",
    "vllm_omni_build_timeout": 3600,
    "vllm_omni_build_stall_timeout": 900,
    "vllm_omni_build_progress_interval": 15,
}
SMOKE_CHECKS = (
    "Check the serve command ran",
    "Check the serve command lists",
    "Check the stage config file is in the tree",
    "Check the voxtral_tts architectures are registered",
)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_upstream(source: str) -> Path:
    """A bare copy of SOURCE with the release tags and the PR head refs a code host would show."""
    bare = CACHE / "upstream.git"
    if not bare.exists():
        print(f"cloning {source} into {bare}", flush=True)
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "--quiet", "--bare", source, str(bare)], check=True)
    for tag, prefix in RELEASE_COMMITS.items():
        git("tag", "-f", tag, git("rev-parse", "--verify", f"{prefix}^{{commit}}", cwd=bare), cwd=bare)
    for pr, head in PULL_HEADS.items():
        git(
            "update-ref", f"refs/pull/{pr}/head", git("rev-parse", "--verify", f"{head}^{{commit}}", cwd=bare), cwd=bare
        )
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=bare)
    return bare


def trust_this_machines_ca(hostvars: dict) -> None:
    """The harness's adaptation, never the role's: pip and uv inside the Spark trust this machine's CA bundle."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    sim_spark.put(hostvars, bundle, "/usr/local/share/voxtral-real-build/ca-certificates.crt")
    sim_spark.put(
        hostvars, b"[global]\ncert = /usr/local/share/voxtral-real-build/ca-certificates.crt\n", "/etc/pip.conf"
    )
    # uv reads /etc/uv/uv.toml; native-tls takes the system store, SSL_CERT_FILE names the bundle.
    sim_spark.put(hostvars, b"native-tls = true\n", "/etc/uv/uv.toml")
    sim_spark.ssh(
        hostvars, "cp /usr/local/share/voxtral-real-build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt"
    )


def task_results(run, prefix: str) -> list[tuple[str, str]]:
    out = []
    for event in run.events:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        if str(data.get("task", "")).startswith(prefix) and kind.startswith("runner_on_") and kind != "runner_on_start":
            out.append((data["task"], event["event"].removeprefix("runner_on_")))
    return out


def fact(run, name: str):
    for event in reversed(run.events):
        res = event.get("event_data", {}).get("res", {})
        if isinstance(res, dict) and name in res.get("ansible_facts", {}):
            return res["ansible_facts"][name]
    return None


def build_seconds(hostvars: dict, release_dir: str) -> float | None:
    """From build.log's first step to its `== done` (the role's own step stamps)."""
    log = sim_spark.ssh(hostvars, f"cat {release_dir}/build.log").stdout
    stamps = re.findall(r"^== (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)  ", log, re.M)
    done = sim_spark.ssh(hostvars, f"stat -c %Y {release_dir}/built.json").stdout.strip()
    if not stamps or not done:
        return None
    first = time.mktime(time.strptime(stamps[0], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    return int(done) - first


def record(hostvars: dict, release: dict, messages: list[str], smoke_env: dict) -> None:
    """What the real build showed, as test data the doubles agree with (tests/unit/test_real_build_recorded.py):
    the smoke test's two commands as the role runs them (stdout and stderr apart), vLLM's import alone, and
    for a version that needs a platform (0.18), the help command without one too."""
    venv, release_dir = release["venv"], release["release_dir"]
    out = RECORDED / f"build-{release['version']}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = "VLLM_LOGGING_COLOR=0 COLUMNS=100"
    extra = " ".join(f"{key}={value}" for key, value in smoke_env.items())
    archs = " ".join(ARCHITECTURES)
    smoke = (BUILD_ROLE / "files" / "smoke_registry.py").read_bytes()
    sim_spark.put(hostvars, smoke, f"{release_dir}/smoke_registry.py")
    outputs = {
        "import-registry": f"{env} {venv}/bin/python -c 'import vllm_omni.model_executor.models.registry'",
        "smoke-registry": f"{env} {extra} {venv}/bin/python {release_dir}/smoke_registry.py voxtral_tts {archs}",
        "smoke-help": f"{env} {extra} {venv}/bin/vllm-omni serve --omni --help=all",
    }
    if smoke_env:
        outputs["smoke-help-without-a-platform"] = f"{env} {venv}/bin/vllm-omni serve --omni --help=all"
    for name, command in outputs.items():
        result = sim_spark.ssh(hostvars, f"cd / && {command}")
        (out / f"{name}.stdout").write_text(result.stdout)
        # A traceback's last lines are what a reader needs (and what the role's error line is read from).
        (out / f"{name}.stderr").write_text("".join(result.stderr.splitlines(keepends=True)[-60:]))
        (out / f"{name}.rc").write_text(f"{result.returncode}\n")
    sim_spark.ssh(hostvars, f"rm -f {release_dir}/smoke_registry.py")
    log = sim_spark.ssh(hostvars, f"cat {release['release_dir']}/build.log").stdout
    # The log's shape: its step lines (timestamps masked) and how many lines each step printed.
    shape, count = [], 0
    for line in log.splitlines():
        if line.startswith("== "):
            if shape:
                shape[-1] += f"   [{count} lines]"
            shape.append(re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", line))
            count = 0
        else:
            count += 1
    (out / "build-log-shape.txt").write_text("\n".join(shape) + "\n")
    manifest = json.loads(sim_spark.ssh(hostvars, f"cat {release['release_dir']}/release.json").stdout)
    meta = {
        key: manifest[key]
        for key in (
            "version",
            "ref",
            "sha",
            "patched_sha",
            "vllm_spec",
            "vllm_version",
            "vllm_omni_version",
            "python_version",
        )
    }
    meta["patches"] = [{"pr": p["pr"], "status": p["status"]} for p in manifest["patches"]]
    meta["smoke_failures_before_proven"] = messages
    meta["recorded"] = time.strftime("%Y-%m-%d")
    meta["command"] = "make real-build SOURCE=<snapshot of RuixiangMa/vllm-omni>"
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def fly(hostvars: dict, workdir: Path, name: str, settings: dict, do_record: bool) -> dict:
    extravars = {**REAL_INDEX, **settings}
    started = time.monotonic()
    first = run_on(hostvars, PLAYBOOK, workdir, extravars)
    first_wall = time.monotonic() - started
    messages = first.failure_messages()
    runs = [first]
    if first.status != "successful":
        print(f"[{name}] first run failed: {' | '.join(messages)}", flush=True)
        if not any("Failed to infer device type" in m for m in messages):
            raise SystemExit(f"{name}: the build failed:\n{first.stdout[-4000:]}")
        # What the GB10 would give vLLM 0.18: a resolved platform (the test double, on the smoke's PYTHONPATH).
        sim_spark.ssh(hostvars, "rm -rf /opt/voxtral-test-platform")
        copied = subprocess.run(
            ["podman", "cp", str(PLATFORM_STANDIN), f"{INSTANCE}:/opt/voxtral-test-platform"],
            capture_output=True,
            text=True,
        )
        if copied.returncode != 0:
            raise SystemExit(copied.stderr)
        extravars["vllm_omni_build_smoke_environment"] = {"PYTHONPATH": "/opt/voxtral-test-platform"}
        runs.append(run_on(hostvars, PLAYBOOK, workdir, extravars))
        if runs[-1].status != "successful":
            raise SystemExit(f"{name}: the smoke test with a resolved platform failed:\n{runs[-1].stdout[-4000:]}")
    proving = runs[-1]
    release = fact(proving, "vllm_omni_build_release")
    rerun = run_on(hostvars, PLAYBOOK, workdir, extravars)
    rebuilt = [t for t, status in task_results(rerun, "Start the build") if status != "skipped"]
    size = sim_spark.ssh(hostvars, f"du -s --block-size=1M {release['venv']} | cut -f1").stdout.strip()
    current = sim_spark.ssh(hostvars, "readlink /opt/vllm-omni/current").stdout.strip()
    passed = sum(1 for check in SMOKE_CHECKS for _, status in task_results(proving, check) if status == "ok")
    row = {
        "profile": name,
        "ref": f"{release['ref']} ({release['sha'][:8]})",
        "PRs": ", ".join(f"#{p['pr']} {p['status']}" for p in release["patches"]) or "none",
        "build s": build_seconds(hostvars, release["release_dir"]),
        "first run s": round(first_wall),
        "venv GB": round(int(size) / 1024, 1) if size.isdigit() else "?",
        "smoke": f"{passed}/{len(SMOKE_CHECKS)} ok" + (" (2nd run, platform stand-in)" if len(runs) > 1 else ""),
        "smoke-only re-run": (
            "yes" if len(runs) > 1 and all(s == "skipped" for _, s in task_results(runs[1], "Start the build")) else "-"
        ),
        "current": "switched" if current.endswith(release["release"]) else f"NOT ({current})",
        "re-run changed": f"{rerun.changed_count()}{' REBUILT' if rebuilt else ''}",
        "release": release["release"],
        "first failure": messages[0] if messages else "",
    }
    if do_record:
        record(hostvars, release, messages, extravars.get("vllm_omni_build_smoke_environment", {}))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="git dir, path or URL of a vllm-omni snapshot with upstream's history")
    parser.add_argument("--keep", action="store_true", help="leave the simulated Spark running")
    parser.add_argument("--no-record", action="store_true", help="do not write tests/fixtures/upstream/recorded/")
    parser.add_argument("--only", action="append", choices=list(PROFILES), help="build only this profile")
    parser.add_argument(
        "--arm64", action="store_true", help="on the arm64 test image (aarch64 under qemu, as a Spark's CPU)"
    )
    args = parser.parse_args(argv)
    bare = make_upstream(args.source)
    uv_cache = CACHE / ("uv-cache-arm64" if args.arm64 else "uv-cache")
    uv_cache.mkdir(parents=True, exist_ok=True)
    workdir = CACHE / "runs" / time.strftime("%Y%m%dT%H%M%S")
    workdir.mkdir(parents=True)
    hostvars = {
        **yaml.safe_load(sim_spark.SIMULATED_SPARK_VARS.read_text()),
        **sim_spark.start(
            INSTANCE,
            image=os.environ["VOXTRAL_IMAGE_ARM64"] if args.arm64 else None,
            volumes=[f"{bare}:/srv/upstream/vllm-omni.git:ro", f"{uv_cache}:/opt/vllm-omni/cache/uv"],
        ),
    }
    rows = []
    try:
        trust_this_machines_ca(hostvars)
        for name in args.only or PROFILES:
            print(f"\n== {name}", flush=True)
            rows.append(fly(hostvars, workdir, name, PROFILES[name], not args.no_record))
            print(json.dumps(rows[-1], indent=1), flush=True)
    finally:
        if not args.keep:
            sim_spark.stop(INSTANCE)
    columns = ["profile", "ref", "PRs", "build s", "venv GB", "smoke", "smoke-only re-run", "current", "re-run changed"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("\n" + " | ".join(c.ljust(widths[c]) for c in columns))
    print("-|-".join("-" * widths[c] for c in columns))
    for row in rows:
        print(" | ".join(str(row[c]).ljust(widths[c]) for c in columns))
    for row in rows:
        if row["first failure"]:
            print(f"\n{row['profile']}, first run's smoke failure: {row['first failure']}")
    print(f"\nuv cache: {uv_cache} ({shutil.disk_usage(CACHE).free // 2**30} GiB free there)")
    ok = all(r["current"] == "switched" and r["re-run changed"] == "0" for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
