"""voxtral-tts.service as the voxtral_service role renders it: hardened, scored by systemd-analyze.

The unit template is rendered with Ansible's own templar from the role's defaults and vars plus the facts
the role's tasks set (release, snapshot, venv), then `systemd-analyze security --offline=true` scores it.
The exposure must stay at or below 2.0 for every shape the role can render.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from unit_render import FACTS, directives, render_unit

MAX_EXPOSURE = 2.0


def exposure(unit: str, tmp_path: Path) -> tuple[float, str]:
    path = tmp_path / "voxtral-tts.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for voxtral-tts\.service: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure in systemd-analyze output:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1)), result.stdout


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is missing")

CASES = {
    "default": {},
    "weights in /root (ProtectHome=tmpfs + bind)": {"voxtral_service_hf_home": "/root/.cache/huggingface"},
    "bound to all addresses, LAN allowed": {
        "voxtral_service_host": "0.0.0.0",
        "voxtral_service_ip_address_allow": ["localhost", "10.0.0.0/8"],
    },
    "MemoryDenyWriteExecute on, extra groups": {
        "voxtral_service_memory_deny_write_execute": True,
        "voxtral_service_supplementary_groups": ["video"],
    },
}


@needs_analyze
@pytest.mark.parametrize("case", CASES)
def test_exposure_at_most_2(case, tmp_path, record_property):
    score, report = exposure(render_unit(**CASES[case]), tmp_path)
    record_property("exposure", score)
    print(f"\nvoxtral-tts.service exposure ({case}): {score}")
    assert score <= MAX_EXPOSURE, report


def test_unit_starts_with_the_managed_comment():
    assert render_unit().startswith("#\n# Ansible managed\n#\n")


def test_serve_command():
    d = directives(render_unit())
    (exec_start,) = d["ExecStart"]
    args = exec_start.split()
    assert args[:3] == [
        FACTS["__voxtral_service_venv"] + "/bin/vllm-omni",
        "serve",
        FACTS["voxtral_service_snapshot_dir"],
    ]
    assert "--omni" in args
    assert args[args.index("--tokenizer-mode") + 1] == "mistral"
    assert args[args.index("--deploy-config") + 1] == "/var/lib/voxtral-tts/voxtral_tts.yaml"
    assert "--stage-configs-path" not in args
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert args[args.index("--port") + 1] == "8091"
    assert args[args.index("--served-model-name") + 1] == "mistralai/Voxtral-4B-TTS-2603"
    assert args[args.index("--init-timeout") + 1] == "600"
    assert "--api-key" not in args  # the key lives in the 0600 environment file only
    assert "HF_HUB_OFFLINE=1" in d["Environment"]
    assert "VLLM_LOGGING_COLOR=0" in d["Environment"]  # 0.30 forces colour under --omni otherwise
    assert not any(e.startswith("TRANSFORMERS_OFFLINE") for e in d["Environment"])  # transformers 5.x ignores it
    assert d["EnvironmentFile"] == ["/var/lib/voxtral-tts/voxtral-tts.env"]


def test_old_layout_uses_stage_configs_path_and_extra_args_are_quoted():
    release = dict(FACTS["voxtral_service_release"], version="0.18.0")
    release.update(stage_config_flag="--stage-configs-path")
    unit = render_unit(voxtral_service_release=release, voxtral_service_extra_args=["--seed", "a b%"])
    (exec_start,) = directives(unit)["ExecStart"]
    assert "--stage-configs-path /var/lib/voxtral-tts/voxtral_tts.yaml" in exec_start
    assert "--deploy-config" not in exec_start
    assert exec_start.endswith("--seed 'a b%%'")


def test_hardening_directives():
    d = {key: values[-1] for key, values in directives(render_unit()).items()}
    expected = {
        "User": "voxtral",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": "@system-service",
        "CapabilityBoundingSet": "",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "UMask": "0077",
        "MemoryDenyWriteExecute": "no",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
        # Gemma is never the one the kernel picks, and a memory kill is not restarted (issue 26).
        "OOMScoreAdjust": "1000",
        "OOMPolicy": "kill",
        "RestartPreventExitStatus": "SIGKILL",
    }
    assert {key: d.get(key) for key in expected} == expected
    assert "PrivateDevices" not in d
    assert directives(render_unit())["DeviceAllow"] == [
        "/dev/nvidiactl rw",
        "/dev/nvidia0 rw",
        "/dev/nvidia-uvm rw",
        "/dev/nvidia-uvm-tools rw",
        "char-nvidia-caps r",
    ]


def test_timeouts_exceed_the_server_timeouts():
    d = {key: values[-1] for key, values in directives(render_unit()).items()}
    assert int(d["TimeoutStartSec"]) > 600  # --init-timeout
    assert int(d["TimeoutStopSec"]) > 60  # shutdown timeout
    # The start limit interval holds the whole burst of full start attempts.
    assert int(d["StartLimitIntervalSec"]) >= int(d["StartLimitBurst"]) * int(d["TimeoutStartSec"])
    assert d["ExecStartPost"].endswith("wait-healthy.py http://127.0.0.1:8091/health")


def test_weights_in_a_home_are_bound_read_only():
    d = directives(render_unit(voxtral_service_hf_home="/root/.cache/huggingface"))
    assert d["ProtectHome"] == ["tmpfs"]
    assert d["BindReadOnlyPaths"] == ["/root/.cache/huggingface/hub/models--mistralai--Voxtral-4B-TTS-2603"]


def test_specific_bind_address_is_allowed_and_probed():
    d = directives(render_unit(voxtral_service_host="192.0.2.10", voxtral_service_ip_address_allow=["localhost"]))
    assert d["IPAddressAllow"] == ["localhost 192.0.2.10"]
    assert d["ExecStartPost"][0].endswith("http://192.0.2.10:8091/health")


def test_memory_deny_write_execute_is_a_variable():
    d = directives(render_unit(voxtral_service_memory_deny_write_execute=True))
    assert d["MemoryDenyWriteExecute"] == ["yes"]


def test_beside_a_serving_gemma_a_failed_voxtral_is_not_restarted():
    d = {key: values[-1] for key, values in directives(render_unit(voxtral_service_beside_gemma=True)).items()}
    assert (d["Restart"], d["OOMScoreAdjust"], d["OOMPolicy"]) == ("no", "1000", "kill")
