#!/usr/bin/env python3
"""Resolve each build profile's full install for a DGX Spark (aarch64-manylinux_2_28, Python 3.12) with uv,
without downloading wheels, and record the pins as test data.

    scripts/resolve_aarch64.py --snapshot /path/to/vllm-omni.git [--python python3.12] [--only seed-0.18]

For each profile of roles/vllm_omni_build/vars/profiles.yml, and for v0.26.0 (built as gb10-0.30 with
vllm_omni_build_version v0.26.0, so paired with "vllm==0.26.*"), the input is the paired vLLM spec (the role
installs it first: vllm-omni declares no vllm dependency) plus vllm-omni's own dependencies: at a release
commit of the snapshot (a git dir, e.g. a fetched mirror) those are setup.py's dynamic ones, requirements/
cuda.txt (what `uv pip install -e ./src` gets: its isolated build has no torch, so setup.py picks CUDA); a
release the snapshot lacks (v0.30.0) is resolved as the published vllm-omni==<version> itself. One joint
`uv pip compile` stands in for the role's two installs. uv reads wheel metadata only; sdist-only packages
are built for metadata (give --python a 3.12 interpreter for that, or uv uses whatever it finds).

Writes tests/fixtures/upstream/recorded/aarch64/<profile>.txt (uv's output under a header: command, date,
source commit, input, findings) that tests/unit/test_aarch64_resolution.py checks against profiles.yml,
and prints a table: vllm, torch, package count, packages whose aarch64 wheel is tagged older than
manylinux_2_28 (a `pip download --platform manylinux_2_28_aarch64` wheelhouse misses them: pip matches only
the tags given, uv takes older manylinux tags as compatible), and packages with only an sdist at 2_28
(with the newer manylinux wheel, if any, a Spark's glibc 2.39 could take instead).

Not run in CI: it needs the package index and the snapshot. torch comes from the default index (the role
passes --torch-backend cu130 on a Spark; pass --torch-backend where that index is reachable). Python >= 3.11.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from capture_upstream import UV_VERSION as UV_PIN  # noqa: E402
from capture_upstream import uv as pinned_uv  # noqa: E402  (uv at the pin, cached under /var/tmp)
from real_build import RELEASE_COMMITS  # noqa: E402  (release commits of upstream main in the snapshot: no tags)

PROFILES = ROOT / "roles" / "vllm_omni_build" / "vars" / "profiles.yml"
OUT = ROOT / "tests" / "fixtures" / "upstream" / "recorded" / "aarch64"
PLATFORM, PYTHON = "aarch64-manylinux_2_28", "3.12"
SPARK_PLATFORM = "aarch64-manylinux_2_39"  # Ubuntu 24.04's glibc: which sdist-only packages have a newer wheel
# Not a profile: a ref other than the profile's, which the role pairs with "vllm==<major>.<minor>.*".
EXTRA = {"v0.26.0": {"ref": "v0.26.0", "version": "0.26.0", "vllm_spec": "vllm==0.26.*"}}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def git(snapshot: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={snapshot}", *args], check=True, capture_output=True, text=True).stdout


def tree_requirements(snapshot: Path, commit: str, name: str = "requirements/cuda.txt") -> list[str]:
    """setup.py's load_requirements() on the tree at `commit`: comments dropped, `-r` followed."""
    lines = []
    for raw in git(snapshot, "show", f"{commit}:{name}").splitlines():
        line = raw.strip()
        if line.startswith("-r "):
            lines += tree_requirements(snapshot, commit, str(Path(name).parent / line[3:].strip()))
        elif line and not line.startswith("#"):
            lines.append(line)
    return lines


