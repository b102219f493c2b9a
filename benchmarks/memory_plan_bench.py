#!/usr/bin/env python3
"""Voxtral's memory plan in figures (printed, never asserted): a real GB10 and the simulated Spark.

    source scripts/env.sh && python benchmarks/memory_plan_bench.py

(a) the public checkpoint mistralai/Voxtral-4B-TTS-2603 on a GB10, for a sweep of what Gemma leaves
    available. The 8 GB of weights cannot be downloaded here, so the tensor table is derived from the
    architecture (each figure's source beside it in ARCHITECTURE) and written as a real safetensors header
    over a sparse data section: plugins/module_utils/voxtral_memory.py reads it as it reads the real file.
(b) the simulated Spark's fixture snapshot (tests/fixtures/make_weights.py) against this machine's
    /proc/meminfo (the simulated Spark's container sees the same figures).
"""

from __future__ import annotations

import json
import math
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))  # the checkout as voxtral.deploy (scripts/setup.sh)
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from ansible_collections.voxtral.deploy.plugins.module_utils.voxtral_memory import GIB, plan  # noqa: E402
from make_weights import make_snapshot  # noqa: E402

# A GB10's device total as vLLM sees it (cudaMemGetInfo): about 121.7 GiB (/work/shared/docs/UPSTREAM.md).
GB10_TOTAL_BYTES = int(121.7 * GIB)

# Voxtral-4B-TTS-2603's shapes. Sources: [mlx] Blaizzy/mlx-audio mlx_audio/tts/models/voxtral_tts/voxtral_tts.py
# ModelConfig defaults, which its PR #607 (merged 2026-03-27) describes as read from the checkpoint's
# params.json ("26 layers, 3072 dim, GQA 32/8 heads"; acoustic transformer ~390M, codec decoder ~200M);
# [omni] vllm-omni 0.30.0 models/voxtral_tts/ (AudioTokenizerArgs defaults, module shapes).
ARCHITECTURE = {
    "dim": 3072,  # [mlx] dim
    "n_layers": 26,  # [mlx] n_layers
    "n_heads": 32,  # [mlx] n_heads
    "n_kv_heads": 8,  # [mlx] n_kv_heads
    "head_dim": 128,  # [mlx] head_dim
    "hidden_dim": 9216,  # [mlx] hidden_dim
    "vocab_size": 131072,  # [mlx] vocab_size; tied_embeddings true: no separate output matrix
    "acoustic_layers": 3,  # [mlx] acoustic_n_layers, same dim/hidden/heads as the backbone
    "n_acoustic_codebook": 36,  # [mlx] n_acoustic_codebook
    "semantic_output_padded": 8320,  # [mlx] 8192 semantic codes + specials padded to 128 (get_codebook_sizes)
    "audio_codebook_embeddings": 9088,  # [mlx] semantic 8320 + acoustic 36 x 21 padded to 768
    "codec_dim": 1024,  # [omni] AudioTokenizerArgs.dim (mlx tokenizer_dim agrees)
    "codec_hidden_dim": 4096,  # [omni] AudioTokenizerArgs.hidden_dim
    "codec_decoder_layers": (2, 2, 2, 2),  # [omni] decoder_transformer_lengths_str
    "codec_decoder_kernels": (3, 4, 4, 4),  # [omni] decoder_convs_kernels_str
    "codec_latent_dim": 256 + 36,  # [omni] semantic_dim + acoustic_dim
    "codec_patch": 240,  # [omni] pretransform_patch_size
    "codec_patch_kernel": 7,  # [omni] patch_proj_kernel_size
    "semantic_codebook": (8192, 256),  # [omni] semantic_codebook_size, semantic_dim
}


def transformer_layer(prefix: str, dim: int, heads: int, kv_heads: int, head_dim: int, hidden: int) -> dict:
    return {
        prefix + "attention.wq.weight": [heads * head_dim, dim],
        prefix + "attention.wk.weight": [kv_heads * head_dim, dim],
        prefix + "attention.wv.weight": [kv_heads * head_dim, dim],
        prefix + "attention.wo.weight": [dim, heads * head_dim],
        prefix + "feed_forward.w1.weight": [hidden, dim],
        prefix + "feed_forward.w2.weight": [dim, hidden],
        prefix + "feed_forward.w3.weight": [hidden, dim],
        prefix + "attention_norm.weight": [dim],
        prefix + "ffn_norm.weight": [dim],
    }


