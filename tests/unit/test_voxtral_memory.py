"""The Voxtral memory model (plugins/module_utils/voxtral_memory.py) on tiny synthetic snapshots."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils.voxtral_memory import (
    GIB,
    MIB,
    MemoryPlanError,
    ceil_fraction,
    claimed_bytes,
    kv_cache_bytes,
    plan,
    read_meminfo,
    read_params,
    read_safetensors_header,
    snapshot_tensor_bytes,
    stage_checks,
    stage_weight_bytes,
)

# Names as the real checkpoint spells them (vllm-omni 0.30 voxtral_tts load_weights routes by these).
TENSORS = {
    "layers.0.attention.wq.weight": ("BF16", [64, 32]),  # 4096 bytes
    "mm_audio_embeddings.tok_embeddings.weight": ("BF16", [128, 16]),  # 4096
    "acoustic_transformer.layers.0.attention.wq.weight": ("F32", [16, 16]),  # 1024
    "mm_audio_embeddings.audio_codebook_embeddings.embeddings.weight": ("BF16", [32, 16]),  # 1024
    "audio_tokenizer.decoder_blocks.0.layers.0.attention.wq.weight": ("BF16", [16, 32]),  # 1024
    "audio_tokenizer.output_proj.conv.weight": ("F16", [8, 8, 4]),  # 512
    "audio_tokenizer.quantizer.semantic_codebook.embedding_sum": ("F32", [8, 8]),  # 256
}
PARAMS = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "vocab_size": 128}
OFF = {"cuda_context_bytes": 0, "cuda_graph_bytes": 0, "activation_bytes": 0}
NO_OVERHEAD = {0: OFF, 1: OFF}


def safetensors(tensors: dict, metadata: dict | None = None) -> bytes:
    """A valid safetensors file: header with dtype, shape, data_offsets; zero-filled data."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        nbytes = math.prod(shape) * {"BF16": 2, "F16": 2, "F32": 4, "I64": 8, "U8": 1}[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def snapshot(tmp_path: Path, tensors: dict = TENSORS, params: dict | None = PARAMS) -> Path:
    snap = tmp_path / "snapshot"
    snap.mkdir(exist_ok=True)
    (snap / "consolidated.safetensors").write_bytes(safetensors(tensors))
    if params is not None:
        (snap / "params.json").write_text(json.dumps(params))
    return snap


def meminfo(tmp_path: Path, total_kib: int, available_kib: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(
        f"MemTotal:       {total_kib} kB\nMemFree:        1000 kB\nMemAvailable:   {available_kib} kB\n"
        "Cached:         2000 kB\nHugePages_Total:       0\n"
    )
    return path


# --- safetensors headers ---------------------------------------------------------------------------


def test_header_gives_bytes_per_tensor_from_dtype_and_shape(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors(TENSORS))
    sizes = read_safetensors_header(str(path))
    assert sizes["layers.0.attention.wq.weight"] == 64 * 32 * 2
    assert sizes["acoustic_transformer.layers.0.attention.wq.weight"] == 16 * 16 * 4
    assert sizes["audio_tokenizer.output_proj.conv.weight"] == 8 * 8 * 4 * 2
    assert "__metadata__" not in sizes
    assert sum(sizes.values()) == 4096 + 4096 + 1024 + 1024 + 1024 + 512 + 256


def test_header_is_read_without_the_tensor_data(tmp_path):
    # Only the header is on disk in full; a sparse data section stands in for gigabytes of weights.
    raw = json.dumps({"big": {"dtype": "BF16", "shape": [1024, 1024, 1024], "data_offsets": [0, 2 * GIB]}}).encode()
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + 2 * GIB)
    assert read_safetensors_header(str(path)) == {"big": 2 * GIB}


