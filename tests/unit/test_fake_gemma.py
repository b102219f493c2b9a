"""The fake Gemma fixture, run as the test hosts run it: a separate python3 process on a free port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

FAKE = Path(__file__).resolve().parent.parent / "fixtures" / "fake_gemma.py"
CHAT = {"model": "gemma-3-27b-it", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}


class Server:
    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if " on 127.0.0.1:" in line:
                self.port = int(line.split(" on 127.0.0.1:", 1)[1].split(",")[0])
                self.banner = line
                return
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise AssertionError("fake Gemma did not start listening")

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, bytes, float]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read(), time.monotonic() - start
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), time.monotonic() - start

    def chat(self, body: dict | None = None) -> tuple[int, dict, float]:
        status, raw, elapsed = self.request("POST", "/v1/chat/completions", body or CHAT)
        return status, json.loads(raw), elapsed

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        self.process.stderr.close()
        return code


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(*args: str) -> Server:
        servers.append(Server(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_chat_completion_in_openai_shape_with_configured_latency(serve):
    server = serve("--latency-ms", "120")
    status, body, elapsed = server.chat()
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemma-3-27b-it"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0
    assert 0.11 <= elapsed < 1.0


def test_models_and_health(serve):
    server = serve("--model", "gemma-x")
    status, raw, _ = server.request("GET", "/v1/models")
    assert status == 200
    assert [model["id"] for model in json.loads(raw)["data"]] == ["gemma-x"]
    status, raw, _ = server.request("GET", "/health")
    assert (status, json.loads(raw)) == (200, {"status": "healthy"})
    assert server.request("GET", "/nope")[0] == 404


def test_unknown_model_and_bad_body_are_rejected_like_vllm(serve):
    server = serve("--latency-ms", "0")
    status, body, _ = server.chat({**CHAT, "model": "llama"})
    assert status == 404
    assert "llama" in body["error"]["message"]
    assert server.chat({"model": "gemma-3-27b-it"})[0] == 400
    assert server.request("POST", "/v1/completions", CHAT)[0] == 404


def test_streaming_sends_sse_chunks_and_done(serve):
    server = serve("--latency-ms", "100")
    status, raw, elapsed = server.request("POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 200
    events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(item["object"] == "chat.completion.chunk" for item in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(item["choices"][0]["delta"].get("content", "") for item in chunks)
    assert text == "Hello! I am a fake Gemma."
    assert elapsed >= 0.09


def test_behaviour_file_overrides_cli_and_is_reread_live(serve, tmp_path):
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text(json.dumps({"latency_ms": 0}))
    server = serve("--latency-ms", "500", "--behaviour-file", str(behaviour))
    assert server.chat()[2] < 0.3
    behaviour.write_text(json.dumps({"latency_ms": 250}))
    time.sleep(0.01)
    assert server.chat()[2] >= 0.24
    behaviour.write_text(json.dumps({"error_rate": 1.0, "latency_ms": 0}))
    status, body, _ = server.chat()
    assert status == 500
    assert body["error"]["message"] == "injected failure"


def test_api_key_file_guards_the_v1_routes_only(serve, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text("gk-test\n")
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text(json.dumps({"latency_ms": 0, "api_key_file": str(key_file)}))
    server = serve("--behaviour-file", str(behaviour))
    assert server.request("POST", "/v1/chat/completions", CHAT)[0] == 401
    assert server.request("GET", "/v1/models", headers={"Authorization": "Bearer other"})[0] == 401
    assert server.request("POST", "/v1/chat/completions", CHAT, {"Authorization": "Bearer gk-test"})[0] == 200
    assert server.request("GET", "/v1/models", headers={"Authorization": "Bearer gk-test"})[0] == 200
    assert server.request("GET", "/health")[0] == 200
    # Read on each request: a new key applies at once, and a missing file lets nobody in.
    key_file.write_text("gk-new")
    assert server.request("POST", "/v1/chat/completions", CHAT, {"Authorization": "Bearer gk-new"})[0] == 200
    key_file.unlink()
    assert server.request("POST", "/v1/chat/completions", CHAT, {"Authorization": "Bearer gk-new"})[0] == 401


def test_slow_after_restart_only_slows_processes_started_after_the_knob(serve, tmp_path):
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text(json.dumps({"latency_ms": 0}))
    first = serve("--behaviour-file", str(behaviour))
    behaviour.write_text(json.dumps({"latency_ms": 0, "slow_after_restart_ms": 300}))
    assert first.chat()[2] < 0.2
    first.stop()
    second = serve("--behaviour-file", str(behaviour))
    assert "slow after restart: 300 ms" in second.banner
    assert second.chat()[2] >= 0.29


def test_loading_window_answers_503_then_healthy(serve):
    server = serve("--loading-s", "0.6", "--latency-ms", "0")
    assert server.request("GET", "/health")[0] == 503
    assert server.chat()[0] == 503
    time.sleep(0.7)
    assert server.request("GET", "/health")[0] == 200


def test_start_delay_keeps_the_port_closed(serve):
    start = time.monotonic()
    server = serve("--start-delay-s", "0.5")
    assert time.monotonic() - start >= 0.5
    assert server.request("GET", "/health")[0] == 200


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_is_really_held(serve):
    idle = serve()
    holding = serve("--memory-mib", "64")
    assert rss_mib(holding.process.pid) - rss_mib(idle.process.pid) >= 60


def test_sigterm_exits_cleanly(serve):
    server = serve()
    assert server.stop() == 0


def test_keep_alive_requests_carry_no_nagle_delay(serve):
    """A client reusing its connection (as the latency gate does) sees the configured latency, not +40 ms."""
    server = serve("--latency-ms", "0")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps(CHAT)
    timings = []
    for _ in range(5):
        start = time.monotonic()
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        timings.append(time.monotonic() - start)
    connection.close()
    assert sorted(timings)[2] < 0.03


# --- interference: slower while the fake Voxtral synthesizes --------------------------------------


def test_interference_slows_answers_only_while_the_marker_is_fresh(serve, tmp_path):
    marker = tmp_path / "voxtral-streaming"
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text(json.dumps({"latency_ms": 20, "interference_ms": 250, "interference_marker": str(marker)}))
    server = serve("--behaviour-file", str(behaviour))
    assert server.chat()[2] < 0.2  # no marker: Voxtral is not synthesizing
    marker.touch()
    status, _, elapsed = server.chat()
    assert status == 200
    assert elapsed >= 0.26
    stale = time.time() - 5
    os.utime(marker, (stale, stale))  # the stream ended seconds ago
    assert server.chat()[2] < 0.2


def test_interference_applies_to_streamed_answers_and_its_window_is_a_knob(serve, tmp_path):
    marker = tmp_path / "voxtral-streaming"
    behaviour = tmp_path / "behaviour.json"
    knobs = {"latency_ms": 0, "interference_ms": 200, "interference_marker": str(marker), "interference_window_s": 10}
    behaviour.write_text(json.dumps(knobs))
    server = serve("--behaviour-file", str(behaviour))
    marker.touch()
    old = time.time() - 5
    os.utime(marker, (old, old))  # 5 s old, inside a 10 s window
    assert server.request("POST", "/v1/chat/completions", {**CHAT, "stream": True})[2] >= 0.19


def test_interference_off_by_default_and_from_the_command_line(serve, tmp_path):
    marker = tmp_path / "voxtral-streaming"
    plain = serve("--latency-ms", "0", "--interference-marker", str(marker))
    slowed = serve("--latency-ms", "0", "--interference-ms", "200", "--interference-marker", str(marker))
    # Touched just before each answer: the marker counts for 0.5 s, and a loaded machine can take longer to
    # start a server.
    marker.touch()
    assert plain.chat()[2] < 0.15  # 0 ms by default
    marker.touch()
    assert slowed.chat()[2] >= 0.19


def test_a_streaming_fake_voxtral_slows_the_fake_gemma(serve, tmp_path):
    """The two fakes together, as on the simulated Spark: Gemma answers slower while Voxtral streams."""
    sys.path.insert(0, str(FAKE.parent))
    from make_weights import make_snapshot

    marker = tmp_path / "voxtral-streaming"
    gemma_behaviour = tmp_path / "gemma.json"
    gemma_behaviour.write_text(
        json.dumps({"latency_ms": 20, "interference_ms": 300, "interference_marker": str(marker)})
    )
    gemma = serve("--behaviour-file", str(gemma_behaviour))
    voxtral_behaviour = tmp_path / "voxtral.json"
    voxtral_behaviour.write_text(json.dumps({"first_audio_ms": 50, "rtf": 1.0, "streaming_marker": str(marker)}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = FAKE.parent / "fake_vllm_omni" / "cli.py"
    env = {**os.environ, "VLLM_OMNI_FAKE_VERSION": "0.30.0", "FAKE_VLLM_OMNI_BEHAVIOUR": str(voxtral_behaviour)}
    snapshot = make_snapshot(tmp_path / "hf")
    voxtral = subprocess.Popen(
        [sys.executable, str(cli), "serve", str(snapshot), "--omni", "--tokenizer-mode", "mistral",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "fake vllm-omni did not start"
                time.sleep(0.05)
        idle = gemma.chat()[2]
        speech = json.dumps({"input": "x" * 30, "voice": "casual_male", "stream": True, "stream_format": "audio",
                             "response_format": "pcm"}).encode()  # fmt: skip
        stream = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/v1/audio/speech", data=speech, method="POST",
                                   headers={"Content-Type": "application/json"}), timeout=10,
        )  # fmt: skip
        stream.read(4096)  # audio is flowing (1.8 s of it at rtf 1.0)
        during = gemma.chat()[2]
        stream.read()
        stream.close()
    finally:
        voxtral.terminate()
        voxtral.wait(timeout=10)
    assert idle < 0.2
    assert during >= 0.3
