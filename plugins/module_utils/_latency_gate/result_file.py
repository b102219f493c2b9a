"""Saving the latency gate's result to ``save_to``: JSON, written atomically, only when its content changed.

Its own file so that writing (and failing to write) stays apart from measuring and judging: a gate whose
file cannot be written still returns every figure (GateSaveError carries the result).
"""

from __future__ import annotations

import json

from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_if_changed


class GateSaveError(Exception):
    """save_to could not be written; carries the measured result so that the figures are not lost."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def render(result: dict) -> bytes:
    """The file's content: the result without ``changed``, sorted keys, UTF-8, a final newline."""
    saved = {k: v for k, v in result.items() if k != "changed"}
    return (json.dumps(saved, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def save_result(result: dict, path: str) -> bool:
    """Write the result to path (its ``saved_to`` set to path first); True when the file's content changed.

    On failure ``saved_to`` goes back to None and GateSaveError is raised.
    """
    result["saved_to"] = path
    try:
        # Not module.atomic_move: it fails the task itself, and the figures must reach the result.
        return write_if_changed(path, render(result))
    except OSError as exc:
        result["saved_to"] = None
        raise GateSaveError(f"save_to {path}: {exc}", result) from None