def test_fixture_weights_header_has_no_tensors(tmp_path):
    # tests/fixtures/make_weights.py writes a valid, empty header: zero bytes, not an error.
    path = tmp_path / "empty.safetensors"
    raw = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert read_safetensors_header(str(path)) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x02", "corrupt safetensors header: file is 2 bytes, shorter than 8"),
        (struct.pack("<Q", 4096) + b"{}", "header length 4096 bytes does not fit the 10-byte file"),
        (struct.pack("<Q", 8) + b"not json", "corrupt safetensors header: not JSON"),
        (struct.pack("<Q", 2) + b"[]", "corrupt safetensors header: a JSON list, not an object"),
    ],
)
def test_corrupt_header_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "consolidated.safetensors"
    path.write_bytes(content)
    with pytest.raises(MemoryPlanError, match=r"consolidated\.safetensors: ") as error:
        read_safetensors_header(str(path))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": "BF16"}, "tensor 't' has no shape list"),
        ({"dtype": "Q4_K", "shape": [2]}, "tensor 't' has dtype 'Q4_K'; known: BF16"),
        ({"dtype": "BF16", "shape": [2, -1]}, "tensor 't' has shape [2, -1]"),
        ({"dtype": "BF16", "shape": [4], "data_offsets": [0, 6]}, "(BF16 [4], 8 bytes) has data_offsets [0, 6]"),
        ({"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}, "data_offsets [0, 8] (data section 0 bytes)"),
    ],
)
def test_corrupt_tensor_entry_is_refused(tmp_path, entry, message):
    raw = json.dumps({"t": entry}).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(MemoryPlanError) as error:
        read_safetensors_header(str(path))
    assert message in str(error.value)


def test_missing_snapshot_and_missing_weights(tmp_path):
    with pytest.raises(MemoryPlanError, match="no such snapshot directory"):
        snapshot_tensor_bytes(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MemoryPlanError, match=r"no \*\.safetensors file \(expected consolidated\.safetensors\)"):
        snapshot_tensor_bytes(str(tmp_path / "empty"))


def test_shards_are_summed_and_a_tensor_in_two_shards_is_refused(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(safetensors({"a": ("BF16", [4])}))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(safetensors({"b": ("F32", [4])}))
    assert snapshot_tensor_bytes(str(tmp_path)) == {"a": 8, "b": 16}
    (tmp_path / "model-00003-of-00002.safetensors").write_bytes(safetensors({"a": ("BF16", [4])}))
    with pytest.raises(MemoryPlanError, match="tensor 'a' is also in another shard"):
        snapshot_tensor_bytes(str(tmp_path))


# --- weights per stage ---------------------------------------------------------------------------


def test_stage_weights_follow_vllm_omni_routing_and_count_the_absent_encoder():
    sizes = {name: math.prod(shape) * (4 if dtype == "F32" else 2) for name, (dtype, shape) in TENSORS.items()}
    weights = stage_weight_bytes(sizes)
    # The public checkpoint has no codec encoder: estimated as its mirror (decoder_blocks + output_proj).
    assert weights["absent_encoder_estimate_bytes"] == 1024 + 512
    assert weights[0] == sum(sizes.values()) + 1536  # stage 0 loads everything, its own codec included
    assert weights[1] == 1024 + 1024 + 512 + 256 + 1536  # audio_tokenizer.* and the codebook embeddings


def test_encoder_in_the_checkpoint_is_not_estimated_twice():
    sizes = {"audio_tokenizer.encoder_blocks.0.w": 100, "audio_tokenizer.decoder_blocks.0.w": 100, "layers.0": 10}
    weights = stage_weight_bytes(sizes)
    assert weights["absent_encoder_estimate_bytes"] == 0
    assert (weights[0], weights[1]) == (210, 200)


# --- params.json and the KV cache ------------------------------------------------------------------


def test_kv_cache_is_vllms_formula_in_whole_blocks(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PARAMS))
    kv = read_params(str(path))
    assert kv == {"n_layers": 2, "n_kv_heads": 2, "head_dim": 16, "dtype": "bfloat16", "dtype_bytes": 2}
    result = kv_cache_bytes(kv, max_model_len=100, max_num_seqs=3, block_size=16)
    assert result["bytes_per_token"] == 2 * 2 * 2 * 16 * 2
    assert result["tokens"] == 112 * 3  # 100 tokens take 7 blocks of 16
    assert result["bytes"] == 256 * 112 * 3


