"""Objective checks of synthesized speech: is there a voice, is it whole, is it clean and at a sane level.

Pure standard library: shipped to the Spark with the latency gate (``from …module_utils.audio_metrics
import measure, check``) and run by the host's own Python 3.10+ (no numpy there), on the PCM the gate
already receives. Input is 16-bit signed mono samples (``array('h')`` or any int sequence) and their rate.

Figures of one utterance (``measure``):
- ``duration_s``; ``expected_duration_s`` from the text and ``duration_ratio`` (audio / expected);
- ``peak_dbfs``, ``rms_dbfs`` (dB relative to full scale, ``None`` for digital silence);
- ``clipping_ratio``: share of samples at the int16 rails;
- a frame-energy voice detector (20 ms frames): a frame is speech when its level is above an absolute
  floor and within ``SPEECH_RANGE_DB`` of the loudest frame, and its zero-crossing rate is below that of
  white noise; gaps shorter than ``SPEECH_GAP_S`` inside speech count as speech (stop closures).
  It gives ``speech_ratio``, ``leading_silence_s``, ``trailing_silence_s``;
- ``loudness_lufs``: ITU-R BS.1770-4 integrated loudness (K-weighting, 400 ms blocks with 75 % overlap,
  absolute gate -70 LKFS, relative gate -10 LU), ``None`` when every block is below the absolute gate.

``check(figures, limits, utterance)`` gives one message per failed limit, naming the utterance, the
figure and the limit; ``DEFAULT_LIMITS`` holds the defaults a role's variables start from.

On the controller only, ``model_speech(samples, rate)`` adds ``model_speech_ratio`` from silero-vad's
packaged ONNX model (needs numpy, onnxruntime and the silero-vad distribution's model file, imported only
there): it tells a voice from a steady tone or coloured noise, which the frame detector above cannot.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections.abc import Sequence

FULL_SCALE = 32768.0
# int16 rails: a sample here was (very likely) clipped on the way to 16 bits.
CLIP_LEVEL = 32767

FRAME_S = 0.02
# Below this a frame is silence whatever the rest of the utterance does (a quiet room on a 16-bit file).
SPEECH_FLOOR_DBFS = -50.0
# Speech frames lie within this range of the loudest frame; quieter ones are breath or background.
SPEECH_RANGE_DB = 35.0
# White noise crosses zero on half its samples; voiced speech at 24 kHz on a few per cent, sibilants on
# up to about a third: above this a frame is noise, not speech (Rabiner & Schafer, "Digital Processing of
# Speech Signals", 1978, sect. 4.5: energy and zero-crossing rate endpoint detection).
NOISE_ZERO_CROSSING_RATE = 0.4
SPEECH_GAP_S = 0.1

# Expected duration: 0.06 s per character of text (about 16 characters or 165 words a minute, the pace
# of read English, which espeak-ng 1.51's default 175 wpm also gives); one word alone still takes half a
# second with its onset and release. The ratio's limits are wide because pace varies by voice and language.
SECONDS_PER_CHAR = 0.06
MIN_EXPECTED_S = 0.5

# ITU-R BS.1770-4 Annex 1: 400 ms gating blocks, 75 % overlap, absolute gate -70 LKFS, relative gate -10 LU,
# loudness = -0.691 + 10 log10(mean square of the K-weighted signal).
LOUDNESS_BLOCK_S = 0.4
LOUDNESS_STEP_S = 0.1
ABSOLUTE_GATE_LKFS = -70.0
RELATIVE_GATE_LU = -10.0
LOUDNESS_OFFSET_DB = -0.691

# silero-vad's own default speech threshold (silero-vad 6.2.3 utils_vad.py get_speech_timestamps).
MODEL_SPEECH_THRESHOLD = 0.5
# silero-vad 6.2.3 utils_vad.py OnnxWrapper: 512-sample windows at 16 kHz, each with the previous 64 as context.
MODEL_RATE = 16000
MODEL_WINDOW = 512
MODEL_CONTEXT = 64
MODEL_FILE = "silero_vad/data/silero_vad.onnx"

DEFAULT_LIMITS = {
    "max_leading_silence_s": 1.0,
    "max_trailing_silence_s": 1.5,
    "min_speech_ratio": 0.5,
    "max_clipping_ratio": 0.001,
    # The seed normalised its reference to -16 LUFS; TTS output usually lies within a few LU of it.
    "min_loudness_lufs": -35.0,
    "max_loudness_lufs": -8.0,
    "min_duration_ratio": 0.5,
    "max_duration_ratio": 2.0,
    # Checked only where model_speech ran (the controller); a VAD model's speech share of an utterance.
    "min_model_speech_ratio": 0.5,
}


def samples_from_pcm(pcm: bytes) -> array:
    """Raw s16le mono (the gate's streamed ``pcm``) as int16 samples; a dangling odd byte is dropped."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def samples_from_wav(data: bytes) -> tuple[array, int]:
    """A 16-bit PCM WAV's first channel and its rate (stdlib ``wave``; streamed WAVs with a bogus size too)."""
    start = data.find(b"data", 12)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or start < 0:
        raise ValueError("not a RIFF/WAVE file with a data chunk")
    fmt = data.find(b"fmt ", 12)
    if fmt < 0:
        raise ValueError("WAV without a fmt chunk")
    audio_format = int.from_bytes(data[fmt + 8 : fmt + 10], "little")
    channels = int.from_bytes(data[fmt + 10 : fmt + 12], "little")
    rate = int.from_bytes(data[fmt + 12 : fmt + 16], "little")
    bits = int.from_bytes(data[fmt + 22 : fmt + 24], "little")
    if audio_format != 1 or bits != 16:
        raise ValueError(f"16-bit PCM WAV expected (format {audio_format}, {bits} bits)")
    declared = int.from_bytes(data[start + 4 : start + 8], "little")
    body = data[start + 8 : start + 8 + declared]
    samples = samples_from_pcm(body)
    return (samples[::channels] if channels > 1 else samples), rate


def _dbfs(mean_square: float) -> float | None:
    return 10 * math.log10(mean_square / FULL_SCALE**2) if mean_square > 0 else None


def _biquad(x: Sequence[float], b: tuple[float, float, float], a: tuple[float, float]) -> list[float]:
    """Direct form I, a0 = 1."""
    b0, b1, b2 = b
    a1, a2 = a
    x1 = x2 = y1 = y2 = 0.0
    out = []
    append = out.append
    for x0 in x:
        y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        append(y0)
        x2, x1, y2, y1 = x1, x0, y1, y0
    return out


def k_weighting(rate: int) -> tuple[tuple, tuple]:
    """The two K-weighting stages (shelf, then high pass) at any rate, as (b, a) pairs with a0 = 1.

    BS.1770-4 Annex 1 Tables 1 and 2 give them at 48 kHz only; these analogue prototypes reproduce those
    coefficients at 48 kHz and give the same response at other rates (libebur128 1.2.6 ebur128.c
    ebur128_init_filter, as used by ffmpeg's ebur128 filter).
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (
        ((vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0),
        (2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0),
    )
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    high_pass = ((1.0, -2.0, 1.0), (2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0))
    return shelf, high_pass


def integrated_loudness(samples: Sequence[int], rate: int) -> float | None:
    """BS.1770-4 integrated loudness of a mono signal in LUFS (full scale = 1.0), ``None`` when nothing
    passes the absolute gate (silence, or shorter than one 400 ms block)."""
    (b, a), (hb, ha) = k_weighting(rate)
    scale = 1 / FULL_SCALE
    weighted = _biquad(_biquad([s * scale for s in samples], b, a), hb, ha)
    step = round(LOUDNESS_STEP_S * rate)
    per_block = round(LOUDNESS_BLOCK_S / LOUDNESS_STEP_S)
    # Mean squares of 100 ms steps; a block is four consecutive steps (75 % overlap), only whole blocks.
    steps = [math.fsum(map(operator.mul, chunk, chunk)) for chunk in _chunks(weighted, step)]
    if len(weighted) % step:
        steps.pop()
    blocks = [math.fsum(steps[i : i + per_block]) / (step * per_block) for i in range(len(steps) - per_block + 1)]

    def lufs(mean_square: float) -> float:
        return LOUDNESS_OFFSET_DB + 10 * math.log10(mean_square) if mean_square > 0 else -math.inf

    gated = [z for z in blocks if lufs(z) > ABSOLUTE_GATE_LKFS]
    if not gated:
        return None
    relative_gate = lufs(math.fsum(gated) / len(gated)) + RELATIVE_GATE_LU
    gated = [z for z in gated if lufs(z) > relative_gate]
    return lufs(math.fsum(gated) / len(gated))


def _chunks(values: Sequence, size: int):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def speech_frames(samples: Sequence[int], rate: int) -> list[bool]:
    """Per 20 ms frame: speech or not (the frame-energy and zero-crossing detector described above)."""
    size = max(1, round(FRAME_S * rate))
    levels: list[float | None] = []
    noisy: list[bool] = []
    for frame in _chunks(samples, size):
        levels.append(_dbfs(sum(map(operator.mul, frame, frame)) / len(frame)))
        signs = [s < 0 for s in frame]
        crossings = sum(map(operator.ne, signs, signs[1:]))
        noisy.append(crossings > NOISE_ZERO_CROSSING_RATE * max(1, len(frame) - 1))
    loud = [level for level, is_noise in zip(levels, noisy, strict=True) if level is not None and not is_noise]
    if not loud:
        return [False] * len(levels)
    threshold = max(SPEECH_FLOOR_DBFS, max(loud) - SPEECH_RANGE_DB)
    speech = [
        level is not None and level > threshold and not is_noise for level, is_noise in zip(levels, noisy, strict=True)
    ]
    # Fill short gaps between speech frames (closures, a breath between words).
    max_gap = round(SPEECH_GAP_S / FRAME_S)
    last = None
    for index, is_speech in enumerate(speech):
        if not is_speech:
            continue
        if last is not None and 1 < index - last <= max_gap + 1:
            speech[last + 1 : index] = [True] * (index - last - 1)
        last = index
    return speech


def expected_duration_s(text: str, seconds_per_char: float = SECONDS_PER_CHAR) -> float:
    return max(MIN_EXPECTED_S, len(" ".join(text.split())) * seconds_per_char)


def measure(samples: Sequence[int], rate: int, text: str | None = None) -> dict:
    """Every figure of one utterance (see the module's docstring); ``text`` gives the duration ratio."""
    n = len(samples)
    duration = n / rate if rate else 0.0
    figures: dict = {"duration_s": round(duration, 4), "sample_rate": rate}
    if text is not None:
        expected = expected_duration_s(text)
        figures["expected_duration_s"] = round(expected, 4)
        figures["duration_ratio"] = round(duration / expected, 4)
    if not n:
        figures.update(
            peak_dbfs=None,
            rms_dbfs=None,
            clipping_ratio=0.0,
            speech_ratio=0.0,
            leading_silence_s=0.0,
            trailing_silence_s=0.0,
            loudness_lufs=None,
        )
        return figures
    highest, lowest = max(samples), min(samples)
    peak = max(highest, -lowest)
    rms = _dbfs(sum(map(operator.mul, samples, samples)) / n)
    clipped = sum(1 for s in samples if s >= CLIP_LEVEL or s <= -CLIP_LEVEL)
    frames = speech_frames(samples, rate)
    frame_s = FRAME_S if rate else 0.0
    if any(frames):
        first = frames.index(True)
        last = len(frames) - 1 - frames[::-1].index(True)
        leading, trailing = first * frame_s, max(0.0, duration - (last + 1) * frame_s)
    else:
        leading = trailing = duration
    loudness = integrated_loudness(samples, rate)
    figures.update(
        peak_dbfs=round(20 * math.log10(peak / FULL_SCALE), 2) if peak else None,
        rms_dbfs=None if rms is None else round(rms, 2),
        clipping_ratio=round(clipped / n, 6),
        speech_ratio=round(sum(frames) / len(frames), 4),
        leading_silence_s=round(leading, 3),
        trailing_silence_s=round(trailing, 3),
        loudness_lufs=None if loudness is None else round(loudness, 2),
    )
    return figures


# (figure, limit, how it fails, unit) for every limit; a figure of None fails its limits (no audio to judge).
_RULES = (
    ("leading_silence_s", "max_leading_silence_s", operator.gt, ">", "s"),
    ("trailing_silence_s", "max_trailing_silence_s", operator.gt, ">", "s"),
    ("speech_ratio", "min_speech_ratio", operator.lt, "<", ""),
    ("clipping_ratio", "max_clipping_ratio", operator.gt, ">", ""),
    ("loudness_lufs", "min_loudness_lufs", operator.lt, "<", " LUFS"),
    ("loudness_lufs", "max_loudness_lufs", operator.gt, ">", " LUFS"),
    ("duration_ratio", "min_duration_ratio", operator.lt, "<", "×"),
    ("duration_ratio", "max_duration_ratio", operator.gt, ">", "×"),
    ("model_speech_ratio", "min_model_speech_ratio", operator.lt, "<", ""),
)


def check(figures: dict, limits: dict | None = None, utterance: str = "utterance") -> list[str]:
    """One message per failed limit: ``<utterance>: <figure> <value> <op> <limit> (<limit name>)``.

    A limit set to ``None`` is not checked; a figure absent from ``figures`` (no text, so no duration
    ratio) is not checked either; a figure that is ``None`` (no measurable loudness) fails.
    """
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    unknown = sorted(set(limits) - set(DEFAULT_LIMITS))
    if unknown:
        raise ValueError(f"unknown audio limits: {', '.join(unknown)} (known: {', '.join(DEFAULT_LIMITS)})")
    problems = []
    unmeasurable = set()
    for figure, limit_name, fails, symbol, unit in _RULES:
        limit = limits[limit_name]
        if limit is None or figure not in figures:
            continue
        value = figures[figure]
        name = figure.replace("_", " ").removesuffix(" s").removesuffix(" lufs")
        if value is None:
            if figure not in unmeasurable:
                unmeasurable.add(figure)
                why = (
                    f"shorter than one {LOUDNESS_BLOCK_S * 1000:g} ms block"
                    if figures.get("duration_s", 0.0) < LOUDNESS_BLOCK_S
                    else f"silence: every block under the {ABSOLUTE_GATE_LKFS:g} LKFS gate"
                )
                problems.append(f"{utterance}: {name} not measurable ({why}), limit {limit:g}{unit} ({limit_name})")
        elif fails(value, limit):
            problems.append(f"{utterance}: {name} {value:g}{unit} {symbol} {limit:g}{unit} ({limit_name})")
    return problems


def silero_model_path() -> str:
    """The ONNX model inside the installed silero-vad distribution, found without importing the package
    (its __init__ imports torch, which this path does not need)."""
    import importlib.metadata

    try:
        files = importlib.metadata.files("silero-vad") or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("model VAD: silero-vad is not installed") from None
    for file in files:
        if str(file).replace("\\", "/").endswith(MODEL_FILE):
            return str(file.locate())
    raise RuntimeError(f"model VAD: the silero-vad distribution has no {MODEL_FILE}")


_SESSIONS: dict = {}


def model_speech(samples: Sequence[int], rate: int, model_path: str | None = None) -> dict:
    """silero-vad's speech probability per 32 ms window: ``model_speech_ratio`` (windows at or above
    MODEL_SPEECH_THRESHOLD) and ``model_speech_max_probability``. Controller only: numpy + onnxruntime."""
    import numpy as np
    import onnxruntime

    path = model_path or silero_model_path()
    session = _SESSIONS.get(path)
    if session is None:
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1  # one core per utterance
        session = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        _SESSIONS[path] = session
    signal = np.asarray(samples, dtype=np.float32) / FULL_SCALE
    if rate != MODEL_RATE and len(signal):
        # Linear interpolation to 16 kHz: what speech carries above 8 kHz is too weak to mislead the model.
        times = np.arange(int(len(signal) * MODEL_RATE / rate)) * (rate / MODEL_RATE)
        signal = np.interp(times, np.arange(len(signal)), signal).astype(np.float32)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, MODEL_CONTEXT), dtype=np.float32)
    sample_rate = np.array(MODEL_RATE, dtype=np.int64)
    probabilities = []
    for start in range(0, len(signal) - MODEL_WINDOW + 1, MODEL_WINDOW):
        window = np.concatenate([context, signal[None, start : start + MODEL_WINDOW]], axis=1)
        output, state = session.run(None, {"input": window, "state": state, "sr": sample_rate})
        context = window[:, -MODEL_CONTEXT:]
        probabilities.append(float(output[0, 0]))
    if not probabilities:
        return {"model_speech_ratio": 0.0, "model_speech_max_probability": 0.0}
    speech = sum(1 for p in probabilities if p >= MODEL_SPEECH_THRESHOLD)
    return {
        "model_speech_ratio": round(speech / len(probabilities), 4),
        "model_speech_max_probability": round(max(probabilities), 4),
    }