def source_input(snapshot: Path, ref: str, version: str) -> tuple[str, list[str]]:
    """(where vllm-omni's dependencies come from, the requirement lines)."""
    if ref not in RELEASE_COMMITS:
        return f"vllm-omni=={version} (published wheel's Requires-Dist; {ref} is not in the snapshot)", [
            f"vllm-omni=={version}"
        ]
    commit = git(snapshot, "rev-parse", f"{RELEASE_COMMITS[ref]}^{{commit}}").strip()
    project = tomllib.loads(git(snapshot, "show", f"{commit}:pyproject.toml"))["project"]
    setup_py = git(snapshot, "show", f"{commit}:setup.py")
    if "dependencies" not in project.get("dynamic", []) or 'f"{device}.txt"' not in setup_py:
        sys.exit(f"{ref} ({commit}): dependencies are not setup.py's requirements/<device>.txt any more")
    static = project.get("dependencies", [])
    return f"vllm-omni {commit} ({ref}): setup.py's requirements/cuda.txt", static + tree_requirements(snapshot, commit)


def best_glibc(wheel: str) -> tuple[int, int] | None:
    """Newest manylinux glibc among the wheel's platform tags; None for a pure (`any`) wheel."""
    best = (0, 0)
    for tag in wheel.removesuffix(".whl").split("-")[-1].split("."):
        if tag == "any":
            return None
        m = re.match(r"manylinux_(\d+)_(\d+)_", tag)
        best = max(best, (int(m[1]), int(m[2])) if m else GLIBC.get(tag.split("_")[0], (0, 0)))
    return best


def wheels(pylock: Path) -> dict[str, tuple[str, list[str]]]:
    return {
        p["name"]: (p["version"], [w["url"].rsplit("/", 1)[-1] for w in p.get("wheels", [])])
        for p in tomllib.loads(pylock.read_text())["packages"]
    }


def torch_flavour(resolved: str) -> str:
    """CUDA of the resolved torch, from what the annotated output says torch pulls in."""
    via_torch, name = set(), None
    for line in resolved.splitlines():
        if m := PIN.match(line):
            name = m[0]
        elif name and re.search(r"#\s+(via\s+)?torch$", line):
            via_torch.add(name)
    cuda = sorted(p for p in via_torch if p.startswith(("cuda-toolkit==", "nvidia-cuda-runtime")))
    return ", ".join(cuda) if cuda else "no CUDA dependencies (a CPU build)"


def resolve(uv: str, name: str, spec: dict, args, work: Path) -> dict:
    source, deps = source_input(args.snapshot, spec["ref"], spec["version"])
    inp = [spec["vllm_spec"], *deps]
    (work / f"{name}.in").write_text("\n".join(inp) + "\n")
    options = ["--python-version", PYTHON, "--no-python-downloads"]
    options += ["--torch-backend", args.torch_backend] if args.torch_backend else []
    options += ["--python", args.python] if args.python else []

    def compile_(platform: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [uv, "pip", "compile", "--python-platform", platform, *options, *extra]
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True)

    done = compile_(PLATFORM, "--no-header", f"{name}.in")
    if done.returncode:
        return {"name": name, "error": done.stderr.strip().splitlines()[-12:]}
    pins = {m[1].lower(): m[2] for m in map(PIN.match, done.stdout.splitlines()) if m}
    (work / f"{name}.pins").write_text(done.stdout)
    found = {}
    for platform in (PLATFORM, SPARK_PLATFORM):  # the same pins, with the wheels each platform takes
        lock = work / f"pylock.{name.replace('.', '_')}-{platform[-4:]}.toml"
        locked = compile_(platform, "--format", "pylock.toml", "-o", lock.name, "-c", f"{name}.pins", f"{name}.in")
        if locked.returncode:
            return {"name": name, "error": locked.stderr.strip().splitlines()[-12:]}
        found[platform] = wheels(lock)
    if {k: v[0] for k, v in found[PLATFORM].items()} != pins:
        return {"name": name, "error": ["the pylock.toml resolution differs from the requirements.txt one"]}
    older, sdist_only = [], []
    for pkg, (ver, whls) in sorted(found[PLATFORM].items()):
        if not whls:
            spark = found[SPARK_PLATFORM].get(pkg, ("", []))[1]
            tags = sorted({f"manylinux_{g[0]}_{g[1]}" for w in spark if (g := best_glibc(w))})
            sdist_only.append(f"{pkg}=={ver}" + (f" (wheel at {', '.join(tags)})" if tags else ""))
            continue
        glibcs = [best_glibc(w) for w in whls]
        if None not in glibcs and max(glibcs) < (2, 28):
            g = max(glibcs)
            older.append(f"{pkg}=={ver} (" + (f"manylinux_{g[0]}_{g[1]})" if g != (0, 0) else "no manylinux tag)"))
    return {
        "name": name,
        "spec": spec,
        "source": source,
        "input": inp,
        # The interpreter's path is this machine's: the record says which Python, not where it was.
        "command": " ".join(
            ["uv pip compile --python-platform", PLATFORM]
            + ["<python3.12>" if args.python and option == args.python else option for option in options]
            + ["--no-header", f"{name}.in"]
        ),
        "resolved": done.stdout,
        "vllm": pins.get("vllm", "-"),
        "torch": f"{pins.get('torch', '-')} ({torch_flavour(done.stdout)})",
        "count": len(pins),
        "older": older,
        "sdist_only": sdist_only,
    }