def test_real_voxtral_shape_gives_104_kib_per_token():
    # mistralai/Voxtral-4B-TTS-2603 backbone: 26 layers, 8 KV heads, head_dim 128, BF16 (benchmarks/).
    kv = {"n_layers": 26, "n_kv_heads": 8, "head_dim": 128, "dtype_bytes": 2}
    result = kv_cache_bytes(kv, 4096, 32)
    assert result["bytes_per_token"] == 104 * 1024
    assert result["bytes"] == 13 * GIB


def test_head_dim_from_dim_and_heads_and_dtype_from_params(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"n_layers": 2, "n_kv_heads": 2, "dim": 64, "n_heads": 8, "dtype": "float32"}))
    assert read_params(str(path)) == {
        "n_layers": 2, "n_kv_heads": 2, "head_dim": 8, "dtype": "float32", "dtype_bytes": 4,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dim": 64}, "params.json lacks n_layers, n_kv_heads, head_dim (or dim and n_heads) as positive integers"),
        ({"n_layers": 2, "n_kv_heads": 0, "head_dim": 16}, "params.json lacks n_kv_heads as positive integers"),
        ({"n_layers": "2", "n_kv_heads": 2, "head_dim": 16}, "params.json lacks n_layers as positive"),
        ({"n_layers": 2, "n_kv_heads": 2, "head_dim": 16, "dtype": "int4"}, "params.json dtype 'int4'; known:"),
        ([1, 2], "params.json is a JSON list, not an object"),
    ],
)
def test_params_without_the_fields_is_refused(tmp_path, params, message):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    with pytest.raises(MemoryPlanError) as error:
        read_params(str(path))
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_params_missing_or_not_json(tmp_path):
    with pytest.raises(MemoryPlanError, match=r"no params\.json in the snapshot"):
        read_params(str(tmp_path / "params.json"))
    (tmp_path / "params.json").write_text("{")
    with pytest.raises(MemoryPlanError, match=r"params\.json is not readable JSON"):
        read_params(str(tmp_path / "params.json"))


# --- meminfo -------------------------------------------------------------------------------------


def test_meminfo_in_bytes(tmp_path):
    assert read_meminfo(str(meminfo(tmp_path, 127_601_640, 60_000_000))) == {
        "mem_total_bytes": 127_601_640 * 1024,
        "mem_available_bytes": 60_000_000 * 1024,
    }


