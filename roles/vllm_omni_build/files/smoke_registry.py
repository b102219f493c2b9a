"""Smoke check, run with a release's own Python: vLLM and vllm-omni import, and the given
architectures are registered in vllm-omni's model registry under the given model family.

    python smoke_registry.py FAMILY ARCH [ARCH ...]

Its stdout is exactly one JSON line, whatever happens: real vLLM logs to stdout while it is imported
(VLLM_LOGGING_STREAM defaults to ext://sys.stdout, vllm/envs.py 0.18.1 and 0.26.0), so everything else
written to file descriptor 1 goes to stderr. Exit 1 when there is a problem; the JSON says which.
"""

import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import traceback


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check(family, architectures):
    problems = []
    models = {}
    try:
        registry = importlib.import_module("vllm_omni.model_executor.models.registry")
    except Exception as error:  # any import failure is the finding: report it in one line
        traceback.print_exc()
        problems.append(f"importing vllm_omni.model_executor.models.registry failed: {type(error).__name__}: {error}")
        registry = None
    if registry is not None:
        # vllm-omni's registry: architecture -> (model package, module, class), beside vLLM's own.
        models = getattr(registry, "_OMNI_MODELS", None)
        if not isinstance(models, dict):
            problems.append("vllm_omni.model_executor.models.registry has no _OMNI_MODELS table")
            models = {}
        for arch in architectures:
            entry = models.get(arch)
            if entry is None:
                problems.append(f"{arch} is not registered")
                continue
            if entry[0] != family:
                problems.append(f"{arch} is registered under {entry[0]!r}, not {family!r}")
            module = f"vllm_omni.model_executor.models.{entry[0]}.{entry[1]}"
            if importlib.util.find_spec(module) is None:
                problems.append(f"{arch}: its module {module} is not in the tree")
    return {
        "python": platform.python_version(),
        "vllm": _version("vllm"),
        "vllm_omni": _version("vllm-omni"),
        "architectures": {arch: list(models.get(arch, ())) for arch in architectures},
        "problems": problems,
    }


def main(argv):
    result_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)  # from here on, fd 1 (Python's and any library's) is stderr
    result = check(argv[1], argv[2:])
    sys.stdout.flush()
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result, sort_keys=True) + "\n")
    if result["problems"]:
        print("smoke test failed: " + "; ".join(result["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
