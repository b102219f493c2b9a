"""voxtral-tts.service as the voxtral_service role renders it, with Ansible's own templar.

The unit template is rendered from the role's defaults and vars plus the facts the role's tasks set
(release, snapshot, venv). Shared by the unit's hardening tests and the upstream conformance checks.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "voxtral_service"

# What preflight.yml / weights.yml set on a host with a 0.30 release.
FACTS = {
    "voxtral_service_release": {
        "version": "0.30.0",
        "stage_config_file": "vllm_omni/deploy/voxtral_tts.yaml",
        "stage_config_flag": "--deploy-config",
        "release_dir": "/opt/vllm-omni/releases/0.30.0-0123456789ab-abcdef01",
    },
    "__voxtral_service_venv": "/opt/vllm-omni/releases/0.30.0-0123456789ab-abcdef01/venv",
    "voxtral_service_snapshot_dir": (
        "/var/lib/voxtral-tts/hf/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots/"
        "0123456789abcdef0123456789abcdef01234567"
    ),
    "ansible_managed": "Ansible managed",
}


def _trust(value):
    """Role files are trusted template sources in a real run; mark them so here too."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trust(item) for item in value]
    if isinstance(value, dict):
        return {key: _trust(item) for key, item in value.items()}
    return value


def render_unit(**overrides) -> str:
    variables = {}
    for name in ("defaults/main.yml", "vars/main.yml"):
        variables.update(_trust(yaml.safe_load((ROLE / name).read_text())))
    variables.update(_trust(FACTS))
    variables.update(_trust(overrides))
    templar = Templar(loader=DataLoader(), variables=variables)
    text = (ROLE / "templates" / "voxtral-tts.service.j2").read_text()
    return templar.template(trust_as_template(text))


def directives(unit: str) -> dict[str, list[str]]:
    """Directive -> values, with backslash continuation lines joined."""
    joined = re.sub(r" *\\\n\s*", " ", unit)
    out: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def exec_start_argv(unit: str) -> list[str]:
    """ExecStart= as the argument vector systemd passes (its quoting is the shell's here; %% is %)."""
    (exec_start,) = directives(unit)["ExecStart"]
    return [arg.replace("%%", "%") for arg in shlex.split(exec_start)]
