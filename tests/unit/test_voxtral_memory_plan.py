"""The voxtral_memory_plan module run as Ansible runs it, on synthetic snapshots and a fake meminfo."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils import voxtral_memory
from ansible_collections.voxtral.deploy.plugins.modules import voxtral_memory_plan
from test_voxtral_memory import TENSORS, meminfo, safetensors, snapshot

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from make_weights import make_snapshot  # noqa: E402

GIB = 1024**3
GB10_TOTAL = 130_668_036_096  # cudaMemGetInfo's total on a GB10, about 121.7 GiB


def run_module(args: dict, check_mode: bool = False) -> dict:
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        voxtral_memory_plan.main()
    return json.loads(stdout.getvalue())


@pytest.fixture
def snap(tmp_path):
    return snapshot(tmp_path)


def test_documentation_matches_the_argument_spec():
    docs = yaml.safe_load(voxtral_memory_plan.DOCUMENTATION)
    spec = voxtral_memory_plan.ARGUMENT_SPEC
    assert set(spec) == set(docs["options"])
    for name, option in spec.items():
        doc = docs["options"][name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("required", False) == option.get("required", False), name
    yaml.safe_load(voxtral_memory_plan.EXAMPLES)


def test_module_defaults_are_the_models_defaults():
    spec = voxtral_memory_plan.ARGUMENT_SPEC
    for stage, figures in voxtral_memory.DEFAULT_OVERHEAD.items():
        for key, value in figures.items():
            assert spec[f"stage{stage}_{key}"]["default"] == value
    assert spec["host_process_bytes"]["default"] == voxtral_memory.DEFAULT_HOST_PROCESS_BYTES
    assert spec["margin_bytes"]["default"] == voxtral_memory.DEFAULT_MARGIN_BYTES
    assert spec["max_model_len"]["default"] == voxtral_memory.UPSTREAM_MAX_MODEL_LEN
    assert spec["max_num_seqs"]["default"] == voxtral_memory.UPSTREAM_MAX_NUM_SEQS
    assert spec["kv_block_size"]["default"] == voxtral_memory.DEFAULT_KV_BLOCK_SIZE
    assert spec["fraction_decimals"]["default"] == voxtral_memory.DEFAULT_FRACTION_DECIMALS


def test_documented_return_keys_are_returned(tmp_path, snap):
    result = run_module({"snapshot_dir": str(snap), "meminfo_path": str(meminfo(tmp_path, 1_000_000, 900_000))})
    documented = set(yaml.safe_load(voxtral_memory_plan.RETURN))
    assert documented <= set(result), documented - set(result)
    assert not set(result) - documented - {"changed", "invocation"}


def test_coexist_on_a_gb10_with_room(tmp_path, snap):
    # A GB10 with Gemma serving and 60 GiB available: a tiny snapshot plus the default overheads fits.
    path = meminfo(tmp_path, 127_601_640, 60 * 1024 * 1024)
    result = run_module({"snapshot_dir": str(snap), "meminfo_path": str(path), "device_total_bytes": GB10_TOTAL})
    assert result["changed"] is False
    assert result["decision"] == "coexist"
    plan = result["plan"]
    assert result["fractions"] == {"0": plan["stages"][0]["fraction"], "1": plan["stages"][1]["fraction"]}
    assert result["stage_overrides"]["0"] == {"gpu_memory_utilization": result["fractions"]["0"]}
    assert plan["device_total_source"] == "device_total_bytes"
    assert plan["upstream"]["total_claim_bytes"] > 109 * GIB
    assert plan["upstream"]["starts_now"] is False  # 0.8 x 121.7 GiB does not fit in 60 GiB
    assert result["msg"] == plan["summary"]
    assert result["msg"].startswith("memory plan: coexist: ")


def test_pause_when_too_little_is_available(tmp_path, snap):
    path = meminfo(tmp_path, 127_601_640, 15 * 1024 * 1024)
    result = run_module(
        {"snapshot_dir": str(snap), "meminfo_path": str(path), "device_total_bytes": GB10_TOTAL,
         "reclaimable_bytes": 60 * GIB}
    )  # fmt: skip
    assert result["decision"] == "pause"
    assert result["fits_after_pause"] is True
    assert "exceeds the 15.0 GiB available now" in result["msg"]


def test_options_reach_the_model(tmp_path, snap):
    path = meminfo(tmp_path, 127_601_640, 60 * 1024 * 1024)
    result = run_module(
        {
            "snapshot_dir": str(snap), "meminfo_path": str(path), "device_total_bytes": GB10_TOTAL,
            "max_model_len": 100, "max_num_seqs": 3, "kv_block_size": 32, "kv_cache_dtype_bytes": 1,
            "stage0_cuda_context_bytes": 1, "stage0_cuda_graph_bytes": 2, "stage0_activation_bytes": 3,
            "stage1_cuda_context_bytes": 4, "stage1_cuda_graph_bytes": 5, "stage1_activation_bytes": 6,
            "host_process_bytes": 7, "margin_bytes": 8, "fraction_decimals": 4,
        }
    )  # fmt: skip
    plan = result["plan"]
    assert plan["kv_cache"]["tokens"] == 128 * 3
    assert plan["kv_cache"]["bytes"] == 2 * 2 * 2 * 16 * 1 * 128 * 3
    assert [s["overhead_bytes"] for s in plan["stages"]] == [6, 15]
    assert (plan["host_process_bytes"], plan["margin_bytes"]) == (7, 8)
    assert result["fractions"]["1"] == 0.0001  # 15 bytes of a GB10: one step of four decimals


def test_check_mode_plans_all_the_same(tmp_path, snap):
    path = meminfo(tmp_path, 127_601_640, 60 * 1024 * 1024)
    args = {"snapshot_dir": str(snap), "meminfo_path": str(path)}
    assert run_module(args, check_mode=True)["plan"] == run_module(args)["plan"]


def test_the_fixture_snapshot_plans(tmp_path):
    # tests/fixtures/make_weights.py: the simulated Spark's snapshot (real names, tiny files).
    fixture = make_snapshot(tmp_path / "hf")
    path = meminfo(tmp_path, 24 * 1024 * 1024, 16 * 1024 * 1024)
    result = run_module({"snapshot_dir": str(fixture), "meminfo_path": str(path)})
    assert result["decision"] in ("coexist", "pause")
    assert result["plan"]["weights"]["tensors"] >= 0


def test_missing_snapshot_fails_with_its_path(tmp_path):
    result = run_module({"snapshot_dir": str(tmp_path / "nowhere"), "meminfo_path": str(meminfo(tmp_path, 10, 5))})
    assert result["failed"] is True
    assert result["msg"] == f"{tmp_path / 'nowhere'}: no such snapshot directory (the Voxtral weights are not there)"


def test_corrupt_header_fails_naming_the_file(tmp_path, snap):
    (snap / "consolidated.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    result = run_module({"snapshot_dir": str(snap), "meminfo_path": str(meminfo(tmp_path, 10, 5))})
    assert result["failed"] is True
    assert result["msg"].startswith(f"{snap / 'consolidated.safetensors'}: corrupt safetensors header: header length")


def test_params_without_fields_fails(tmp_path):
    snap = snapshot(tmp_path, params={"model_type": "voxtral_tts"})
    result = run_module({"snapshot_dir": str(snap), "meminfo_path": str(meminfo(tmp_path, 10, 5))})
    assert result["failed"] is True
    assert "params.json lacks n_layers, n_kv_heads, head_dim (or dim and n_heads)" in result["msg"]


def test_meminfo_without_memavailable_fails(tmp_path, snap):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal: 1000 kB\n")
    result = run_module({"snapshot_dir": str(snap), "meminfo_path": str(path)})
    assert result["failed"] is True
    assert result["msg"] == f"{path}: no MemAvailable line (MemAvailable needs Linux 3.14 or later)"


def test_safetensors_helper_matches_the_tensor_table(tmp_path):
    # The shared helper writes the table's tensors (the module tests rely on it).
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors(TENSORS))
    assert set(voxtral_memory.read_safetensors_header(str(path))) == set(TENSORS)


# --- the plan against the fake vllm-omni's start check (the same rule on both sides) ------------------

FAKE_CLI = ROOT / "tests" / "fixtures" / "fake_vllm_omni" / "cli.py"
DEPLOY_CONFIG = "stages:\n  - stage_id: 0\n    max_model_len: 4096\n  - stage_id: 1\n    max_model_len: 65536\n"


def start_fake(tmp_path: Path, snapshot: Path, meminfo_path: Path, overrides: dict) -> tuple[int, str]:
    """Run the fake with the plan's --stage-overrides until it serves (then stop it) or exits."""
    config = tmp_path / "deploy.yaml"
    config.write_text(DEPLOY_CONFIG)
    behaviour = tmp_path / "fake-behaviour.json"
    behaviour.write_text(json.dumps({"memory_check": True, "device_total_gib": 1, "meminfo_path": str(meminfo_path)}))
    env = {"PATH": "/usr/bin:/bin", "VLLM_OMNI_FAKE_VERSION": "0.30.0", "FAKE_VLLM_OMNI_BEHAVIOUR": str(behaviour)}
    args = [
        sys.executable, str(FAKE_CLI), "serve", str(snapshot), "--omni", "--tokenizer-mode", "mistral",
        "--deploy-config", str(config), "--stage-overrides", json.dumps(overrides), "--host", "127.0.0.1",
        "--port", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if "Starting vLLM API server" in line:
            proc.terminate()
            break
    proc.wait(timeout=10)
    proc.stdout.close()
    return proc.returncode, "".join(output)


def test_a_coexist_plan_starts_the_fake_and_one_kib_less_is_refused(tmp_path):
    # No host processes, no margin: coexist exactly when vLLM's two checks pass, and the fake agrees.
    fixture = make_snapshot(tmp_path / "hf")
    args = {
        "snapshot_dir": str(fixture), "device_total_bytes": GIB, "host_process_bytes": 0, "margin_bytes": 0,
        "max_num_seqs": 4, "stage0_cuda_context_bytes": 64 << 20, "stage0_cuda_graph_bytes": 0,
        "stage0_activation_bytes": 0, "stage1_cuda_context_bytes": 32 << 20, "stage1_activation_bytes": 0,
    }  # fmt: skip
    probe = run_module({**args, "meminfo_path": str(meminfo(tmp_path, 2 * 1024 * 1024, 1024 * 1024))})
    required_kib = -(-probe["plan"]["required_bytes"] // 1024)
    at_boundary = meminfo(tmp_path, 2 * 1024 * 1024, required_kib)
    fits = run_module({**args, "meminfo_path": str(at_boundary)})
    assert fits["decision"] == "coexist"
    code, output = start_fake(tmp_path, fixture, at_boundary, fits["stage_overrides"])
    assert "Starting vLLM API server" in output, output
    short = meminfo(tmp_path, 2 * 1024 * 1024, required_kib - 1)
    assert run_module({**args, "meminfo_path": str(short)})["decision"] == "pause"
    code, output = start_fake(tmp_path, fixture, short, fits["stage_overrides"])
    assert code == 1
    assert "on startup is less than desired GPU memory utilization" in output


def test_set_fractions_and_held_memory_reach_the_model(tmp_path, snap):
    path = meminfo(tmp_path, 127_601_640, 60 * 1024 * 1024)
    args = {"snapshot_dir": str(snap), "meminfo_path": str(path), "device_total_bytes": GB10_TOTAL}
    # As Ansible hands templated values over: strings, and "None" for a stage nobody set.
    result = run_module({**args, "stage_fractions": {"0": "0.3", "1": "None"}, "voxtral_held_bytes": GIB})
    assert result["fractions"]["0"] == 0.3
    assert [s["fraction_source"] for s in result["plan"]["stages"]] == ["set", "computed"]
    assert result["plan"]["available_bytes"] == 60 * GIB + GIB
    assert "0.3 (set; claims" in result["msg"]
    failed = run_module({**args, "stage_fractions": {"0": "lots"}})
    assert failed["failed"] is True
    assert failed["msg"] == "stage_fractions: stage 0 is 'lots'; it must be a fraction above 0, below 1"
