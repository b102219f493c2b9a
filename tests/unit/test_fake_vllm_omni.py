"""The fake `vllm-omni` (tests/fixtures/fake_vllm_omni/cli.py) behaves like the real CLI where it matters."""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import (
    check,
    measure,
    samples_from_pcm,
    samples_from_wav,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tests" / "fixtures" / "fake_vllm_omni" / "cli.py"
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

from make_weights import make_snapshot  # noqa: E402

ACOUSTIC = "There is no module or parameter named 'acoustic_transformer' in MistralForCausalLM"
ENCODER = "encode_waveforms requires encoder weights which are not available in the open-source checkpoint."
SERVED = "mistralai/Voxtral-4B-TTS-2603"

DEPLOY_CONFIG = """\
async_chunk: true
stages:
  - stage_id: 0
    gpu_memory_utilization: 0.3
    max_model_len: 2048
    max_num_seqs: 8
  - stage_id: 1
    gpu_memory_utilization: 0.05
    max_model_len: 65536
"""
STAGE_CONFIG = """\
async_chunk: true
stage_args:
  - stage_id: 0
    engine_args:
      gpu_memory_utilization: 0.8
      max_model_len: 4096
  - stage_id: 1
    engine_args:
      gpu_memory_utilization: 0.1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Env:
    """A weights snapshot, config files and a behaviour file in a temporary directory."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.snapshot = make_snapshot(tmp_path / "hf")
        self.deploy = tmp_path / "deploy.yaml"
        self.deploy.write_text(DEPLOY_CONFIG)
        self.stage = tmp_path / "stage.yaml"
        self.stage.write_text(STAGE_CONFIG)
        self.behaviour_file = tmp_path / "behaviour.json"
        self.procs: list[subprocess.Popen] = []

    def behaviour(self, **knobs) -> None:
        self.behaviour_file.write_text(json.dumps(knobs))

    def env(self, version: str, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("VLLM_API_KEY", "HF_HUB_OFFLINE")}
        env.update(
            VLLM_OMNI_FAKE_VERSION=version,
            FAKE_VLLM_OMNI_BEHAVIOUR=str(self.behaviour_file),
            HF_HUB_OFFLINE="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env

    def run(self, version: str, *args: str, **extra) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(CLI), *args],
            env=self.env(version, **extra),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def serve_args(self, version: str, *extra: str) -> list[str]:
        flag, config = ("--stage-configs-path", self.stage) if version < "0.20" else ("--deploy-config", self.deploy)
        return [
            "serve",
            str(self.snapshot),
            "--omni",
            "--tokenizer-mode",
            "mistral",
            flag,
            str(config),
            *extra,
        ]

    def start(self, version: str, *extra: str, wait_healthy: bool = True, env: dict | None = None) -> int:
        port = free_port()
        args = [*self.serve_args(version), "--host", "127.0.0.1", "--port", str(port), *extra]
        proc = subprocess.Popen(
            [sys.executable, str(CLI), *args],
            env=self.env(version, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                status, _, _ = request(port, "GET", "/health")
            except OSError:
                time.sleep(0.05)
                continue
            if status == 200 or not wait_healthy:
                return port
            time.sleep(0.05)
        raise AssertionError("fake vllm-omni did not become healthy")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()


@pytest.fixture
def env(tmp_path):
    environment = Env(tmp_path)
    yield environment
    environment.stop_all()


def request(port: int, method: str, path: str, body=None, headers=None, timeout: float = 10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if payload else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=payload, headers=hdrs)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def speech_body(**overrides) -> dict:
    body = {"model": SERVED, "input": "Hello from the fake Voxtral.", "voice": "neutral_female"}
    body.update(overrides)
    return body


def expected_samples(text: str, speed: float = 1.0) -> int:
    return round(max(0.5, len(text) * 0.06) / speed * 24000)


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.18.0", "0.30.0"])
def test_only_serve_omni_help_lists_omni(env, version):
    # Real 0.18.0 and 0.30.0: the top-level help is vLLM's (tests/unit/test_fake_conformance.py).
    assert "--omni" not in env.run(version, "--help").stdout
    result = env.run(version, "serve", "--omni", "--help=all")
    assert result.returncode == 0
    assert "--omni" in result.stdout


def test_version_flag(env):
    assert env.run("0.26.1", "--version").stdout.strip() == "0.26.1"


@pytest.mark.parametrize("version", ["0.18.0", "0.26.0", "0.30.0"])
def test_serve_without_omni_refuses_the_omni_flags_like_plain_vllm(env, version):
    args = [a for a in env.serve_args(version, "--init-timeout", "600") if a != "--omni"]
    result = env.run(version, *args)
    assert result.returncode == 2
    assert "vllm-omni: error: unrecognized arguments: --" in result.stderr
    assert result.stderr.rstrip().endswith("--init-timeout 600")


@pytest.mark.parametrize("version", ["0.18.0", "0.30.0"])
def test_serve_without_omni_and_only_vllm_flags_fails_loading_voxtral(env, version):
    result = env.run(version, "serve", str(env.snapshot), "--tokenizer-mode", "mistral")
    assert result.returncode == 1
    assert ACOUSTIC in result.stderr


def test_018_rejects_deploy_config(env):
    result = env.run("0.18.0", "serve", str(env.snapshot), "--omni", "--deploy-config", str(env.deploy))
    assert result.returncode == 2
    assert "unrecognized arguments: --deploy-config" in result.stderr


@pytest.mark.parametrize("version", ["0.20.0", "0.26.0"])
def test_new_layout_stage_configs_path_is_file_not_found(env, version):
    result = env.run(
        version, "serve", str(env.snapshot), "--omni", "--tokenizer-mode", "mistral",
        "--stage-configs-path", str(env.stage),
    )  # fmt: skip
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stderr


@pytest.mark.parametrize("version", ["0.28.0", "0.30.0"])
def test_stage_configs_path_removed_from_028(env, version):
    result = env.run(version, "serve", str(env.snapshot), "--omni", "--stage-configs-path", str(env.stage))
    assert result.returncode == 2
    assert "unrecognized arguments: --stage-configs-path" in result.stderr


def test_config_file_must_exist(env):
    result = env.run(
        "0.30.0", "serve", str(env.snapshot), "--omni", "--tokenizer-mode", "mistral",
        "--deploy-config", str(env.tmp / "absent.yaml"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stderr and "absent.yaml" in result.stderr


def test_deploy_config_must_have_the_new_shape(env):
    result = env.run(
        "0.30.0", "serve", str(env.snapshot), "--omni", "--tokenizer-mode", "mistral",
        "--deploy-config", str(env.stage),
    )  # fmt: skip
    assert result.returncode == 1
    assert "legacy stage_args" in result.stderr


def test_stage_config_must_have_the_old_shape(env):
    result = env.run(
        "0.18.0", "serve", str(env.snapshot), "--omni", "--tokenizer-mode", "mistral",
        "--stage-configs-path", str(env.deploy),
    )  # fmt: skip
    assert result.returncode == 1
    assert "stage_args" in result.stderr


def test_tokenizer_mode_mistral_required(env):
    args = env.serve_args("0.30.0")
    args[args.index("mistral")] = "auto"
    result = env.run("0.30.0", *args)
    assert result.returncode == 1
    assert "--tokenizer-mode mistral" in result.stderr


@pytest.mark.parametrize("missing", ["consolidated.safetensors", "params.json", "tekken.json", "voice_embedding"])
def test_incomplete_snapshot_is_refused(env, missing):
    snapshot = make_snapshot(env.tmp / "partial", omit=(missing,))
    args = env.serve_args("0.30.0")
    args[1] = str(snapshot)
    result = env.run("0.30.0", *args)
    assert result.returncode == 1
    assert missing in result.stderr


def test_hub_id_offline_without_cache_fails(env):
    args = env.serve_args("0.30.0")
    args[1] = SERVED
    result = env.run("0.30.0", *args)
    assert result.returncode == 1
    assert "offline" in result.stderr


def test_crash_at_start(env):
    env.behaviour(crash_at_start=True)
    result = env.run("0.30.0", *env.serve_args("0.30.0"), "--port", str(free_port()))
    assert result.returncode == 1
    assert "out of memory" in result.stderr


# --- serving -----------------------------------------------------------------------------------


def test_health_is_503_during_warmup_then_200(env):
    env.behaviour(warmup_s=1.0)
    port = env.start("0.30.0", wait_healthy=False)
    status, _, body = request(port, "GET", "/health")
    assert (status, json.loads(body)) == (503, {"status": "starting"})
    status, _, _ = request(port, "POST", "/v1/audio/speech", speech_body())
    assert status == 503
    time.sleep(1.1)
    status, _, body = request(port, "GET", "/health")
    assert (status, json.loads(body)) == (200, {"status": "healthy"})


def test_models_lists_the_served_name(env):
    port = env.start("0.30.0", "--served-model-name", SERVED)
    status, _, body = request(port, "GET", "/v1/models")
    assert status == 200
    model = json.loads(body)["data"][0]
    assert model["id"] == SERVED
    assert model["root"] == str(env.snapshot)
    assert model["max_model_len"] == 2048


@pytest.mark.parametrize("version", ["0.18.0", "0.30.0"])
def test_speech_wav_is_valid_and_sized_by_the_text(env, version):
    port = env.start(version, "--served-model-name", SERVED)
    text = "The flight is on time, and Gemma is still serving."
    status, headers, body = request(port, "POST", "/v1/audio/speech", speech_body(input=text))
    assert status == 200, body
    assert headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() == expected_samples(text)
        frames = wav.readframes(wav.getnframes())
    assert len(frames) == 2 * expected_samples(text)
    assert any(frames), "silence"


def test_speech_speed_shortens_audio(env):
    port = env.start("0.30.0", "--served-model-name", SERVED)
    text = "A somewhat longer sentence to make the speed visible."
    _, _, body = request(port, "POST", "/v1/audio/speech", speech_body(input=text, response_format="pcm", speed=2.0))
    assert len(body) == 2 * expected_samples(text, 2.0)


def test_streamed_pcm_first_byte_after_the_configured_delay(env):
    env.behaviour(first_audio_ms=300, rtf=0.05)
    port = env.start("0.30.0", "--served-model-name", SERVED)
    text = "Streaming raw audio, chunk by chunk."
    body = speech_body(input=text, stream=True, stream_format="audio", response_format="pcm")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start = time.monotonic()
    conn.request("POST", "/v1/audio/speech", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Type") == "audio/pcm"
    first = response.read1(65536)
    ttfb = time.monotonic() - start
    rest = response.read()
    conn.close()
    assert first
    assert 0.3 <= ttfb < 1.5
    assert len(first) + len(rest) == 2 * expected_samples(text)


def test_stream_true_alone_is_sse_from_024(env):
    port = env.start("0.30.0", "--served-model-name", SERVED)
    status, headers, body = request(port, "POST", "/v1/audio/speech", speech_body(stream=True, response_format="pcm"))
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert body.decode().rstrip().endswith("data: [DONE]")


def test_unknown_voice_and_model(env):
    port = env.start("0.30.0", "--served-model-name", SERVED)
    status, _, body = request(port, "POST", "/v1/audio/speech", speech_body(voice="samantha"))
    assert status == 400 and "neutral_female" in json.loads(body)["message"]
    status, _, _ = request(port, "POST", "/v1/audio/speech", speech_body(model="other"))
    assert status == 404


@pytest.mark.parametrize(("version", "status"), [("0.18.0", 500), ("0.30.0", 400)])
def test_ref_audio_fails_with_the_real_error(env, version, status):
    port = env.start(version, "--served-model-name", SERVED)
    body = speech_body(ref_audio="data:audio/wav;base64,UklGRg==", voice=None)
    got, _, payload = request(port, "POST", "/v1/audio/speech", body)
    assert got == status
    assert json.loads(payload)["message"] == ENCODER


def test_ref_audio_works_with_encoder_weights(env):
    env.behaviour(has_encoder_weights=True)
    port = env.start("0.30.0", "--served-model-name", SERVED)
    status, _, _ = request(port, "POST", "/v1/audio/speech", speech_body(ref_audio="data:audio/wav;base64,UklGRg=="))
    assert status == 200


def test_health_200_but_synthesis_fails(env):
    env.behaviour(synthesis_fails=True, first_audio_ms=0)
    port = env.start("0.30.0", "--served-model-name", SERVED)
    assert request(port, "GET", "/health")[0] == 200
    status, _, body = request(port, "POST", "/v1/audio/speech", speech_body())
    assert status == 500 and "CUDA error" in json.loads(body)["message"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_api_key(env, how):
    extra, environment = (["--api-key", "s3cret"], None) if how == "flag" else ([], {"VLLM_API_KEY": "s3cret"})
    port = env.start("0.30.0", "--served-model-name", SERVED, *extra, env=environment)
    assert request(port, "GET", "/health")[0] == 200  # /health stays open, as in vLLM
    assert request(port, "GET", "/v1/models")[0] == 401
    assert request(port, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret"})[0] == 200


def test_sigterm_stops_cleanly_and_logs_the_stages(env):
    port = env.start("0.30.0")
    proc = env.procs[-1]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    output = proc.stdout.read()
    assert "stage 0: gpu_memory_utilization=0.3 max_model_len=2048 max_num_seqs=8" in output
    assert f"Starting vLLM API server on http://127.0.0.1:{port}" in output


# --- memory at start (vLLM 0.30 request_memory) and the memory it holds -------------------------

GIB = 1024**3


def fake_meminfo(env: Env, total_gib: float, available_gib: float) -> Path:
    path = env.tmp / "meminfo"
    path.write_text(
        f"MemTotal:       {int(total_gib * 1024 * 1024)} kB\nMemFree:        1024 kB\n"
        f"MemAvailable:   {int(available_gib * 1024 * 1024)} kB\n"
    )
    return path


def vllm_refusal(free: float, total: float, fraction: float) -> str:
    requested = math.ceil(int(total * GIB) * fraction)
    return (
        f"ValueError: Free memory on device cuda:0 ({round(free, 2)}/{round(total, 2)} GiB) on startup is less than "
        f"desired GPU memory utilization ({fraction}, {round(requested / GIB, 2)} GiB). Decrease GPU memory "
        "utilization or reduce GPU memory used by other processes."
    )


def test_memory_check_refuses_stage0_like_vllm(env):
    # Upstream's 0.8 of a GB10 (121.7 GiB) with 60 GiB available (Gemma serving): stage 0 refuses.
    env.behaviour(memory_check=True, device_total_gib=121.7, meminfo_path=str(fake_meminfo(env, 121.7, 60)))
    args = [a for a in env.serve_args("0.30.0") if a not in ("--deploy-config", str(env.deploy))]
    result = env.run("0.30.0", *args, "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip() == vllm_refusal(60.0, 121.7, 0.8)
    assert "stage 1" not in result.stdout  # vLLM never reaches the second engine


def test_memory_check_refuses_stage1_with_stage0s_claim_gone(env):
    # Deploy config 0.3 + 0.05 of 100 GiB with 33 GiB free: stage 0 takes 30, stage 1 finds 3 < 5.
    env.behaviour(memory_check=True, device_total_gib=100, meminfo_path=str(fake_meminfo(env, 100, 33)))
    result = env.run("0.30.0", *env.serve_args("0.30.0"), "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip() == vllm_refusal(33.0 - 30.0, 100.0, 0.05)
    assert "stage 0: free 33.0/100.0 GiB at start, requests 30.0 GiB (0.3)" in result.stdout


def test_memory_check_uses_the_stage_overrides_and_memtotal(env):
    env.behaviour(memory_check=True, meminfo_path=str(fake_meminfo(env, 24, 10)))
    override = json.dumps({"0": {"gpu_memory_utilization": 0.5}})
    result = env.run("0.30.0", *env.serve_args("0.30.0"), "--stage-overrides", override, "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip() == vllm_refusal(10.0, 24.0, 0.5)


def test_memory_check_starts_when_both_stages_fit(env):
    env.behaviour(memory_check=True, device_total_gib=100, meminfo_path=str(fake_meminfo(env, 100, 36)))
    port = env.start("0.30.0")
    assert request(port, "GET", "/health")[0] == 200


def test_without_memory_check_upstream_fractions_start_on_a_small_machine(env):
    env.behaviour(meminfo_path=str(fake_meminfo(env, 24, 1)))  # memory_check is off by default
    assert request(env.start("0.30.0"), "GET", "/health")[0] == 200


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_claimed_memory_is_really_held_scaled_and_counted_for_the_next_stage(env):
    # 1 GiB device, 0.3 + 0.05: claims 0.3 and 0.05 GiB; memory_scale 0.25 holds a quarter of each.
    # Free 0.36 GiB: stage 1 finds 0.36 - 0.3 = 0.06 >= 0.05 although only 0.075 GiB was allocated.
    env.behaviour(
        memory_check=True, device_total_gib=1, memory_scale=0.25, meminfo_path=str(fake_meminfo(env, 1, 0.36))
    )
    port = env.start("0.30.0")
    proc = env.procs[-1]
    held = int(math.ceil(GIB * 0.3) * 0.25) + int(math.ceil(GIB * 0.05) * 0.25)
    assert rss_bytes(proc.pid) >= held
    assert request(port, "GET", "/health")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    output = proc.stdout.read()
    assert "stage 0: holding 0.08 GiB (memory_scale 0.25)" in output
    assert "stage 1: free 0.06/1.0 GiB at start, requests 0.05 GiB (0.05)" in output


def test_memory_scale_counts_the_unheld_part_against_stage1(env):
    # Same claims, free 0.34 GiB: stage 1 sees 0.04 < 0.05 even though the scale held only 0.075 GiB.
    env.behaviour(
        memory_check=True, device_total_gib=1, memory_scale=0.25, meminfo_path=str(fake_meminfo(env, 1, 0.34))
    )
    result = env.run("0.30.0", *env.serve_args("0.30.0"), "--port", str(free_port()))
    assert result.returncode == 1
    assert "(0.04/1.0 GiB) on startup is less than desired GPU memory utilization (0.05, 0.05 GiB)" in result.stderr


def test_unreadable_meminfo_is_a_clear_start_failure(env):
    env.behaviour(memory_check=True, meminfo_path=str(env.tmp / "absent"))
    result = env.run("0.30.0", *env.serve_args("0.30.0"), "--port", str(free_port()))
    assert result.returncode == 1
    assert f"cannot read memory from {env.tmp / 'absent'}" in result.stderr


# --- the streaming marker (the fake Gemma's interference) ---------------------------------------


def test_streaming_marker_is_renewed_while_audio_streams_only(env):
    marker = env.tmp / "voxtral-streaming"
    env.behaviour(first_audio_ms=100, rtf=1.0, streaming_marker=str(marker))
    port = env.start("0.30.0", "--served-model-name", SERVED)
    assert not marker.exists()  # serving, not synthesizing
    text = "x" * 20  # 1.2 s of audio at rtf 1.0
    body = speech_body(input=text, stream=True, stream_format="audio", response_format="pcm")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/audio/speech", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read1(65536)
    ages = []
    for _ in range(4):
        time.sleep(0.2)
        ages.append(time.time() - marker.stat().st_mtime)
    response.read()
    conn.close()
    assert max(ages) < 0.6, ages  # renewed at least every 0.1 s (slack for a loaded CI machine)
    time.sleep(0.5)
    assert time.time() - marker.stat().st_mtime >= 0.4  # no longer renewed once the stream ended


def test_streaming_marker_covers_a_whole_file_synthesis(env):
    marker = env.tmp / "voxtral-streaming"
    env.behaviour(first_audio_ms=400, rtf=0.0, streaming_marker=str(marker))
    port = env.start("0.30.0", "--served-model-name", SERVED)
    start = time.time()
    assert request(port, "POST", "/v1/audio/speech", speech_body())[0] == 200
    assert marker.stat().st_mtime >= start + 0.25  # touched during the wait, not only at its start


# --- what the audio sounds like (behaviour "audio") ----------------------------------------------

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
STATUS_LINE = "The flight is on time, and Gemma is still serving."


def stream_pcm(port: int, text: str) -> tuple[float, dict, bytes]:
    """The gate's request (raw s16le streaming): time to the first body byte, headers, the whole body."""
    body = speech_body(input=text, stream=True, stream_format="audio", response_format="pcm")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    start = time.monotonic()
    conn.request("POST", "/v1/audio/speech", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    first = response.read1(65536)
    ttfa = time.monotonic() - start
    pcm = first + response.read()
    conn.close()
    return ttfa, dict(response.getheaders()), pcm


@needs_espeak
def test_speech_is_espeak_ng_at_the_texts_length_and_passes_the_audio_checks(env):
    port = env.start("0.30.0", "--served-model-name", SERVED)
    ttfa, headers, pcm = stream_pcm(port, STATUS_LINE)
    assert headers["X-Fake-Audio"] == "speech"
    assert len(pcm) == 2 * expected_samples(STATUS_LINE)
    assert ttfa < 1.0
    figures = measure(samples_from_pcm(pcm), 24000, STATUS_LINE)
    assert check(figures, utterance="medium-status") == [], figures
    status, headers, body = request(
        port, "POST", "/v1/audio/speech", speech_body(input=STATUS_LINE, voice="casual_male")
    )
    assert status == 200 and headers["X-Fake-Audio"] == "speech"
    samples, rate = samples_from_wav(body)
    assert rate == 24000 and len(samples) == expected_samples(STATUS_LINE)
    assert check(measure(samples, rate, STATUS_LINE), utterance="medium-status") == []


@pytest.mark.parametrize(
    ("mode", "failed_limits"),
    [
        ("silence", {"min_speech_ratio", "max_leading_silence_s", "min_loudness_lufs"}),
        ("noise", {"min_speech_ratio", "max_clipping_ratio", "max_loudness_lufs"}),
        ("truncate", {"min_duration_ratio"}),
    ],
)
def test_each_failure_mode_keeps_a_good_ttfa_and_fails_the_audio_checks(env, mode, failed_limits):
    env.behaviour(audio=mode, first_audio_ms=50, rtf=0.05)
    port = env.start("0.30.0", "--served-model-name", SERVED)
    ttfa, headers, pcm = stream_pcm(port, STATUS_LINE)
    assert headers["X-Fake-Audio"].startswith(mode)
    assert ttfa < 1.0
    expected_bytes = 2 * (
        round(0.4 * expected_samples(STATUS_LINE)) if mode == "truncate" else expected_samples(STATUS_LINE)
    )
    assert len(pcm) == expected_bytes
    problems = check(measure(samples_from_pcm(pcm), 24000, STATUS_LINE), utterance="medium-status")
    assert all(problem.startswith("medium-status: ") for problem in problems)
    failed = {problem.rsplit("(", 1)[1].rstrip(")") for problem in problems}
    assert failed_limits <= failed, problems


def test_without_espeak_ng_the_speech_is_a_tone_and_says_so(env, tmp_path):
    # PATH without espeak-ng (the interpreter is started by its absolute path).
    port = env.start("0.30.0", "--served-model-name", SERVED, env={"PATH": str(tmp_path)})
    _, headers, pcm = stream_pcm(port, STATUS_LINE)
    assert headers["X-Fake-Audio"] == "tone (espeak-ng not found)"
    assert len(pcm) == 2 * expected_samples(STATUS_LINE)
    # A simulated Spark without espeak-ng still passes the gate's audio checks (latency_gate audio_checks).
    assert check(measure(samples_from_pcm(pcm), 24000, STATUS_LINE)) == []
    proc = env.procs[-1]
    proc.terminate()
    assert "audio: tones (espeak-ng not found on PATH)" in proc.communicate(timeout=10)[0]


def test_tone_mode_and_an_unknown_audio_mode(env):
    env.behaviour(audio="tone")
    port = env.start("0.30.0", "--served-model-name", SERVED)
    status, headers, body = request(port, "POST", "/v1/audio/speech", speech_body(response_format="pcm"))
    assert status == 200 and headers["X-Fake-Audio"] == "tone"
    env.behaviour(audio="mumble")
    status, _, body = request(port, "POST", "/v1/audio/speech", speech_body())
    assert status == 500
    assert "behaviour audio 'mumble' is not one of" in json.loads(body)["message"]


def load_cli():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_vllm_omni_cli", CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n_out", [24000, 26123, 1])
def test_resampling_gives_exactly_the_length_with_or_without_audioop(monkeypatch, n_out):
    from array import array

    cli = load_cli()
    source = array("h", (round(8000 * math.sin(2 * math.pi * 200 * i / 22050)) for i in range(22050)))
    with_c = cli.fit_to_length(source, n_out)
    monkeypatch.setattr(cli, "audioop", None)  # Python 3.13+: no audioop, the pure-Python loop
    pure = cli.fit_to_length(source, n_out)
    assert len(with_c) == len(pure) == n_out
    if n_out > 1:
        # The same tone: ratecv places its output samples at i x in/out, the loop aligns both ends, so
        # they differ by a growing sub-sample phase; on average by under 1 % of the 8000 amplitude.
        assert sum(abs(a - b) for a, b in zip(with_c, pure, strict=True)) / n_out < 80
