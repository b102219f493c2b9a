"""The fake Chatterbox (tests/fixtures/fake_chatterbox.py) speaks, and its audio failure modes fail the checks."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import (
    check,
    measure,
    samples_from_pcm,
    samples_from_wav,
)

ROOT = Path(__file__).resolve().parents[2]
FAKE = ROOT / "tests" / "fixtures" / "fake_chatterbox.py"
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "voices"))

from make_voices import write_tone  # noqa: E402

STATUS_LINE = "The flight is on time, and Gemma is still serving."
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def expected_samples(text: str) -> int:
    return round(max(0.5, len(text) * 0.06) * 24000)


class Chatterbox:
    """One fake Chatterbox on a free port, its reference voice and behaviour file in a temporary directory."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.reference = tmp_path / "reference.wav"
        write_tone(self.reference, 183.2, 0.5)
        self.env_file = tmp_path / ".env"
        self.env_file.write_text(f"VOICE_SAMPLE_PATH={self.reference}\n")
        self.behaviour_file = tmp_path / "behaviour.json"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def behaviour(self, **knobs) -> None:
        self.behaviour_file.write_text(json.dumps({"first_byte_ms": 20, "rtf": 0.01, **knobs}))

    def start(self, path: str | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "VOICE_SAMPLE_PATH"}
        if path is not None:
            env["PATH"] = path
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", str(self.port), "--env-file", str(self.env_file),
             "--behaviour-file", str(self.behaviour_file)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("fake Chatterbox did not become healthy")

    def request(self, method: str, path: str, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            sent = {**({"Content-Type": "application/json"} if payload else {}), **(headers or {})}
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def speech(self, text: str = STATUS_LINE, fmt: str = "wav"):
        return self.request("POST", "/v1/audio/speech", {"input": text, "response_format": fmt})

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        output = self.proc.communicate(timeout=10)[0]
        self.proc = None
        return output


@pytest.fixture
def chatterbox(tmp_path):
    fake = Chatterbox(tmp_path)
    yield fake
    fake.stop()


@needs_espeak
def test_speech_is_espeak_ng_and_passes_the_audio_checks(chatterbox):
    chatterbox.behaviour()
    chatterbox.start()
    status, headers, body = chatterbox.speech()
    assert status == 200
    assert headers["X-Fake-Audio"] == "speech"
    assert headers["X-Voice-Sample-SHA256"]
    samples, rate = samples_from_wav(body)
    assert rate == 24000 and len(samples) == expected_samples(STATUS_LINE)
    figures = measure(samples, rate, STATUS_LINE)
    assert check(figures, utterance="medium-status") == [], figures
    assert "audio: espeak-ng speech" in chatterbox.stop()


@pytest.mark.parametrize(
    ("mode", "failed_limits"),
    [
        ("silence", {"min_speech_ratio", "max_leading_silence_s", "min_loudness_lufs"}),
        ("noise", {"min_speech_ratio", "max_clipping_ratio", "max_loudness_lufs"}),
        ("truncate", {"min_duration_ratio"}),
    ],
)
def test_each_failure_mode_fails_the_audio_checks(chatterbox, mode, failed_limits):
    chatterbox.behaviour(audio=mode)
    chatterbox.start()
    status, headers, pcm = chatterbox.speech(fmt="pcm")
    assert status == 200
    assert headers["X-Fake-Audio"].startswith(mode)
    problems = check(measure(samples_from_pcm(pcm), 24000, STATUS_LINE), utterance="ab-medium")
    assert all(problem.startswith("ab-medium: ") for problem in problems)
    failed = {problem.rsplit("(", 1)[1].rstrip(")") for problem in problems}
    assert failed_limits <= failed, problems


def test_without_espeak_ng_the_speech_is_the_references_tone_and_says_so(chatterbox, tmp_path):
    chatterbox.behaviour()
    chatterbox.start(path=str(tmp_path))  # a PATH without espeak-ng
    status, headers, body = chatterbox.speech()
    assert status == 200
    assert headers["X-Fake-Audio"] == "tone (espeak-ng not found)"
    samples, _ = samples_from_wav(body)
    assert len(samples) == expected_samples(STATUS_LINE)
    assert "audio: tones (espeak-ng not found on PATH)" in chatterbox.stop()


def test_unknown_audio_mode_is_a_500(chatterbox):
    chatterbox.behaviour(audio="mumble")
    chatterbox.start()
    status, _, body = chatterbox.speech()
    assert status == 500
    assert "behaviour audio 'mumble' is not one of" in json.loads(body)["error"]["message"]


def test_api_key_file_guards_the_synthesis_only(chatterbox):
    key_file = chatterbox.tmp / "api-key"
    key_file.write_text("ab-test\n")
    chatterbox.behaviour(audio="tone", api_key_file=str(key_file))
    chatterbox.start()
    speech = {"input": "Hello.", "response_format": "pcm"}
    assert chatterbox.request("POST", "/v1/audio/speech", speech)[0] == 401
    assert chatterbox.request("POST", "/v1/audio/speech", speech, {"Authorization": "Bearer other"})[0] == 401
    assert chatterbox.request("POST", "/v1/audio/speech", speech, {"Authorization": "Bearer ab-test"})[0] == 200
    assert chatterbox.request("GET", "/health")[0] == 200