def record(row: dict, uv_version: str) -> Path:
    spec = row["spec"]
    header = [
        f"# Resolved by scripts/resolve_aarch64.py on {datetime.date.today()} with {uv_version}; re-run, do not edit.",
        f"# profile: {row['name']}",
        f"# ref: {spec['ref']}",
        f"# version: {spec['version']}",
        f"# vllm spec: {spec['vllm_spec']}",
        f"# source: {row['source']}",
        f"# command: {row['command']}",
        "# torch: the default index's (a Spark installs with --torch-backend cu130)",
        f"# older than manylinux_2_28 (no wheel a pip --platform manylinux_2_28_aarch64 takes): {len(row['older'])}",
        *(f"#   {line}" for line in row["older"]),
        f"# sdist only at manylinux_2_28: {len(row['sdist_only'])}",
        *(f"#   {line}" for line in row["sdist_only"]),
        "# input:",
        *(f"#   {line}" for line in row["input"]),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{row['name']}.txt"
    path.write_text("\n".join(header) + "\n" + row["resolved"])
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", type=Path, required=True, help="git dir of a vllm-omni snapshot")
    parser.add_argument("--uv", help=f"uv to run (default: uv {UV_PIN}, installed once under /var/tmp)")
    parser.add_argument("--python", help="Python 3.12 interpreter for sdist metadata builds")
    parser.add_argument("--torch-backend", default="", help="uv --torch-backend (cu130 where its index is reachable)")
    parser.add_argument("--only", action="append", help="resolve only this profile (repeatable)")
    args = parser.parse_args()
    uv = args.uv or str(pinned_uv())
    uv_version = subprocess.run([uv, "--version"], check=True, capture_output=True, text=True).stdout.split(" (")[0]
    if uv_version != f"uv {UV_PIN}":
        print(f"warning: {uv_version}, the project pins uv {UV_PIN}", file=sys.stderr)
    specs = {**yaml.safe_load(PROFILES.read_text())["__vllm_omni_build_profiles"], **EXTRA}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in sorted(specs.items(), key=lambda kv: kv[1]["version"]):
            if args.only and name not in args.only:
                continue
            row = resolve(uv, name, spec, args, Path(tmp))
            if "error" not in row:
                print(f"recorded {record(row, uv_version).relative_to(ROOT)}", file=sys.stderr)
            rows.append(row)
    print(f"\n{'profile':<10} | {'vllm':<7} | torch | packages | older than manylinux_2_28 | sdist only at 2_28")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<10} | FAILED: " + "\n    ".join(row["error"]))
            continue
        older, sdist = ", ".join(row["older"]) or "-", ", ".join(row["sdist_only"]) or "-"
        print(f"{row['name']:<10} | {row['vllm']:<7} | {row['torch']} | {row['count']} | {older} | {sdist}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
