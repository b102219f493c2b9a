"""Voxtral TTS memory model: what each vllm-omni stage needs, what the host can give, and the fractions.

Pure functions (stdlib only, it runs on the Spark's own Python); the only I/O is reading the files it is
given: the snapshot's safetensors headers (never the tensor data), params.json, and a meminfo file.

How vLLM 0.30 decides at start (vllm/v1/worker/utils.py `request_memory`, vllm/utils/mem_utils.py
`MemorySnapshot.measure`): each engine requests ceil(total x gpu_memory_utilization) and refuses when
free memory is lower; on an integrated GPU (GB10) free is MemAvailable and total is cudaMemGetInfo's.
vllm-omni starts one engine per stage on the same device, stage 0 first, then stage 1 with stage 0's
claim already gone from free (vllm-omni 0.30.0 engine/stage_runtime.py `_initialize_stage_replicas`:
stages sharing a GPU initialize sequentially). An engine then fills its claim (the KV cache takes what the weights,
activations and non-torch memory leave), so a claim is also what the stage holds once it serves.
"""

from __future__ import annotations

import json
import math
import os
import struct

GIB = 1024**3
MIB = 1024**2

# Bytes per element of each safetensors dtype (the format's own list, safetensors 0.4 `Dtype`).
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
# Torch dtype names params.json may carry, for the KV cache's element size.
TORCH_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "fp8": 1, "float8_e4m3fn": 1}
# vllm-omni 0.30.0 transformers_utils/parsers/voxtral_tts.py `_VOXTRAL_TTS_DTYPE`: params.json without dtype.
DEFAULT_MODEL_DTYPE = "bfloat16"
# safetensors refuses headers above 100 MB (safetensors `MAX_HEADER_SIZE`): a larger length is corruption.
MAX_HEADER_BYTES = 100_000_000

STAGE_NAMES = {0: "audio_generation", 1: "audio_tokenizer"}
# vllm-omni 0.30.0 models/voxtral_tts/voxtral_tts.py load_weights: stage 1 keeps only these names, stage 0
# (voxtral_tts_audio_generation.py load_weights) loads every tensor, its own audio_tokenizer included.
STAGE1_PREFIXES = ("audio_tokenizer.", "mm_audio_embeddings.audio_codebook_embeddings")
# vllm-omni 0.30.0 voxtral_tts_audio_tokenizer.py `_encoder_weight_prefixes`: the codec's encoder is built
# (allocated) in both stages even when the checkpoint lacks it, as the public one does.
ENCODER_PREFIXES = ("audio_tokenizer.input_proj.", "audio_tokenizer.encoder_blocks.")
# The encoder mirrors the decoder (AudioTokenizerArgs, same file: 2,2,2,2 transformer layers each way, same
# dim; input_proj mirrors output_proj), so an absent encoder is estimated as the size of these tensors.
ENCODER_MIRROR_PREFIXES = ("audio_tokenizer.output_proj.", "audio_tokenizer.decoder_blocks.")

# Upstream's stage fractions: vllm-omni 0.30.0 vllm_omni/deploy/voxtral_tts.yaml.
UPSTREAM_FRACTIONS = (0.8, 0.1)
# Stage 0's limits in the same file (max_model_len, max_num_seqs).
UPSTREAM_MAX_MODEL_LEN = 4096
UPSTREAM_MAX_NUM_SEQS = 32
# vLLM 0.30 CacheConfig block_size default: a request's KV cache is whole blocks of this many tokens.
DEFAULT_KV_BLOCK_SIZE = 16

