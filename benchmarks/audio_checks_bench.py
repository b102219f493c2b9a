#!/usr/bin/env python3
"""What the audio checks cost per utterance, in ms of CPU per second of audio (printed, never asserted).

    source scripts/env.sh && python benchmarks/audio_checks_bench.py [--repeat N]

(a) the stdlib path (plugins/module_utils/audio_metrics.py measure + check, what the latency gate would run
    on the Spark with the host's Python), whole and by part (loudness, frame detector);
(b) the controller's model VAD (silero-vad's ONNX model through onnxruntime) when numpy, onnxruntime and
    silero-vad are importable (e.g. /tmp/venv-audio/bin/python with ansible-core installed);
(c) what the speaking fakes add before their first byte: espeak-ng plus the stdlib resampling to 24 kHz
    (audioop.ratecv where the stdlib has it, a Python loop from 3.13).
Utterances: the benchmark's short/medium/long lines as espeak-ng speech (a tone without espeak-ng).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))  # the checkout as voxtral.deploy (scripts/setup.sh)
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "fake_vllm_omni"))

from ansible_collections.voxtral.deploy.plugins.module_utils import audio_metrics  # noqa: E402

UTTERANCES = {
    "short": "Yes, I can do that.",
    "medium": "The flight is on time, and Gemma is still serving.",
    "long": (
        "Voxtral has started, the gate measured its first audio and its real-time factor, and now every "
        "utterance is checked for silence, noise, clipping, loudness and length before anyone listens."
    ),
}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}; {os.cpu_count()} cores; load {load}; Python {platform.python_version()} "
        f"({platform.machine()}, {platform.system()} {platform.release()})"
    )


def speech(text: str) -> tuple[list[int], int, str]:
    if shutil.which("espeak-ng"):
        wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=60).stdout
        samples, rate = audio_metrics.samples_from_wav(wav)
        return list(samples), rate, "espeak-ng speech"
    rate = 24000
    n = round(len(text) * 0.06 * rate)
    return [round(9000 * math.sin(2 * math.pi * 210 * i / rate)) for i in range(n)], rate, "tone (no espeak-ng)"


def cpu_ms_per_audio_s(function, seconds: float, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return 1000 * best / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the least CPU time is kept")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    try:
        audio_metrics.model_speech([0] * 16000, 16000)
        model_vad = True
    except (ImportError, RuntimeError) as exc:
        model_vad = False
        print(f"model VAD: not measured ({exc})")
    print("CPU ms per second of audio (least of", args.repeat, "runs):")
    header = f"{'utterance':<9} {'audio':>7} {'source':<18} {'stdlib all':>10} {'loudness':>9} {'detector':>9}"
    print(header + (f" {'model VAD':>10}" if model_vad else ""))
    for name, text in UTTERANCES.items():
        samples, rate, source = speech(text)
        seconds = len(samples) / rate
        whole = cpu_ms_per_audio_s(
            lambda samples=samples, rate=rate, text=text: audio_metrics.check(
                audio_metrics.measure(samples, rate, text)
            ),
            seconds,
            args.repeat,
        )
        loudness = cpu_ms_per_audio_s(
            lambda samples=samples, rate=rate: audio_metrics.integrated_loudness(samples, rate), seconds, args.repeat
        )
        detector = cpu_ms_per_audio_s(
            lambda samples=samples, rate=rate: audio_metrics.speech_frames(samples, rate), seconds, args.repeat
        )
        row = f"{name:<9} {seconds:>6.2f}s {source:<18} {whole:>10.1f} {loudness:>9.1f} {detector:>9.1f}"
        if model_vad:
            vad = cpu_ms_per_audio_s(
                lambda samples=samples, rate=rate: audio_metrics.model_speech(samples, rate), seconds, args.repeat
            )
            row += f" {vad:>10.1f}"
        print(row)
    if shutil.which("espeak-ng"):
        import cli as fake_vllm_omni  # tests/fixtures/fake_vllm_omni/cli.py

        print("speaking fakes: wall ms before the first byte (espeak-ng + resampling to 24 kHz, uncached):")
        for name, text in UTTERANCES.items():
            n_samples = fake_vllm_omni.audio_samples(text, 1.0)
            best = math.inf
            for _ in range(args.repeat):
                fake_vllm_omni.espeak_speech.cache_clear()
                start = time.perf_counter()
                fake_vllm_omni.espeak_speech(text, "neutral_female", 1.0, n_samples)
                best = min(best, time.perf_counter() - start)
            print(f"  {name:<9} {n_samples / 24000:>6.2f}s of audio: {1000 * best:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