def test_meminfo_without_memavailable(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal: 1000 kB\nMemFree: 10 kB\n")
    with pytest.raises(MemoryPlanError, match=r"meminfo: no MemAvailable line \(MemAvailable needs Linux 3.14"):
        read_meminfo(str(path))
    with pytest.raises(MemoryPlanError, match="cannot read meminfo"):
        read_meminfo(str(tmp_path / "absent"))


# --- fractions -----------------------------------------------------------------------------------


def test_fraction_is_ceil_safe_for_vllms_claim():
    total = 130_668_036_096  # a GB10's cudaMemGetInfo total, about 121.7 GiB
    for needed in (1, 10 * GIB, 24 * GIB + 12345, total // 3, total):
        fraction = ceil_fraction(needed, total)
        assert claimed_bytes(total, fraction) >= needed
        assert claimed_bytes(total, round(fraction - 0.001, 3)) < needed or fraction == 0.001


def test_fraction_rounds_up_even_by_one_byte():
    total = 1000 * GIB
    assert ceil_fraction(10 * GIB, total) == 0.01  # exact
    assert ceil_fraction(10 * GIB + 1, total) == 0.011  # one byte more: the next step
    assert ceil_fraction(0, total) == 0.001  # never 0: vLLM refuses it
    assert ceil_fraction(10 * GIB + 1, total, decimals=4) == 0.0101


def test_claim_is_vllms_ceil():
    assert claimed_bytes(1000, 0.1234) == 124
    assert claimed_bytes(130_668_036_096, 0.8) == math.ceil(130_668_036_096 * 0.8)


# --- the plan ------------------------------------------------------------------------------------


def stage_needs(snap: Path) -> tuple[int, int]:
    weights = stage_weight_bytes(snapshot_tensor_bytes(str(snap)))
    kv = kv_cache_bytes(read_params(str(snap / "params.json")), 64, 2)["bytes"]
    return weights[0] + kv, weights[1]


def test_plan_fit_and_no_fit_boundary(tmp_path):
    snap = snapshot(tmp_path)
    total = 100 * MIB
    need0, need1 = stage_needs(snap)
    claim0 = claimed_bytes(total, ceil_fraction(need0, total))
    claim1 = claimed_bytes(total, ceil_fraction(need1, total))
    host, margin = 1 * MIB, 2 * MIB
    required = claim0 + claim1 + host + margin
    common = {
        "device_total_bytes": total, "max_model_len": 64, "max_num_seqs": 2, "overhead": NO_OVERHEAD,
        "host_process_bytes": host, "margin_bytes": margin,
    }  # fmt: skip
    # meminfo is in kB: put MemAvailable exactly on the boundary (rounded up to a kB) and one kB below.
    at_kib = -(-required // 1024)
    fits = plan(str(snap), str(meminfo(tmp_path, 200_000, at_kib)), **common)
    assert fits["decision"] == "coexist"
    assert fits["required_bytes"] == required
    assert fits["spare_bytes"] == at_kib * 1024 - required >= 0
    assert all(check["passes"] for check in fits["stage_checks"])
    short = plan(str(snap), str(meminfo(tmp_path, 200_000, at_kib - 1)), **common)
    assert short["decision"] == "pause"
    assert short["spare_bytes"] < 0
    assert "exceeds the" in short["reason"]
    assert short["fractions"] == fits["fractions"]  # pause still starts Voxtral with what it needs


def test_plan_numbers_and_overrides(tmp_path):
    snap = snapshot(tmp_path)
    total = 100 * MIB
    result = plan(
        str(snap), str(meminfo(tmp_path, 200_000, 150_000)), device_total_bytes=total, max_model_len=64,
        max_num_seqs=2, host_process_bytes=0, margin_bytes=0,
        overhead={0: {"cuda_context_bytes": MIB, "cuda_graph_bytes": 2 * MIB, "activation_bytes": 3 * MIB},
                  1: {"cuda_context_bytes": MIB, "activation_bytes": None}},
    )  # fmt: skip
    stage0, stage1 = result["stages"]
    need0, need1 = stage_needs(snap)
    assert stage0["kv_cache_bytes"] == 256 * 64 * 2
    assert stage0["needed_bytes"] == need0 + 6 * MIB
    assert stage1["kv_cache_bytes"] == 0  # the codec stage has no paged attention
    assert stage1["overhead"] == {"cuda_context_bytes": MIB, "cuda_graph_bytes": 0, "activation_bytes": GIB}
    assert stage1["needed_bytes"] == need1 + MIB + GIB
    assert result["stage_overrides"] == {
        "0": {"gpu_memory_utilization": stage0["fraction"]},
        "1": {"gpu_memory_utilization": stage1["fraction"]},
    }
    assert stage0["claim_bytes"] == math.ceil(total * stage0["fraction"]) >= stage0["needed_bytes"]
    # Stage 1's overhead (1 GiB) exceeds the 100 MiB device: refused by the fraction, not by the room.
    assert stage1["fraction"] > 1
    assert result["decision"] == "pause"
    assert "stage 1 (audio_tokenizer) needs 1.0 GiB, more than the device's 0.1 GiB" in result["reason"]


def test_stage_checks_are_in_turn(tmp_path):
    snap = snapshot(tmp_path)
    total = 100 * MIB
    result = plan(
        str(snap), str(meminfo(tmp_path, 200_000, 90 * 1024)), device_total_bytes=total, max_model_len=64,
        max_num_seqs=2, overhead=NO_OVERHEAD, host_process_bytes=5 * MIB, margin_bytes=0,
    )  # fmt: skip
    first, second = result["upstream"]["stage_checks"]
    assert first == {"stage": 0, "free_bytes": 85 * MIB, "requested_bytes": 80 * MIB, "passes": True, "reached": True}
    assert second == {
        "stage": 1, "free_bytes": 5 * MIB, "requested_bytes": 10 * MIB, "passes": False, "reached": True,
    }  # fmt: skip
    assert result["upstream"]["starts_now"] is False
    assert result["upstream"]["total_claim_bytes"] == 90 * MIB


def test_a_stage_after_a_refused_one_is_not_reached():
    checks = stage_checks(50, [60, 10], host_process_bytes=0)
    assert [(c["passes"], c["reached"]) for c in checks] == [(False, True), (False, False)]
    checks = stage_checks(100, [60, 10], host_process_bytes=20)
    assert [(c["free_bytes"], c["passes"], c["reached"]) for c in checks] == [(80, True, True), (20, True, True)]


def test_device_total_defaults_to_memtotal(tmp_path):
    snap = snapshot(tmp_path)
    result = plan(str(snap), str(meminfo(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024)))
    assert result["device_total_bytes"] == 4 * GIB
    assert result["device_total_source"] == "MemTotal"
    assert result["upstream"]["claim_bytes"] == [math.ceil(4 * GIB * 0.8), math.ceil(4 * GIB * 0.1)]


def test_fits_after_pause(tmp_path):
    snap = snapshot(tmp_path)
    common = {"device_total_bytes": 100 * MIB, "overhead": NO_OVERHEAD, "host_process_bytes": 0}
    path = str(meminfo(tmp_path, 200_000, 1024))
    result = plan(str(snap), path, margin_bytes=4 * MIB, reclaimable_bytes=20 * MIB, max_num_seqs=1, **common)
    assert (result["decision"], result["fits_after_pause"]) == ("pause", True)
    assert "available now; fits once Gemma is paused; stage 0" in result["summary"]
    result = plan(str(snap), path, margin_bytes=40 * MIB, reclaimable_bytes=20 * MIB, max_num_seqs=1, **common)
    assert (result["decision"], result["fits_after_pause"]) == ("pause", False)
    assert "; does not fit even paused;" in result["summary"]
    assert plan(str(snap), path, **common)["fits_after_pause"] is None


def test_summary_line_names_every_figure(tmp_path):
    snap = snapshot(tmp_path)
    result = plan(
        str(snap), str(meminfo(tmp_path, 127_601_640, 60 * 1024 * 1024)), device_total_bytes=130_668_036_096,
    )  # fmt: skip
    line = result["summary"]
    assert "\n" not in line
    assert line.startswith("memory plan: coexist: Voxtral ")
    assert "fits in the 60.0 GiB available now" in line
    assert "stage 0 " in line and "+ KV " in line and "stage 1 " in line
    assert "of 121.69 GiB; upstream's 0.8 + 0.1 would claim 109.52 GiB" in line


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_model_len", 0, "max_model_len is 0; it must be a positive integer"),
        ("margin_bytes", -1, "margin_bytes is -1; it must be 0 or more"),
        ("device_total_bytes", 0, "device_total_bytes is 0; it must be positive"),
        ("fraction_decimals", 5, "fraction_decimals is 5; allowed 1 to 4"),
        ("kv_cache_dtype_bytes", 0, "kv_cache_dtype_bytes is 0; it must be positive"),
        ("overhead", {0: {"activation_bytes": -5}}, "overhead of stage 0: activation_bytes is -5"),
        ("overhead", {1: {"tea_bytes": 5}}, "overhead of stage 1: unknown figure 'tea_bytes'"),
    ],
)
def test_bad_options_name_the_figure(tmp_path, option, value, message):
    snap = snapshot(tmp_path)
    with pytest.raises(MemoryPlanError) as error:
        plan(str(snap), str(meminfo(tmp_path, 1000, 500)), **{option: value})
    assert message in str(error.value)


def test_plan_without_params_fields_names_the_file(tmp_path):
    snap = snapshot(tmp_path, params={"dim": 64})
    with pytest.raises(MemoryPlanError, match=r"snapshot/params\.json: params\.json lacks n_layers"):
        plan(str(snap), str(meminfo(tmp_path, 1000, 500)))


def test_set_fractions_are_used_as_they_are_and_judged_against_the_need(tmp_path):
    snap = snapshot(tmp_path)
    total = 100 * MIB
    common = {
        "device_total_bytes": total, "max_model_len": 64, "max_num_seqs": 2, "overhead": NO_OVERHEAD,
        "host_process_bytes": 0, "margin_bytes": 0,
    }  # fmt: skip
    path = str(meminfo(tmp_path, 200_000, 50 * 1024))
    computed = plan(str(snap), path, **common)
    result = plan(str(snap), path, stage_fractions={"0": 0.3, "1": None}, **common)
    stage0, stage1 = result["stages"]
    assert (stage0["fraction"], stage0["fraction_source"], stage0["covers_need"]) == (0.3, "set", True)
    assert stage0["computed_fraction"] == computed["fractions"]["0"]
    assert stage0["claim_bytes"] == math.ceil(total * 0.3)
    assert (stage1["fraction"], stage1["fraction_source"]) == (computed["fractions"]["1"], "computed")
    # 30 MiB + stage 1's claim fit in 50 MiB; 0.6 of 100 MiB does not, though the computed fractions would.
    assert result["decision"] == "coexist"
    too_big = plan(str(snap), path, stage_fractions={0: 0.6}, **common)
    assert (computed["decision"], too_big["decision"]) == ("coexist", "pause")
    assert "-> 0.6 (set; claims 0.06 GiB)" in too_big["summary"]
    tiny = plan(str(snap), path, stage_fractions={"0": 0.0001}, **common)
    assert tiny["stages"][0]["covers_need"] is False
    assert "(set; claims 0.0 GiB, less than the need)" in tiny["summary"]


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"2": 0.1}, "stage_fractions: unknown stage '2'"),
        ({"0": 1.0}, "stage_fractions: stage 0 is 1.0; it must be a fraction above 0, below 1"),
        ({"1": 0}, "stage_fractions: stage 1 is 0"),
        ({"0": True}, "stage_fractions: stage 0 is True"),
    ],
)
def test_bad_set_fractions_are_refused(tmp_path, fractions, message):
    snap = snapshot(tmp_path)
    with pytest.raises(MemoryPlanError) as error:
        plan(str(snap), str(meminfo(tmp_path, 1000, 500)), stage_fractions=fractions)
    assert message in str(error.value)


def test_the_serving_voxtrals_memory_counts_as_available(tmp_path):
    snap = snapshot(tmp_path)
    common = {"device_total_bytes": 100 * MIB, "overhead": NO_OVERHEAD, "host_process_bytes": 0, "margin_bytes": 0}
    path = str(meminfo(tmp_path, 200_000, 1024))
    alone = plan(str(snap), path, max_num_seqs=1, **common)
    assert alone["decision"] == "pause"
    held = plan(str(snap), path, max_num_seqs=1, voxtral_held_bytes=alone["voxtral_bytes"], **common)
    assert held["decision"] == "coexist"
    assert (held["mem_available_bytes"], held["voxtral_held_bytes"]) == (MIB, alone["voxtral_bytes"])
    assert held["available_bytes"] == MIB + alone["voxtral_bytes"]
    assert "(with the " in held["reason"] and "GiB the serving Voxtral holds)" in held["reason"]
    with pytest.raises(MemoryPlanError, match="voxtral_held_bytes is -1; it must be 0 or more"):
        plan(str(snap), path, voxtral_held_bytes=-1, **common)
