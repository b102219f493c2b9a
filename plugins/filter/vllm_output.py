"""Filters that read what vLLM and vllm-omni print, for the build's smoke test and the conformance scripts.

- ``{{ result.stdout | voxtral.deploy.vllm_smoke_result }}``: the result of the build's
  files/smoke_registry.py, whose stdout is one JSON object line (vLLM's import-time log lines are sent to stderr
  there); ``{}`` for anything else (the script did not get to write it), so a check can say so instead of a
  JSON parser's error.
- ``{{ result.stderr | voxtral.deploy.vllm_error_line }}``: the one line a user reads of a failed command:
  argparse's ``prog: error: ...``, else the exception line of a traceback (the last one: a chained error's
  cause comes first), else the last line that is not empty.

vLLM writes its log lines to stdout while importing (VLLM_LOGGING_STREAM defaults to ext://sys.stdout,
vllm/envs.py 0.18.1 and 0.26.0) and tracebacks to stderr, so the error is read from stderr alone.
"""

from __future__ import annotations

import json
import re

_ARGPARSE_ERROR = re.compile(r"^\S+: error: ")
# "RuntimeError: ...", "torch.OutOfMemoryError: ...", "vllm.x.SomeException: ..."
_EXCEPTION = re.compile(r"^[A-Za-z_.]+(Error|Exception)\b")


def vllm_error_line(text) -> str:
    lines = [line.rstrip() for line in str(text or "").splitlines() if line.strip()]
    for pattern in (_ARGPARSE_ERROR, _EXCEPTION):
        for line in reversed(lines):
            if pattern.match(line):
                return line
    return lines[-1] if lines else ""


def vllm_smoke_result(text) -> dict:
    lines = str(text or "").splitlines()
    if len(lines) != 1 or not lines[0].startswith("{"):
        return {}
    try:
        result = json.loads(lines[0])
    except ValueError:
        return {}
    return result if isinstance(result, dict) else {}


class FilterModule:
    def filters(self):
        return {"vllm_error_line": vllm_error_line, "vllm_smoke_result": vllm_smoke_result}
