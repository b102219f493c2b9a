"""The voxtral_service role's stage config filters, on both shapes vllm-omni has used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "voxtral_stage_config", ROOT / "plugins" / "filter" / "voxtral_stage_config.py"
)
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)

STAGE_ARGS = yaml.safe_load("""
async_chunk: true
stage_args:
  - stage_id: 0
    runtime: {devices: "0"}
    engine_args: {model_stage: audio_generation, gpu_memory_utilization: 0.8, max_model_len: 4096, max_num_seqs: 32}
  - stage_id: 1
    engine_args: {model_stage: audio_tokenizer, gpu_memory_utilization: 0.1, max_num_seqs: 32}
""")
DEPLOY = yaml.safe_load("""
async_chunk: true
stages:
  - {stage_id: 0, gpu_memory_utilization: 0.8, max_model_len: 4096, max_num_seqs: 32, devices: "0"}
  - {stage_id: 1, gpu_memory_utilization: 0.1, max_num_seqs: 32, devices: "0"}
""")
KNOBS = [
    {
        "0": {"gpu_memory_utilization": 0.3, "max_model_len": 2048, "max_num_seqs": None},
        "1": {"max_num_seqs": 8},
    },
    {1: {"gpu_memory_utilization": 0.05}},
]


def test_old_shape_goes_into_engine_args():
    out = plugin.voxtral_stage_config(STAGE_ARGS, "--stage-configs-path", KNOBS)
    stage0, stage1 = (s["engine_args"] for s in out["stage_args"])
    assert stage0 == {"model_stage": "audio_generation", "gpu_memory_utilization": 0.3, "max_model_len": 2048,
                      "max_num_seqs": 32}  # fmt: skip
    assert stage1 == {"model_stage": "audio_tokenizer", "gpu_memory_utilization": 0.05, "max_num_seqs": 8}
    assert out["stage_args"][0]["runtime"] == {"devices": "0"}
    assert STAGE_ARGS["stage_args"][0]["engine_args"]["gpu_memory_utilization"] == 0.8  # input untouched


def test_new_shape_goes_into_the_stage():
    out = plugin.voxtral_stage_config(DEPLOY, "--deploy-config", KNOBS)
    assert out["stages"][0]["gpu_memory_utilization"] == 0.3
    assert out["stages"][0]["max_model_len"] == 2048
    assert out["stages"][1] == {
        "stage_id": 1,
        "gpu_memory_utilization": 0.05,
        "max_num_seqs": 8,
        "devices": "0",
    }
    assert out["async_chunk"] is True


def test_nulls_keep_the_file_values():
    out = plugin.voxtral_stage_config(DEPLOY, "--deploy-config", [{"0": {"gpu_memory_utilization": None}}, {}])
    assert out == DEPLOY


def test_values():
    assert plugin.voxtral_stage_values(STAGE_ARGS, "--stage-configs-path", "gpu_memory_utilization") == {
        "0": 0.8,
        "1": 0.1,
    }
    assert plugin.voxtral_stage_values(DEPLOY, "--deploy-config", "max_model_len") == {"0": 4096, "1": None}


@pytest.mark.parametrize(
    ("config", "flag", "overrides", "message"),
    [
        (STAGE_ARGS, "--deploy-config", None, "no 'stages' list"),
        (DEPLOY, "--stage-configs-path", None, "no 'stage_args' list"),
        (DEPLOY, "--stage-overrides", None, "unknown stage config flag"),
        (DEPLOY, "--deploy-config", {"2": {"max_num_seqs": 1}}, "stage 2 is not in the stage config"),
        (DEPLOY, "--deploy-config", {"0": 0.3}, "must be a mapping"),
    ],
)
def test_errors(config, flag, overrides, message):
    with pytest.raises(AnsibleFilterError, match=message):
        plugin.voxtral_stage_config(config, flag, overrides)
