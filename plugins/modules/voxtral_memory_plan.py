#!/usr/bin/python
"""Ansible module: size Voxtral's two vllm-omni stages from the snapshot and decide coexist or pause."""

DOCUMENTATION = r"""
---
module: voxtral_memory_plan
short_description: Size Voxtral TTS's vllm-omni stages from its snapshot and decide whether it fits beside Gemma
description:
  - Reads only (the snapshot's safetensors headers, never the tensor data; C(params.json); meminfo), so it
    runs in check mode too and never reports a change.
  - Per stage it adds the weights that stage loads (stage 0 C(audio_generation) loads every tensor, stage 1
    C(audio_tokenizer) the C(audio_tokenizer.*) and C(mm_audio_embeddings.audio_codebook_embeddings*) ones,
    as vllm-omni 0.30's C(load_weights) routes them; the codec encoder, allocated though the public checkpoint
    lacks it, is estimated as its mirror the decoder), stage 0's KV cache (2 x layers x KV heads x head dim x
    dtype bytes per token, x O(max_model_len) in whole blocks x O(max_num_seqs)), and an overhead (CUDA
    context, CUDA graphs, activations).
  - Each stage's fraction is the smallest with O(fraction_decimals) digits whose claim, ceil(total x fraction)
    as vLLM 0.30 computes it, covers the stage's need.
  - Decides C(coexist) when both claims, Voxtral's host processes and O(margin_bytes) fit in what is
    available now (MemAvailable, Gemma serving, plus O(voxtral_held_bytes)), else C(pause). vLLM checks
    stage 0 against free memory, then stage 1 with stage 0's claim gone; both checks are returned, and so
    are upstream's 0.8 + 0.1.
  - Fails only on unusable input (no snapshot, a corrupt header, a C(params.json) without the KV fields,
    meminfo without C(MemAvailable)), with a message naming the file and the figure.
options:
  snapshot_dir:
    description: The Voxtral snapshot directory (C(consolidated.safetensors), C(params.json)).
    type: path
    required: true
  meminfo_path:
    description: The meminfo file to read C(MemTotal) and C(MemAvailable) from.
    type: path
    default: /proc/meminfo
  device_total_bytes:
    description:
      - The device total vLLM multiplies the fractions by (cudaMemGetInfo's total, about 121.7 GiB on a
        GB10). Default C(MemTotal) from O(meminfo_path).
    type: int
  max_model_len:
    description: Stage 0's C(max_model_len) (upstream's deploy config says 4096).
    type: int
    default: 4096
  max_num_seqs:
    description: Stage 0's C(max_num_seqs) (upstream's deploy config says 32).
    type: int
    default: 32
  kv_block_size:
    description: vLLM's KV cache block size in tokens; a request takes whole blocks.
    type: int
    default: 16
  kv_cache_dtype_bytes:
    description: Bytes per KV cache element. Default from C(params.json)'s C(dtype) (bfloat16 when absent, 2).
    type: int
  stage0_cuda_context_bytes:
    description: Stage 0's CUDA context and library workspaces (estimate).
    type: int
    default: 805306368
  stage0_cuda_graph_bytes:
    description: Stage 0's captured CUDA graphs (estimate).
    type: int
    default: 536870912
  stage0_activation_bytes:
    description: Stage 0's activation peak of vLLM's profile run (estimate).
    type: int
    default: 2147483648
  stage1_cuda_context_bytes:
    description: Stage 1's CUDA context and library workspaces (estimate).
    type: int
    default: 805306368
  stage1_cuda_graph_bytes:
    description: Stage 1's CUDA graphs (upstream runs it eager, so none).
    type: int
    default: 0
  stage1_activation_bytes:
    description: Stage 1's activation peak (estimate).
    type: int
    default: 1073741824
  host_process_bytes:
    description: Memory Voxtral's processes hold outside the fractions (API server, one engine per stage).
    type: int
    default: 4294967296
  margin_bytes:
    description: What must stay available for Gemma and the OS once Voxtral holds its claims.
    type: int
    default: 8589934592
  reclaimable_bytes:
    description: Memory pausing Gemma would give back, if known; sets RV(fits_after_pause).
    type: int
  stage_fractions:
    description:
      - Fractions someone set for some stages (C(gpu_memory_utilization) by stage id, C("0") and C("1")); a
        null or absent stage gets the computed fraction. A set fraction is used as it is (the decision counts
        what it claims) and the plan's C(covers_need) per stage says whether it covers that stage's need.
    type: dict
  voxtral_held_bytes:
    description:
      - What a Voxtral serving now holds (its claims and processes, as its own plan recorded them), counted as
        available (a re-deploy replaces it in place, so the host's MemAvailable alone would count it twice).
    type: int
    default: 0
  fraction_decimals:
    description:
      - Digits of the fractions returned, 1 to 4 (beyond, Python writes C(1e-05), which YAML 1.1 reads as
        a string).
    type: int
    default: 3
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan Voxtral's memory beside Gemma
  voxtral_memory_plan:
    snapshot_dir: /var/lib/voxtral/hf/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots/0123abcd
    margin_bytes: "{{ 8 * 1024 ** 3 }}"
  register: memory_plan

- name: Say what was decided
  ansible.builtin.debug:
    msg: "{{ memory_plan.msg }}"

- name: Start stage 0 and 1 with the planned fractions
  ansible.builtin.set_fact:
    voxtral_stage_overrides: "{{ memory_plan.stage_overrides | to_json }}"
  when: memory_plan.decision == 'coexist'
"""

