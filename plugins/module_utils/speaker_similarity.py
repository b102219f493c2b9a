"""Speaker similarity: how close each synthesized voice is to the reference voice, on the controller.

An optional extra. It uses resemblyzer's voice encoder (a GE2E speaker-embedding LSTM whose weights,
``pretrained.pt``, ship inside the resemblyzer wheel: nothing is downloaded at run time) when resemblyzer is
importable by the Python that runs the ``flight_verdict`` module, and says ``not measured (resemblyzer not
installed)`` otherwise. It is not in requirements.txt: resemblyzer 0.1.4 needs torch, librosa (numba,
llvmlite, scipy, scikit-learn) and webrtcvad (which imports pkg_resources: setuptools<81), 1.4 GB in a venv
with torch's CPU build (README.md, "Audio figures and pictures in the verdict").

The score is the cosine similarity of two 256-value utterance embeddings; resemblyzer's are "positive and
L2-normed, thus they lay in the range [0, 1]" (its voice_encoder.py), so the score does too. Measured here
(benchmarks/ab_pictures_bench.py, tests/unit/test_verdict_audio.py): espeak-ng's own voice scores about 0.9
against itself on another line, 0.66 against its female variant; utterances under about 1.5 s score low.
"""

from __future__ import annotations

import math

NOT_INSTALLED = "not measured (resemblyzer not installed)"


def _load():
    """resemblyzer's (preprocess_wav, VoiceEncoder), or None when it (or torch under it) cannot be imported."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        return None
    return preprocess_wav, VoiceEncoder


def cosine(first, second) -> float:
    """Cosine similarity of two vectors (any sequence of numbers; numpy arrays too)."""
    a = [float(x) for x in first]
    b = [float(x) for x in second]
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


NO_REFERENCE = "not measured (no reference voice configured: tts_benchmark_ab_reference_path)"


def measure(
    reference: str | None, outputs: dict, reference_name: str | None = None, missing: str = NO_REFERENCE
) -> dict:
    """Each output's similarity to ``reference`` (file paths): ``{measured, reason, model, reference, scores}``.

    ``outputs`` is ``{system label: {utterance id: WAV path}}``; ``scores`` has the same shape with the
    similarity (4 decimals), null for a file that could not be read. ``reference_name`` is how the verdict
    names the reference (its path in the artifacts); ``missing`` is the reason given without a reference.
    """
    result = {"measured": False, "reason": None, "model": None, "reference": reference_name, "scores": {}}
    if not reference:
        result["reason"] = missing
        return result
    loaded = _load()
    if loaded is None:
        result["reason"] = NOT_INSTALLED
        return result
    preprocess_wav, voice_encoder = loaded
    try:
        encoder = voice_encoder("cpu", verbose=False)
        wanted = encoder.embed_utterance(preprocess_wav(reference))
    except Exception as exc:  # an unreadable reference is reported, not fatal to the verdict
        result["reason"] = f"not measured (the reference could not be embedded: {type(exc).__name__}: {exc})"
        return result
    scores = {}
    for label, files in outputs.items():
        scores[label] = {}
        for uid, path in files.items():
            try:
                scores[label][uid] = round(cosine(wanted, encoder.embed_utterance(preprocess_wav(path))), 4)
            except Exception:  # one unreadable output leaves its score null
                scores[label][uid] = None
    result.update(measured=True, model=model_name(), scores=scores)
    return result


def model_name() -> str:
    try:
        import importlib.metadata

        version = importlib.metadata.version("resemblyzer")
    except Exception:  # the name without its version is still true
        version = "?"
    return f"resemblyzer {version} VoiceEncoder (GE2E, 256-d, cosine)"