def public_checkpoint_tensors() -> dict[str, list[int]]:
    """An estimate of consolidated.safetensors: the real names and prefixes, shapes from ARCHITECTURE."""
    a = ARCHITECTURE
    d, hd = a["dim"], a["head_dim"]
    tensors = {"mm_audio_embeddings.tok_embeddings.weight": [a["vocab_size"], d], "norm.weight": [d]}
    for layer in range(a["n_layers"]):
        tensors.update(transformer_layer(f"layers.{layer}.", d, a["n_heads"], a["n_kv_heads"], hd, a["hidden_dim"]))
    for layer in range(a["acoustic_layers"]):
        tensors.update(
            transformer_layer(
                f"acoustic_transformer.layers.{layer}.", d, a["n_heads"], a["n_kv_heads"], hd, a["hidden_dim"]
            )
        )
    tensors.update(
        {
            "acoustic_transformer.input_projection.weight": [d, a["n_acoustic_codebook"]],
            "acoustic_transformer.time_projection.weight": [d, d],
            "acoustic_transformer.llm_projection.weight": [d, d],
            "acoustic_transformer.semantic_codebook_output.weight": [a["semantic_output_padded"], d],
            "acoustic_transformer.acoustic_codebook_output.weight": [a["n_acoustic_codebook"], d],
            "acoustic_transformer.norm.weight": [d],
            "mm_audio_embeddings.audio_codebook_embeddings.embeddings.weight": [a["audio_codebook_embeddings"], d],
        }
    )
    cd, ch = a["codec_dim"], a["codec_hidden_dim"]
    block = 0
    tensors[f"audio_tokenizer.decoder_blocks.{block}.conv.weight"] = [cd, a["codec_latent_dim"], 3]
    for stage, n_layers in enumerate(a["codec_decoder_layers"]):
        block += 1
        for layer in range(n_layers):
            prefix = f"audio_tokenizer.decoder_blocks.{block}.layers.{layer}."
            tensors.update(transformer_layer(prefix, cd, 8, 8, 128, ch))
        if stage + 1 < len(a["codec_decoder_layers"]):
            block += 1  # the upsampling transposed convolution between transformer stages
            tensors[f"audio_tokenizer.decoder_blocks.{block}.conv.weight"] = [
                cd, cd, a["codec_decoder_kernels"][stage + 1],
            ]  # fmt: skip
    tensors["audio_tokenizer.output_proj.conv.weight"] = [a["codec_patch"], cd, a["codec_patch_kernel"]]
    codes, code_dim = a["semantic_codebook"]
    tensors["audio_tokenizer.quantizer.semantic_codebook.embedding_sum"] = [codes, code_dim]
    tensors["audio_tokenizer.quantizer.semantic_codebook.cluster_usage"] = [codes]
    return tensors


def write_checkpoint(directory: Path, tensors: dict[str, list[int]]) -> None:
    """A real safetensors header (BF16) over a sparse data section: nothing but the header is written."""
    header, offset = {"__metadata__": {"format": "pt", "estimate": "memory_plan_bench"}}, 0
    for name, shape in tensors.items():
        nbytes = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(directory / "consolidated.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    params = {k: ARCHITECTURE[k] for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim")}
    (directory / "params.json").write_text(json.dumps({**params, "model_type": "voxtral_tts"}))


def meminfo(directory: Path, total_bytes: int, available_bytes: int) -> str:
    path = directory / f"meminfo-{available_bytes}"
    path.write_text(f"MemTotal: {total_bytes // 1024} kB\nMemAvailable: {available_bytes // 1024} kB\n")
    return str(path)


def g(value: int) -> str:
    return f"{value / GIB:7.2f}"


