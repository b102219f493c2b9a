"""The audio checks (plugins/module_utils/audio_metrics.py) on synthetic signals and on real espeak-ng speech."""

from __future__ import annotations

import math
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import (
    DEFAULT_LIMITS,
    check,
    expected_duration_s,
    integrated_loudness,
    k_weighting,
    measure,
    samples_from_pcm,
    samples_from_wav,
    speech_frames,
)

RATE = 24000
TEXT = "The flight is on time, and Gemma is still serving."

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def sine(frequency: float, amplitude: float, seconds: float, rate: int = RATE) -> list[int]:
    return [
        round(amplitude * 32767 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(round(seconds * rate))
    ]


def white_noise(sigma: float, seconds: float, seed: int = 1) -> list[int]:
    """Gaussian noise, sigma as a share of full scale, clipped to 16 bits."""
    rng = random.Random(seed)
    return [max(-32768, min(32767, round(rng.gauss(0.0, sigma * 32768)))) for _ in range(round(seconds * RATE))]


def espeak(text: str = TEXT) -> tuple[list[int], int]:
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=30).stdout
    samples, rate = samples_from_wav(wav)
    return list(samples), rate


# --- ITU-R BS.1770-4 ------------------------------------------------------------------------------


def test_k_weighting_at_48k_is_the_standards_table():
    # ITU-R BS.1770-4 Annex 1, Table 1 (pre-filter, the shelf) and Table 2 (RLB high pass), at 48 kHz.
    (shelf_b, shelf_a), (hp_b, hp_a) = k_weighting(48000)
    assert shelf_b == pytest.approx((1.53512485958697, -2.69169618940638, 1.19839281085285), abs=1e-12)
    assert shelf_a == pytest.approx((-1.69065929318241, 0.73248077421585), abs=1e-12)
    assert hp_b == (1.0, -2.0, 1.0)
    assert hp_a == pytest.approx((-1.99004745483398, 0.99007225036621), abs=1e-12)


def test_a_full_scale_1k_sine_reads_minus_3_01_lkfs():
    # ITU-R BS.1770-4 Annex 1: a 0 dB FS 1 kHz sine in one front channel reads -3.01 LKFS (997 Hz as in
    # EBU Tech 3341's test signals, so the tone is not locked to the sample rate).
    samples = sine(997, 1.0, 3.0, 48000)
    assert integrated_loudness(samples, 48000) == pytest.approx(-3.01, abs=0.01)


# Expected values computed once with pyloudnorm 0.2.0 (numpy 2.4.6, scipy 1.17.1):
# pyloudnorm.Meter(rate, filter_class="DeMan").integrated_loudness(samples / 32768). "DeMan" is its
# filter built from the BS.1770 table at 48 kHz, as here; its default "K-weighting" class reads 0.04-0.09
# LU lower on these signals (an approximated shelf).
PYLOUDNORM_0_2_0 = {
    "sine 1 kHz at -20 dBFS, 3 s": (lambda: sine(1000, 0.1, 3.0), -22.977854),
    "sine 100 Hz at -10 dBFS, 2 s": (lambda: sine(100, 10 ** (-10 / 20), 2.0), -14.793518),
    "two tones 300 Hz + 4 kHz, 2.5 s": (
        lambda: [a + b for a, b in zip(sine(300, 0.2, 2.5), sine(4000, 0.05, 2.5), strict=True)],
        -17.083831,
    ),
    "loud then quiet (relative gate), 4 s": (
        lambda: sine(1000, 0.5, 1.0) + [0] * (2 * RATE) + sine(1000, 0.05, 1.0),
        -9.704261,
    ),
    "white noise sigma 0.03, 2.5 s": (lambda: white_noise(0.03, 2.5), -27.481661),
}


@pytest.mark.parametrize("name", sorted(PYLOUDNORM_0_2_0))
def test_integrated_loudness_agrees_with_pyloudnorm(name):
    make, expected = PYLOUDNORM_0_2_0[name]
    assert integrated_loudness(make(), RATE) == pytest.approx(expected, abs=0.001)


def test_loudness_of_silence_and_of_less_than_one_block_is_none():
    assert integrated_loudness([0] * RATE, RATE) is None
    assert integrated_loudness(sine(1000, 0.5, 0.39), RATE) is None
    # Below the absolute gate (-70 LKFS): a sine of amplitude 2 LSB.
    assert integrated_loudness(sine(1000, 2 / 32767, 2.0), RATE) is None


# --- figures of synthetic signals -----------------------------------------------------------------