# Per-stage overhead outside weights and KV cache. Estimates, not measurements on a GB10 (each an option):
# a CUDA context with cuBLAS/NCCL workspaces is 0.5-1 GiB per process on recent GPUs; stage 0 captures CUDA
# graphs (enforce_eager false in the deploy yaml; vLLM's graphs for up to max_num_seqs plus the acoustic
# transformer's wrapper) and profiles activations at max_num_batched_tokens 32768 (Mistral MLP gate+up of
# 32768 x 2 x 9216 BF16 is 1.1 GiB alone); stage 1 is eager. The vLLM recipe for Voxtral-4B-TTS
# (recipes.vllm.ai) reports stage 1 at about 1.55 GiB in all on an RTX 4090, weights included.
DEFAULT_OVERHEAD = {
    0: {"cuda_context_bytes": 768 * MIB, "cuda_graph_bytes": 512 * MIB, "activation_bytes": 2 * GIB},
    1: {"cuda_context_bytes": 768 * MIB, "cuda_graph_bytes": 0, "activation_bytes": 1 * GIB},
}
# Memory Voxtral's processes hold outside the fractions (API server and one engine process per stage, each
# importing torch and CUDA: roughly 1-1.5 GiB resident each). On unified memory it lowers MemAvailable too.
DEFAULT_HOST_PROCESS_BYTES = 4 * GIB
# What must stay available for Gemma and the OS once Voxtral holds its claims (a choice, not a fact).
DEFAULT_MARGIN_BYTES = 8 * GIB
DEFAULT_FRACTION_DECIMALS = 3


class MemoryPlanError(ValueError):
    """An input the model cannot use; the message names the file or figure and what was expected."""


# ---------------------------------------------------------------------------------------------------
# Reading the host


def read_safetensors_header(path: str) -> dict[str, int]:
    """Bytes per tensor from one safetensors file's header: 8-byte little-endian length, then JSON."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise MemoryPlanError(f"{path}: corrupt safetensors header: file is {size} bytes, shorter than 8")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise MemoryPlanError(
                    f"{path}: corrupt safetensors header: header length {length} bytes does not fit the "
                    f"{size}-byte file (limit {MAX_HEADER_BYTES})"
                )
            raw = handle.read(length)
    except OSError as exc:
        raise MemoryPlanError(f"{path}: cannot read the safetensors file: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MemoryPlanError(f"{path}: corrupt safetensors header: not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise MemoryPlanError(f"{path}: corrupt safetensors header: a JSON {type(header).__name__}, not an object")
    data_bytes = size - 8 - length
    sizes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        sizes[name] = tensor_bytes(path, name, entry, data_bytes)
    return sizes


def tensor_bytes(path: str, name: str, entry, data_bytes: int) -> int:
    """One header entry's size: elements x dtype bytes, cross-checked with its data_offsets."""
    if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
        raise MemoryPlanError(f"{path}: corrupt safetensors header: tensor {name!r} has no shape list")
    dtype = entry.get("dtype")
    if dtype not in DTYPE_BYTES:
        raise MemoryPlanError(f"{path}: tensor {name!r} has dtype {dtype!r}; known: {', '.join(sorted(DTYPE_BYTES))}")
    shape = entry["shape"]
    if not all(isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape):
        raise MemoryPlanError(f"{path}: corrupt safetensors header: tensor {name!r} has shape {shape!r}")
    nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
    offsets = entry.get("data_offsets")
    if offsets is not None and (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or offsets[1] - offsets[0] != nbytes
        or offsets[1] > data_bytes
    ):
        raise MemoryPlanError(
            f"{path}: corrupt safetensors header: tensor {name!r} ({dtype} {shape}, {nbytes} bytes) has "
            f"data_offsets {offsets!r} (data section {data_bytes} bytes)"
        )
    return nbytes


def snapshot_tensor_bytes(snapshot_dir: str) -> dict[str, int]:
    """Bytes per tensor over every top-level *.safetensors of a snapshot (one file, or shards)."""
    if not os.path.isdir(snapshot_dir):
        raise MemoryPlanError(f"{snapshot_dir}: no such snapshot directory (the Voxtral weights are not there)")
    files = sorted(name for name in os.listdir(snapshot_dir) if name.endswith(".safetensors"))
    if not files:
        raise MemoryPlanError(f"{snapshot_dir}: no *.safetensors file (expected consolidated.safetensors)")
    sizes: dict[str, int] = {}
    for name in files:
        path = os.path.join(snapshot_dir, name)
        for tensor, nbytes in read_safetensors_header(path).items():
            if tensor in sizes:
                raise MemoryPlanError(f"{path}: tensor {tensor!r} is also in another shard")
            sizes[tensor] = nbytes
    return sizes


