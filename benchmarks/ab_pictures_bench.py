#!/usr/bin/env python3
"""What ab.html's pictures cost per utterance, in ms of CPU (printed, never asserted).

    source scripts/env.sh && python benchmarks/ab_pictures_bench.py [--repeat N]

(a) the pictures flight_verdict draws for every kept WAV (plugins/module_utils/audio_pictures.py, stdlib on
    the controller): the waveform (inline SVG) and the spectrogram (a Python FFT, PNG as a data: URI), and
    the bytes each adds to ab.html;
(b) the speaker similarity (plugins/module_utils/speaker_similarity.py) when resemblyzer is importable (the
    optional extra; e.g. a venv with torch's CPU build, resemblyzer and setuptools<81 for webrtcvad): its
    import, the encoder's load and the wall time per utterance.
Utterances: the benchmark's short/medium/long lines as the fakes speak them (espeak-ng at 24 kHz, the length
the fake vllm-omni gives them); a tone without espeak-ng.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".cache" / "collections"))  # the checkout as voxtral.deploy (scripts/setup.sh)
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "fake_vllm_omni"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import cli as fake_vllm_omni  # noqa: E402  tests/fixtures/fake_vllm_omni/cli.py
from ansible_collections.voxtral.deploy.plugins.module_utils import (  # noqa: E402
    audio_pictures,
    speaker_similarity,
)
from audio_checks_bench import UTTERANCES, machine  # noqa: E402

RATE = 24000


def speech(text: str) -> tuple[array, str]:
    n_samples = fake_vllm_omni.audio_samples(text, 1.0)
    if shutil.which("espeak-ng"):
        pcm = fake_vllm_omni.espeak_speech(text, "neutral_female", 1.0, n_samples)
        if pcm is not None:
            samples = array("h")
            samples.frombytes(pcm)
            if sys.byteorder == "big":
                samples.byteswap()
            return samples, "espeak-ng speech"
    tone = array("h", (round(9000 * math.sin(2 * math.pi * 210 * i / RATE)) for i in range(n_samples)))
    return tone, "tone (no espeak-ng)"


def cpu_ms(function, repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.process_time()
        out = function()
        best = min(best, time.process_time() - start)
    return 1000 * best, out


def to_wav(samples: array) -> bytes:
    body = array("h", samples)
    if sys.byteorder == "big":
        body.byteswap()
    data = body.tobytes()
    header = b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += RATE.to_bytes(4, "little") + (2 * RATE).to_bytes(4, "little") + (2).to_bytes(2, "little")
    header += (16).to_bytes(2, "little") + b"data" + len(data).to_bytes(4, "little")
    return header + data


def similarity(spoken: dict) -> None:
    start = time.perf_counter()
    loaded = speaker_similarity._load()
    if loaded is None:
        print(f"speaker similarity: {speaker_similarity.NOT_INSTALLED}")
        return
    imported = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, (samples, _source) in spoken.items():
            paths[name] = os.path.join(folder, f"{name}.wav")
            Path(paths[name]).write_bytes(to_wav(samples))
        start = time.perf_counter()
        result = speaker_similarity.measure(paths["long"], {"self": paths})
        elapsed = time.perf_counter() - start
    print(f"speaker similarity ({result['model'] or result['reason']}): import {imported:.1f} s;")
    print(f"  the reference and {len(paths)} utterances, encoder load included: {elapsed:.1f} s wall")
    print(f"  scores against the long line (same voice): {result['scores'].get('self')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the least CPU time is kept")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("CPU ms per utterance (least of", args.repeat, "runs), and what it adds to ab.html:")
    print(f"{'utterance':<9} {'audio':>7} {'source':<18} {'waveform':>9} {'spectrogram':>12} {'per s audio':>12}"
          f" {'bytes':>7}")  # fmt: skip
    spoken = {}
    for name, text in UTTERANCES.items():
        samples, source = speech(text)
        spoken[name] = (samples, source)
        seconds = len(samples) / RATE
        wave_ms, svg = cpu_ms(lambda samples=samples: audio_pictures.waveform_svg(samples, RATE), args.repeat)
        spec_ms, img = cpu_ms(lambda samples=samples: audio_pictures.spectrogram_img(samples, RATE), args.repeat)
        per_s = (wave_ms + spec_ms) / seconds
        print(f"{name:<9} {seconds:>6.2f}s {source:<18} {wave_ms:>7.1f}ms {spec_ms:>10.1f}ms {per_s:>10.1f}ms"
              f" {len(svg) + len(img):>7}")  # fmt: skip
    similarity(spoken)
    return 0


if __name__ == "__main__":
    sys.exit(main())