def test_silence():
    figures = measure([0] * (3 * RATE), RATE, TEXT)
    assert figures["speech_ratio"] == 0.0
    assert figures["leading_silence_s"] == figures["trailing_silence_s"] == 3.0
    assert figures["loudness_lufs"] is figures["peak_dbfs"] is figures["rms_dbfs"] is None
    problems = check(figures, utterance="short-ack")
    assert "short-ack: speech ratio 0 < 0.5 (min_speech_ratio)" in problems
    assert "short-ack: leading silence 3s > 1s (max_leading_silence_s)" in problems
    assert (
        "short-ack: loudness not measurable (silence: every block under the -70 LKFS gate), limit -35 LUFS "
        "(min_loudness_lufs)"
    ) in problems
    assert sum("loudness" in problem for problem in problems) == 1


def test_white_noise_is_not_speech():
    figures = measure(white_noise(0.03, 3.0), RATE, TEXT)
    assert figures["speech_ratio"] == 0.0
    assert figures["clipping_ratio"] == 0.0
    assert figures["loudness_lufs"] == pytest.approx(-27.5, abs=0.2)
    assert check(figures, utterance="u") == [
        "u: leading silence 3s > 1s (max_leading_silence_s)",
        "u: trailing silence 3s > 1.5s (max_trailing_silence_s)",
        "u: speech ratio 0 < 0.5 (min_speech_ratio)",
    ]


def test_clipped_noise_fails_clipping_and_loudness():
    figures = measure(white_noise(0.5, 3.0), RATE, TEXT)
    # P(|N(0, 0.5)| >= 1) = erfc(2 / sqrt(2)) = 4.55 %
    assert figures["clipping_ratio"] == pytest.approx(math.erfc(2 / math.sqrt(2)), abs=0.003)
    assert figures["peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    problems = check(figures, utterance="long-story")
    assert any(
        p.startswith("long-story: clipping ratio 0.04") and "> 0.001 (max_clipping_ratio)" in p for p in problems
    )
    assert any(p.startswith("long-story: loudness -") and "> -8 LUFS (max_loudness_lufs)" in p for p in problems)


def test_leading_and_trailing_silence_are_measured_to_the_frame():
    samples = [0] * round(1.2 * RATE) + sine(200, 0.3, 1.5) + [0] * round(2.0 * RATE)
    figures = measure(samples, RATE)
    assert figures["leading_silence_s"] == pytest.approx(1.2, abs=0.02)
    assert figures["trailing_silence_s"] == pytest.approx(2.0, abs=0.02)
    assert figures["speech_ratio"] == pytest.approx(1.5 / 4.7, abs=0.01)
    assert "duration_ratio" not in figures  # no text, no expectation
    assert check(figures, utterance="u") == [
        "u: leading silence 1.2s > 1s (max_leading_silence_s)",
        "u: trailing silence 2s > 1.5s (max_trailing_silence_s)",
        "u: speech ratio 0.3191 < 0.5 (min_speech_ratio)",
    ]


def test_short_gaps_inside_speech_count_as_speech_long_ones_do_not():
    burst = sine(200, 0.3, 0.3)
    short_gap = burst + [0] * round(0.08 * RATE) + burst
    long_gap = burst + [0] * round(0.5 * RATE) + burst
    assert all(speech_frames(short_gap, RATE))
    assert sum(speech_frames(long_gap, RATE)) == 30


def test_quiet_background_under_speech_is_not_speech():
    # Background 40 dB under the voice: below the detector's 35 dB range.
    samples = white_noise(0.001, 1.0) + sine(200, 0.3, 1.0) + white_noise(0.001, 1.0)
    figures = measure(samples, RATE)
    assert figures["leading_silence_s"] == pytest.approx(1.0, abs=0.02)
    assert figures["speech_ratio"] == pytest.approx(1 / 3, abs=0.01)


def test_duration_against_the_text():
    assert expected_duration_s(TEXT) == pytest.approx(len(TEXT) * 0.06)
    assert expected_duration_s("Yes.") == 0.5  # one word still takes half a second
    assert expected_duration_s("  spaced   out  ") == pytest.approx(len("spaced out") * 0.06)
    figures = measure(sine(200, 0.3, 6.5), RATE, TEXT)
    assert figures["duration_ratio"] == pytest.approx(6.5 / 3.0, abs=1e-3)
    assert check(figures, utterance="u") == ["u: duration ratio 2.1667× > 2× (max_duration_ratio)"]


def test_limits_override_none_skips_unknown_refuses():
    figures = measure([0] * RATE, RATE, "Yes, ready.")
    assert check(figures, {"min_speech_ratio": None, "max_leading_silence_s": None, "max_trailing_silence_s": None,
                           "min_loudness_lufs": None, "max_loudness_lufs": None}) == []  # fmt: skip
    only_duration = {**{k: None for k in DEFAULT_LIMITS}, "max_duration_ratio": 1.5}
    assert check(figures, only_duration) == ["utterance: duration ratio 1.5152× > 1.5× (max_duration_ratio)"]
    with pytest.raises(ValueError, match="unknown audio limits: max_silence"):
        check(figures, {"max_silence": 1})


def test_audio_shorter_than_a_loudness_block_says_so():
    problems = check(measure(sine(200, 0.3, 0.3), RATE, "Hi."), utterance="u")
    assert "u: loudness not measurable (shorter than one 400 ms block), limit -35 LUFS (min_loudness_lufs)" in problems


def test_empty_audio():
    figures = measure([], RATE, TEXT)
    assert figures["duration_s"] == 0.0
    assert figures["duration_ratio"] == 0.0
    assert "u: duration ratio 0× < 0.5× (min_duration_ratio)" in check(figures, utterance="u")


def test_pcm_and_wav_decoding():
    pcm = struct.pack("<4h", 0, 1000, -32768, 32767) + b"\x01"  # a dangling byte is dropped
    assert list(samples_from_pcm(pcm)) == [0, 1000, -32768, 32767]
    stereo = struct.pack("<4h", 1, -1, 2, -2)
    wav = (
        b"RIFF" + struct.pack("<I", 36 + len(stereo)) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 16000, 64000, 4, 16)
        + b"data" + struct.pack("<I", len(stereo)) + stereo
    )  # fmt: skip
    samples, rate = samples_from_wav(wav)
    assert (list(samples), rate) == ([1, 2], 16000)
    with pytest.raises(ValueError, match="RIFF"):
        samples_from_wav(b"not a wav file at all")