def read_params(path: str) -> dict:
    """The language model's KV shape from a Mistral params.json: layers, KV heads, head dim, dtype."""
    try:
        with open(path, encoding="utf-8") as handle:
            params = json.load(handle)
    except FileNotFoundError as exc:
        raise MemoryPlanError(f"{path}: no params.json in the snapshot") from exc
    except (OSError, ValueError) as exc:
        raise MemoryPlanError(f"{path}: params.json is not readable JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise MemoryPlanError(f"{path}: params.json is a JSON {type(params).__name__}, not an object")

    def positive_int(key):
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return None
        return value

    missing = [key for key in ("n_layers", "n_kv_heads") if positive_int(key) is None]
    head_dim = positive_int("head_dim")
    if head_dim is None:
        # Mistral's convention when head_dim is absent (vLLM 0.30 transformers_utils/configs/mistral.py).
        if positive_int("dim") and positive_int("n_heads"):
            head_dim = params["dim"] // params["n_heads"]
        else:
            missing.append("head_dim (or dim and n_heads)")
    if missing:
        raise MemoryPlanError(
            f"{path}: params.json lacks {', '.join(missing)} as positive integers; the KV cache cannot be sized"
        )
    dtype = params.get("dtype") or DEFAULT_MODEL_DTYPE
    if str(dtype).replace("torch.", "") not in TORCH_DTYPE_BYTES:
        raise MemoryPlanError(f"{path}: params.json dtype {dtype!r}; known: {', '.join(sorted(TORCH_DTYPE_BYTES))}")
    return {
        "n_layers": params["n_layers"],
        "n_kv_heads": params["n_kv_heads"],
        "head_dim": head_dim,
        "dtype": str(dtype).replace("torch.", ""),
        "dtype_bytes": TORCH_DTYPE_BYTES[str(dtype).replace("torch.", "")],
    }


def read_meminfo(path: str) -> dict[str, int]:
    """MemTotal and MemAvailable in bytes (meminfo states kB)."""
    values = {}
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                key, _colon, rest = line.partition(":")
                fields = rest.split()
                if fields and fields[0].isdigit():
                    values[key.strip()] = int(fields[0]) * 1024
    except OSError as exc:
        raise MemoryPlanError(f"{path}: cannot read meminfo: {exc.strerror or exc}") from exc
    missing = [key for key in ("MemTotal", "MemAvailable") if key not in values]
    if missing:
        raise MemoryPlanError(f"{path}: no {' or '.join(missing)} line (MemAvailable needs Linux 3.14 or later)")
    return {"mem_total_bytes": values["MemTotal"], "mem_available_bytes": values["MemAvailable"]}


# ---------------------------------------------------------------------------------------------------
# The model


def stage_weight_bytes(sizes: dict[str, int]) -> dict:
    """Weights each stage loads (by the names vllm-omni 0.30 routes to it) and the absent encoder."""
    total = sum(sizes.values())
    stage1 = sum(n for name, n in sizes.items() if name.startswith(STAGE1_PREFIXES))
    encoder_present = any(name.startswith(ENCODER_PREFIXES) for name in sizes)
    absent_encoder = 0
    if not encoder_present:
        absent_encoder = sum(n for name, n in sizes.items() if name.startswith(ENCODER_MIRROR_PREFIXES))
    return {
        "checkpoint_bytes": total,
        "tensors": len(sizes),
        "absent_encoder_estimate_bytes": absent_encoder,
        0: total + absent_encoder,
        1: stage1 + absent_encoder,
    }


def kv_cache_bytes(kv: dict, max_model_len: int, max_num_seqs: int, block_size: int = DEFAULT_KV_BLOCK_SIZE) -> dict:
    """Stage 0's KV cache for max_num_seqs requests of max_model_len tokens.

    vLLM 0.30 vllm/v1/kv_cache_interface.py: AttentionSpec.state_content_size_bytes is
    (head_size + head_size_v) x dtype size per KV head, i.e. 2 x kv_heads x head_dim x bytes per token and
    layer; FullAttentionSpec.max_memory_usage_bytes rounds a request up to whole blocks.
    """
    per_token = 2 * kv["n_layers"] * kv["n_kv_heads"] * kv["head_dim"] * kv["dtype_bytes"]
    tokens_per_seq = -(-max_model_len // block_size) * block_size
    return {
        "bytes_per_token": per_token,
        "tokens": tokens_per_seq * max_num_seqs,
        "bytes": per_token * tokens_per_seq * max_num_seqs,
    }


def claimed_bytes(total_bytes: int, fraction: float) -> int:
    """What vLLM 0.30 requests for a fraction (request_memory: math.ceil(total x fraction))."""
    return math.ceil(total_bytes * fraction)


def ceil_fraction(needed_bytes: int, total_bytes: int, decimals: int = DEFAULT_FRACTION_DECIMALS) -> float:
    """The smallest fraction with `decimals` digits whose vLLM claim covers needed_bytes."""
    scale = 10**decimals
    steps = max(1, -(-needed_bytes * scale // total_bytes))  # vLLM refuses a fraction of 0
    fraction = round(steps / scale, decimals)
    while claimed_bytes(total_bytes, fraction) < needed_bytes:  # float rounding of total x fraction
        steps += 1
        fraction = round(steps / scale, decimals)
    return fraction


def stage_checks(available_bytes: int, claims: list[int], host_process_bytes: int) -> list[dict]:
    """vLLM's start checks in turn: stage 0 against what is free, stage 1 with stage 0's claim gone too.

    Voxtral's own processes are counted as already there (conservative). A stage after a refused one is
    never reached (the server fails at the first), but its figures are kept for the record.
    """
    free = available_bytes - host_process_bytes
    checks = []
    reached = True
    for stage, claim in enumerate(claims):
        passes = free >= claim
        checks.append(
            {"stage": stage, "free_bytes": free, "requested_bytes": claim, "passes": passes, "reached": reached}
        )
        reached = reached and passes
        free -= claim
    return checks


def gib(value: int) -> float:
    return round(value / GIB, 2)


def plan(
    snapshot_dir: str,
    meminfo_path: str = "/proc/meminfo",
    device_total_bytes: int | None = None,
    max_model_len: int = UPSTREAM_MAX_MODEL_LEN,
    max_num_seqs: int = UPSTREAM_MAX_NUM_SEQS,
    kv_block_size: int = DEFAULT_KV_BLOCK_SIZE,
    kv_cache_dtype_bytes: int | None = None,
    overhead: dict | None = None,
    host_process_bytes: int = DEFAULT_HOST_PROCESS_BYTES,
    margin_bytes: int = DEFAULT_MARGIN_BYTES,
    reclaimable_bytes: int | None = None,
    fraction_decimals: int = DEFAULT_FRACTION_DECIMALS,
    upstream_fractions: tuple[float, float] = UPSTREAM_FRACTIONS,
    stage_fractions: dict | None = None,
    voxtral_held_bytes: int = 0,
) -> dict:
    """Read the snapshot and meminfo, size both stages, decide coexist or pause; every number returned.

    stage_fractions: fractions someone set for some stages ({stage: fraction}); those stages claim what
    their fraction claims (decided with it, whether or not it covers the stage's need), the others get the
    computed fraction. voxtral_held_bytes: what a Voxtral serving now holds (its claims and processes, as its
    own plan recorded them), counted as available, since a re-deploy replaces it in place.
    """
    for label, value in (
        ("max_model_len", max_model_len),
        ("max_num_seqs", max_num_seqs),
        ("kv_block_size", kv_block_size),
    ):
        if value <= 0:
            raise MemoryPlanError(f"{label} is {value}; it must be a positive integer")
    for label, value in (
        ("host_process_bytes", host_process_bytes),
        ("margin_bytes", margin_bytes),
        ("voxtral_held_bytes", voxtral_held_bytes),
    ):
        if value < 0:
            raise MemoryPlanError(f"{label} is {value}; it must be 0 or more")
    fractions_set = set_fractions(stage_fractions)
    if not 1 <= fraction_decimals <= 4:
        # Python writes floats below 1e-4 as 1e-05, which YAML 1.1 (PyYAML) reads back as a string.
        raise MemoryPlanError(f"fraction_decimals is {fraction_decimals}; allowed 1 to 4")
    memory = read_meminfo(meminfo_path)
    total = device_total_bytes if device_total_bytes is not None else memory["mem_total_bytes"]
    if total <= 0:
        raise MemoryPlanError(f"device_total_bytes is {total}; it must be positive")
    available = memory["mem_available_bytes"] + voxtral_held_bytes

    weights = stage_weight_bytes(snapshot_tensor_bytes(snapshot_dir))
    kv_shape = read_params(os.path.join(snapshot_dir, "params.json"))
    if kv_cache_dtype_bytes is not None:
        if kv_cache_dtype_bytes <= 0:
            raise MemoryPlanError(f"kv_cache_dtype_bytes is {kv_cache_dtype_bytes}; it must be positive")
        kv_shape = {**kv_shape, "dtype_bytes": kv_cache_dtype_bytes}
    kv = kv_cache_bytes(kv_shape, max_model_len, max_num_seqs, kv_block_size)

    overheads = {stage: dict(DEFAULT_OVERHEAD[stage]) for stage in (0, 1)}
    for stage, values in (overhead or {}).items():
        for key, value in values.items():
            if key not in overheads[int(stage)]:
                raise MemoryPlanError(f"overhead of stage {stage}: unknown figure {key!r}")
            if value is None:
                continue
            if value < 0:
                raise MemoryPlanError(f"overhead of stage {stage}: {key} is {value}; it must be 0 or more")
            overheads[int(stage)][key] = value

    stages = []
    for stage in (0, 1):
        stage_kv = kv["bytes"] if stage == 0 else 0  # the codec stage has no vLLM attention layer: no KV cache
        stage_overhead = sum(overheads[stage].values())
        needed = weights[stage] + stage_kv + stage_overhead
        computed = ceil_fraction(needed, total, fraction_decimals)
        fraction = fractions_set.get(stage, computed)
        claim = claimed_bytes(total, fraction)
        stages.append(
            {
                "stage": stage,
                "name": STAGE_NAMES[stage],
                "weights_bytes": weights[stage],
                "kv_cache_bytes": stage_kv,
                "overhead_bytes": stage_overhead,
                "overhead": overheads[stage],
                "needed_bytes": needed,
                "fraction": fraction,
                "fraction_source": "set" if stage in fractions_set else "computed",
                "computed_fraction": computed,
                "claim_bytes": claim,
                "covers_need": claim >= needed,
            }
        )
    claims = [s["claim_bytes"] for s in stages]
    too_large = [s for s in stages if s["fraction"] > 1]
    voxtral_bytes = sum(claims) + host_process_bytes
    required = voxtral_bytes + margin_bytes
    checks = stage_checks(available, claims, host_process_bytes)
    coexist = not too_large and available >= required
    upstream_claims = [claimed_bytes(total, f) for f in upstream_fractions]
    upstream_checks = stage_checks(available, upstream_claims, host_process_bytes)
    result = {
        "decision": "coexist" if coexist else "pause",
        "fractions": {str(s["stage"]): s["fraction"] for s in stages},
        "stage_overrides": {str(s["stage"]): {"gpu_memory_utilization": s["fraction"]} for s in stages},
        "device_total_bytes": total,
        "device_total_source": "device_total_bytes" if device_total_bytes is not None else "MemTotal",
        "mem_total_bytes": memory["mem_total_bytes"],
        "mem_available_bytes": memory["mem_available_bytes"],
        "voxtral_held_bytes": voxtral_held_bytes,
        "available_bytes": available,
        "host_process_bytes": host_process_bytes,
        "margin_bytes": margin_bytes,
        "voxtral_bytes": voxtral_bytes,
        "required_bytes": required,
        "spare_bytes": available - required,
        "stages": stages,
        "stage_checks": checks,
        "weights": {
            "checkpoint_bytes": weights["checkpoint_bytes"],
            "tensors": weights["tensors"],
            "absent_encoder_estimate_bytes": weights["absent_encoder_estimate_bytes"],
        },
        "kv_cache": {
            **kv_shape,
            **kv,
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "block_size": kv_block_size,
        },
        "upstream": {
            "fractions": {str(i): f for i, f in enumerate(upstream_fractions)},
            "claim_bytes": upstream_claims,
            "total_claim_bytes": sum(upstream_claims),
            "stage_checks": upstream_checks,
            "starts_now": all(c["passes"] for c in upstream_checks),
        },
        "fits_after_pause": None,
    }
    if reclaimable_bytes is not None:
        result["fits_after_pause"] = not too_large and available + reclaimable_bytes >= required
    result["reason"] = reason(result, too_large)
    result["summary"] = summary_line(result)
    return result


def set_fractions(stage_fractions: dict | None) -> dict[int, float]:
    """{stage: fraction} of the fractions someone set (null entries: computed), each judged."""
    out = {}
    for key, value in (stage_fractions or {}).items():
        try:
            stage = int(key)
        except (TypeError, ValueError):
            stage = None
        if stage not in STAGE_NAMES:
            raise MemoryPlanError(f"stage_fractions: unknown stage {key!r}; stages: 0, 1")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise MemoryPlanError(
                f"stage_fractions: stage {stage} is {value!r}; it must be a fraction above 0, below 1"
            )
        out[stage] = float(value)
    return out


def reason(result: dict, too_large: list[dict]) -> str:
    """Why the decision, naming the figure and the limit."""
    if too_large:
        stage = too_large[0]
        return (
            f"stage {stage['stage']} ({stage['name']}) needs {gib(stage['needed_bytes'])} GiB, more than the "
            f"device's {gib(result['device_total_bytes'])} GiB (fraction {stage['fraction']} > 1)"
        )
    verb = "fits in" if result["decision"] == "coexist" else "exceeds"
    held = ""
    if result["voxtral_held_bytes"]:
        held = f" (with the {gib(result['voxtral_held_bytes'])} GiB the serving Voxtral holds)"
    return (
        f"Voxtral {gib(result['voxtral_bytes'])} GiB + margin {gib(result['margin_bytes'])} GiB = "
        f"{gib(result['required_bytes'])} GiB {verb} the {gib(result['available_bytes'])} GiB available now{held}"
    )


def summary_line(result: dict) -> str:
    """One line for people: decision, per-stage needs and fractions, the room, upstream's defaults."""
    parts = []
    for stage in result["stages"]:
        parts.append(
            f"stage {stage['stage']} {gib(stage['needed_bytes'])} GiB (weights {gib(stage['weights_bytes'])}"
            + (f" + KV {gib(stage['kv_cache_bytes'])}" if stage["kv_cache_bytes"] else "")
            + f" + overhead {gib(stage['overhead_bytes'])}) -> {stage['fraction']}"
            + (
                ""
                if stage["fraction_source"] == "computed"
                else f" (set; claims {gib(stage['claim_bytes'])} GiB"
                + ("" if stage["covers_need"] else ", less than the need")
                + ")"
            )
        )
    upstream = result["upstream"]
    after_pause = ""
    if result["fits_after_pause"] is not None and result["decision"] == "pause":
        after_pause = "; fits once Gemma is paused" if result["fits_after_pause"] else "; does not fit even paused"
    return (
        f"memory plan: {result['decision']}: {result['reason']}{after_pause}; "
        + "; ".join(parts)
        + f" of {gib(result['device_total_bytes'])} GiB; upstream's "
        + " + ".join(str(f) for f in upstream["fractions"].values())
        + f" would claim {gib(upstream['total_claim_bytes'])} GiB"
    )