RETURN = r"""
msg:
  description: One readable line with the decision, each stage's need and fraction, and upstream's claim.
  type: str
  returned: always
decision:
  description: C(coexist) when Voxtral fits beside what is serving now with the margin, else C(pause).
  type: str
  returned: always
  sample: coexist
fractions:
  description: The per-stage C(gpu_memory_utilization) to use, by stage id.
  type: dict
  returned: always
  sample: {"0": 0.201, "1": 0.02}
stage_overrides:
  description: The same fractions in the shape of vllm-omni's C(--stage-overrides) JSON.
  type: dict
  returned: always
  sample: {"0": {"gpu_memory_utilization": 0.201}, "1": {"gpu_memory_utilization": 0.02}}
fits_after_pause:
  description: Whether Voxtral fits once O(reclaimable_bytes) come back; null when that is not given.
  type: bool
  returned: always
plan:
  description:
    - Every number behind the decision, in bytes. C(stages) (weights, KV cache, overhead and its parts,
      need, fraction, claim), C(stage_checks) (vLLM's start checks in turn), C(weights), C(kv_cache),
      C(upstream) (what 0.8 + 0.1 would claim and whether it would start now), the totals, C(reason).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils.voxtral_memory import MemoryPlanError, plan

ARGUMENT_SPEC = {
    "snapshot_dir": {"type": "path", "required": True},
    "meminfo_path": {"type": "path", "default": "/proc/meminfo"},
    "device_total_bytes": {"type": "int"},
    "max_model_len": {"type": "int", "default": 4096},
    "max_num_seqs": {"type": "int", "default": 32},
    "kv_block_size": {"type": "int", "default": 16},
    "kv_cache_dtype_bytes": {"type": "int"},
    "stage0_cuda_context_bytes": {"type": "int", "default": 805306368},
    "stage0_cuda_graph_bytes": {"type": "int", "default": 536870912},
    "stage0_activation_bytes": {"type": "int", "default": 2147483648},
    "stage1_cuda_context_bytes": {"type": "int", "default": 805306368},
    "stage1_cuda_graph_bytes": {"type": "int", "default": 0},
    "stage1_activation_bytes": {"type": "int", "default": 1073741824},
    "host_process_bytes": {"type": "int", "default": 4294967296},
    "margin_bytes": {"type": "int", "default": 8589934592},
    "reclaimable_bytes": {"type": "int"},
    "fraction_decimals": {"type": "int", "default": 3},
    "stage_fractions": {"type": "dict"},
    "voxtral_held_bytes": {"type": "int", "default": 0},
}
OVERHEAD_KEYS = ("cuda_context_bytes", "cuda_graph_bytes", "activation_bytes")


class VoxtralMemoryPlanner:
    """Turns the module's parameters into one plan; the model itself is module_utils.voxtral_memory."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params

    def overhead(self) -> dict:
        return {stage: {key: self.params[f"stage{stage}_{key}"] for key in OVERHEAD_KEYS} for stage in (0, 1)}

    def stage_fractions(self) -> dict:
        """The set fractions as numbers (Ansible may hand them over as strings); null keeps the computed one."""
        out = {}
        for stage, value in (self.params["stage_fractions"] or {}).items():
            if isinstance(value, str):
                text = value.strip()
                if text.lower() in ("", "none", "null"):
                    value = None
                else:
                    try:
                        value = float(text)
                    except ValueError:
                        raise MemoryPlanError(
                            f"stage_fractions: stage {stage} is {value!r}; it must be a fraction above 0, below 1"
                        ) from None
            out[stage] = value
        return out

    def run(self) -> dict:
        p = self.params
        result = plan(
            p["snapshot_dir"],
            meminfo_path=p["meminfo_path"],
            device_total_bytes=p["device_total_bytes"],
            max_model_len=p["max_model_len"],
            max_num_seqs=p["max_num_seqs"],
            kv_block_size=p["kv_block_size"],
            kv_cache_dtype_bytes=p["kv_cache_dtype_bytes"],
            overhead=self.overhead(),
            host_process_bytes=p["host_process_bytes"],
            margin_bytes=p["margin_bytes"],
            reclaimable_bytes=p["reclaimable_bytes"],
            fraction_decimals=p["fraction_decimals"],
            stage_fractions=self.stage_fractions(),
            voxtral_held_bytes=p["voxtral_held_bytes"],
        )
        return {
            "changed": False,
            "msg": result["summary"],
            "decision": result["decision"],
            "fractions": result["fractions"],
            "stage_overrides": result["stage_overrides"],
            "fits_after_pause": result["fits_after_pause"],
            "plan": result,
        }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = VoxtralMemoryPlanner(module).run()
    except MemoryPlanError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