def print_stages(result: dict) -> None:
    print(f"  {'stage':<22}{'weights':>9}{'KV cache':>10}{'overhead':>10}{'needed':>9}{'fraction':>10}{'claim':>9}")
    for s in result["stages"]:
        name = f"{s['stage']} {s['name']}"
        print(
            f"  {name:<22}{g(s['weights_bytes']):>9}{g(s['kv_cache_bytes']):>10}{g(s['overhead_bytes']):>10}"
            f"{g(s['needed_bytes']):>9}{s['fraction']:>10}{g(s['claim_bytes']):>9}"
        )
    w, kv = result["weights"], result["kv_cache"]
    print(
        f"  checkpoint {g(w['checkpoint_bytes']).strip()} GiB in {w['tensors']} tensors; absent codec encoder "
        f"(allocated anyway) {g(w['absent_encoder_estimate_bytes']).strip()} GiB in both stages"
    )
    print(
        f"  KV: 2 x {kv['n_layers']} layers x {kv['n_kv_heads']} KV heads x {kv['head_dim']} x {kv['dtype_bytes']} B "
        f"= {kv['bytes_per_token']} B/token x {kv['max_model_len']} x {kv['max_num_seqs']} seqs"
    )
    print(
        f"  Voxtral holds {g(result['voxtral_bytes']).strip()} GiB (claims + {g(result['host_process_bytes']).strip()}"
        f" GiB host processes); with the {g(result['margin_bytes']).strip()} GiB margin it needs "
        f"{g(result['required_bytes']).strip()} GiB available"
    )


def gb10(work: Path) -> None:
    snapshot = work / "public"
    snapshot.mkdir()
    tensors = public_checkpoint_tensors()
    write_checkpoint(snapshot, tensors)
    params = sum(math.prod(shape) for shape in tensors.values())
    print(f"(a) mistralai/Voxtral-4B-TTS-2603 on a GB10 ({g(GB10_TOTAL_BYTES).strip()} GiB device total)")
    print(f"  tensor table: an estimate from the architecture, {params / 1e9:.2f} B parameters, BF16")
    sweep = [20, 30, 38, 39, 40, 60, 80, 100, 115]
    first = None
    rows = []
    for available_gib in sweep:
        result = plan(str(snapshot), meminfo(work, GB10_TOTAL_BYTES, available_gib * GIB), GB10_TOTAL_BYTES)
        first = first or result
        rows.append((available_gib, result))
    print_stages(first)
    up = first["upstream"]
    print(
        f"  upstream's {up['fractions']['0']} + {up['fractions']['1']} would claim "
        f"{g(up['total_claim_bytes']).strip()} GiB ({g(up['claim_bytes'][0]).strip()} + "
        f"{g(up['claim_bytes'][1]).strip()})"
    )
    print(f"  {'available':>10}  {'decision':<8}  {'spare':>8}  upstream's 0.8 + 0.1: stage 0 free / requested")
    for available_gib, result in rows:
        check = result["upstream"]["stage_checks"][0]
        starts = "starts" if result["upstream"]["starts_now"] else "refused"
        print(
            f"  {available_gib:>6} GiB  {result['decision']:<8}  {g(result['spare_bytes']):>8}  "
            f"{g(check['free_bytes'])} / {g(check['requested_bytes']).strip()} GiB: {starts}"
        )
    print("  one line, at 60 GiB available:")
    print("  " + rows[sweep.index(60)][1]["summary"])
    print("  stage 0 by max_num_seqs (max_model_len 4096), at 60 GiB available:")
    for seqs in (32, 16, 8, 4):
        result = plan(str(snapshot), meminfo(work, GB10_TOTAL_BYTES, 60 * GIB), GB10_TOTAL_BYTES, max_num_seqs=seqs)
        stage = result["stages"][0]
        print(
            f"    {seqs:>2} seqs: KV {g(stage['kv_cache_bytes']).strip()} GiB, needed "
            f"{g(stage['needed_bytes']).strip()} GiB, fraction {stage['fraction']}; Voxtral needs "
            f"{g(result['required_bytes']).strip()} GiB available with the margin"
        )


def simulated_spark(work: Path) -> None:
    snapshot = make_snapshot(work / "hf")
    result = plan(str(snapshot), "/proc/meminfo")
    print()
    print("(b) the simulated Spark's fixture snapshot against this machine's /proc/meminfo (default overheads)")
    print_stages(result)
    print("  " + result["summary"])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="memory-plan-bench-") as tmp:
        work = Path(tmp)
        gb10(work)
        simulated_spark(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
