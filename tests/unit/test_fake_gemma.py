"""The fake Gemma fixture, run as the test hosts run it: a separate python3 process on a free port."""

from __future__ import annotations

import http.client
import json
import signal
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

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
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
