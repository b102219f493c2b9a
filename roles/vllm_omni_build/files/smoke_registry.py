"""Smoke check, run with a release's own Python: vLLM and vllm-omni import, and the given
architectures are registered in vllm-omni's model registry under the given model family.

    python smoke_registry.py FAMILY ARCH [ARCH ...]     -> one JSON line on stdout, exit 1 on a problem
"""

import importlib
import importlib.metadata
import importlib.util
import json
import platform
import sys


def main(argv):
    family, architectures = argv[1], argv[2:]
    problems = []
    registry = importlib.import_module("vllm_omni.model_executor.models.registry")
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
    result = {
        "python": platform.python_version(),
        "vllm": importlib.metadata.version("vllm"),
        "vllm_omni": importlib.metadata.version("vllm-omni"),
        "architectures": {arch: list(models.get(arch, ())) for arch in architectures},
        "problems": problems,
    }
    print(json.dumps(result, sort_keys=True))
    if problems:
        print("smoke test failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