# --- real speech ----------------------------------------------------------------------------------


@needs_espeak
def test_espeak_speech_passes_every_check():
    samples, rate = espeak()
    assert rate == 22050  # espeak-ng's own rate; the checks take any rate
    figures = measure(samples, rate, TEXT)
    assert check(figures, utterance="medium-status") == [], figures
    assert 0.7 < figures["speech_ratio"] <= 1.0
    assert -30 < figures["loudness_lufs"] < -12


@needs_espeak
def test_truncated_speech_fails_the_duration_ratio_only():
    samples, rate = espeak()
    figures = measure(samples[: len(samples) * 4 // 10], rate, TEXT)
    problems = check(figures, utterance="medium-status")
    assert len(problems) == 1
    assert problems[0].startswith("medium-status: duration ratio 0.")
    assert problems[0].endswith("< 0.5× (min_duration_ratio)")


# --- the controller's model VAD (optional: numpy, onnxruntime, silero-vad's packaged ONNX model) ---


def model_vad_available() -> bool:
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
        from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import silero_model_path

        silero_model_path()
    except (ImportError, RuntimeError):
        return False
    return True


needs_model_vad = pytest.mark.skipif(not model_vad_available(), reason="numpy/onnxruntime/silero-vad not installed")


@needs_model_vad
@needs_espeak
def test_model_vad_hears_espeak_speech():
    from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import model_speech

    samples, rate = espeak()
    figures = {**measure(samples, rate, TEXT), **model_speech(samples, rate)}
    assert figures["model_speech_ratio"] > 0.7
    assert check(figures, utterance="medium-status") == []


@needs_model_vad
@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(lambda: sine(210, 0.3, 3.0), id="steady tone (passes the frame detector)"),
        pytest.param(lambda: white_noise(0.03, 3.0), id="white noise"),
        pytest.param(lambda: [0] * (3 * RATE), id="silence"),
    ],
)
def test_model_vad_rejects_what_is_not_a_voice(signal):
    from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import model_speech

    figures = model_speech(signal(), RATE)
    assert figures["model_speech_ratio"] < 0.1
    problems = check(figures, utterance="u")
    assert len(problems) == 1 and problems[0].startswith("u: model speech ratio 0")
    assert problems[0].endswith("< 0.5 (min_model_speech_ratio)")


def test_a_tone_passes_the_stdlib_checks():
    # Why the model VAD exists: a steady tone has a voice's level and zero crossings.
    assert check(measure(sine(210, 0.3, 3.0), RATE, TEXT)) == []


def test_model_vad_without_silero_vad_says_so(monkeypatch):
    import importlib.metadata

    from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import silero_model_path

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(RuntimeError, match="model VAD: silero-vad is not installed"):
        silero_model_path()


def test_the_role_documents_every_audio_limit():
    """voxtral_service_audio_limits' argument spec lists exactly the limits audio_metrics knows (kept in step)."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    spec = yaml.safe_load((root / "roles" / "voxtral_service" / "meta" / "argument_specs.yml").read_text())
    option = spec["argument_specs"]["main"]["options"]["voxtral_service_audio_limits"]
    assert set(option["options"]) == set(DEFAULT_LIMITS)
