"""The verdict's objective A/B numbers: what the gate heard per system and utterance, the speaker
similarity (an optional extra), and ab.html's pictures (waveform, spectrogram, TTFA/RTF chart).

The heard figures are audio_metrics.measure's on real espeak-ng speech (skipped without espeak-ng) and on
silence; the pages are rendered from WAVs in a run's artifacts folder by the flight_verdict module.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import struct
import subprocess
import sys
import types
import wave
import zlib
from array import array

import jsonschema
import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils import audio_pictures, speaker_similarity
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import (
    DEFAULT_LIMITS,
    check,
    measure,
    samples_from_wav,
)
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import audio_section, build_verdict
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict_pages import render_ab_markdown, render_report
from test_verdict import BENCHMARK, FILES, FLIGHT, SCHEMA, module_args, run_module

VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
TEXTS = {u["id"]: u["text"] for u in BENCHMARK["utterances"]}


def espeak_wav(text: str) -> bytes:
    """espeak-ng's speech as a WAV with its sizes fixed (its --stdout leaves placeholders)."""
    raw = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True, timeout=30).stdout
    samples, rate = samples_from_wav(raw)
    return to_wav(samples, rate)


def to_wav(samples, rate: int) -> bytes:
    body = array("h", samples)
    if sys.byteorder == "big":
        body.byteswap()
    data = body.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    return header + data


def heard(samples, rate, text, limits=None):
    """A gate sample's audio part: the figures and the failures, as the latency gate records them."""
    figures = measure(samples, rate, text)
    return {"audio": figures, "audio_failures": check(figures, limits, "utterance")}


def with_audio(benchmark: dict, voxtral: dict, other: dict) -> dict:
    """BENCHMARK with every successful sample carrying what was heard (``{utterance id: audio part}``)."""
    benchmark = copy.deepcopy(benchmark)
    for runs, parts in ((benchmark["runs"], voxtral), (benchmark["ab"]["runs"], other)):
        for run in runs:
            run["audio"] = {"limits": dict(DEFAULT_LIMITS), "failed_requests": 0, "failures": []}
            for sample in run["samples"]:
                sample.update(copy.deepcopy(parts[run["utterance"]]))
    return benchmark


def make_speech() -> dict:
    """{utterance id: (samples, rate, wav bytes)} of espeak-ng speech for the benchmark's texts."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = {}
    for uid, text in TEXTS.items():
        wav = espeak_wav(text)
        samples, rate = samples_from_wav(wav)
        out[uid] = (samples, rate, wav)
    return out


def make_heard_benchmark(spoken: dict) -> dict:
    """Voxtral speaks both utterances; the other system is silent on samantha-preview."""
    voxtral = {uid: heard(s, r, TEXTS[uid]) for uid, (s, r, _wav) in spoken.items()}
    other = dict(voxtral)
    other["samantha-preview"] = heard([0] * 24000 * 3, 24000, TEXTS["samantha-preview"])
    return with_audio(BENCHMARK, voxtral, other)


@pytest.fixture(scope="module")
def speech():
    return make_speech()


@pytest.fixture(scope="module")
def heard_benchmark(speech):
    return make_heard_benchmark(speech)


# -- the audio section of the verdict ------------------------------------------------------------------------


def test_the_verdict_carries_each_systems_figures_and_checks_per_utterance(heard_benchmark, speech):
    verdict = build_verdict(**{**FLIGHT, "benchmark": heard_benchmark}, timestamp="2026-11-25T18:21:00Z", files=FILES)
    VALIDATOR.validate(verdict)
    assert verdict["schema_version"] == 2
    voxtral, other = verdict["audio"]["systems"]
    assert (voxtral["label"], other["label"]) == ("voxtral", "chatterbox")
    assert voxtral["checked"] and voxtral["passed"] is True and voxtral["failed_requests"] == 0
    # Every answer heard: 3 at concurrency 1 and 4 at concurrency 4, per utterance.
    assert voxtral["requests"] == 14
    short = voxtral["utterances"]["short-ack"]
    samples, rate, _wav = speech["short-ack"]
    figures = measure(samples, rate, TEXTS["short-ack"])
    for name in ("speech_ratio", "leading_silence_s", "trailing_silence_s", "clipping_ratio", "loudness_lufs"):
        assert short["figures"][name] == pytest.approx(figures[name])
    assert short["figures"]["duration_ratio"] == pytest.approx(figures["duration_ratio"])
    assert {c["check"] for c in short["checks"]} == {k for k in DEFAULT_LIMITS if k != "min_model_speech_ratio"}
    assert all(c["passed"] and c["failed_requests"] == 0 for c in short["checks"])
    assert short["speaker_similarity"] is None

    # The silent answer fails its checks, by name, figure, limit and count.
    silent = other["utterances"]["samantha-preview"]
    assert other["passed"] is False and silent["passed"] is False
    assert silent["failed_requests"] == silent["requests"] == 3
    failed = {c["check"]: c for c in silent["checks"] if not c["passed"]}
    assert {"min_speech_ratio", "max_leading_silence_s", "min_loudness_lufs"} <= set(failed)
    assert failed["min_speech_ratio"] | {"figure": "x"} == {
        "check": "min_speech_ratio",
        "figure": "x",
        "limit": 0.5,
        "value": 0.0,
        "worst": 0.0,
        "passed": False,
        "failed_requests": 3,
    }
    assert failed["min_loudness_lufs"]["value"] is None  # not measurable: fails, no number
    assert any("speech ratio 0 < 0.5 (min_speech_ratio)" in m for m in silent["failures"])
    assert other["utterances"]["short-ack"]["passed"] is True

    similarity = verdict["audio"]["speaker_similarity"]
    assert similarity == {"measured": False, "reason": "no reference voice", "model": None, "reference": None}


def test_a_benchmark_the_gate_did_not_listen_to_says_not_heard():
    section = audio_section(BENCHMARK)
    assert [s["checked"] for s in section["systems"]] == [False, False]
    assert all(s["utterances"] == {} and s["passed"] is None for s in section["systems"])
    assert audio_section(None) == {
        "systems": [],
        "speaker_similarity": {"measured": False, "reason": "no reference voice", "model": None, "reference": None},
    }


def test_the_limits_the_gate_applied_are_the_ones_judged(heard_benchmark):
    benchmark = copy.deepcopy(heard_benchmark)
    for run in benchmark["runs"]:
        run["audio"]["limits"] = {**DEFAULT_LIMITS, "min_speech_ratio": 0.99, "max_clipping_ratio": None}
    voxtral = audio_section(benchmark)["systems"][0]
    short = voxtral["utterances"]["short-ack"]
    speech_check = next(c for c in short["checks"] if c["check"] == "min_speech_ratio")
    assert (speech_check["limit"], speech_check["passed"]) == (0.99, False)
    assert "max_clipping_ratio" not in {c["check"] for c in short["checks"]}
    assert voxtral["limits"]["max_clipping_ratio"] is None


def test_the_report_and_the_sheet_show_the_audio_figures(heard_benchmark):
    verdict = build_verdict(**{**FLIGHT, "benchmark": heard_benchmark}, timestamp="2026-11-25T18:21:00Z", files=FILES)
    report = render_report(verdict, heard_benchmark)
    assert "## Audio heard (every answer, the latency gate's audio checks)" in report
    assert "| voxtral audio | 14 of 14 answers passed every check |" in report
    assert "| chatterbox audio | 3 of 6 answers passed every check |" in report
    limits = "limits: leading silence ≤ 1 s, trailing silence ≤ 1.5 s, speech ratio ≥ 0.5, clipping ratio ≤ 0.001"
    assert limits in report
    assert "✗ loudness not measurable (≥ -35 LUFS; 3 answers failed)" in report
    assert "Speaker similarity to the reference voice: no reference voice." in report
    row = next(line for line in report.splitlines() if line.startswith("| chatterbox | samantha-preview |"))
    assert "✗ speech ratio 0.00 (≥ 0.5; worst 0.00, 3 answers failed)" in row
    row = r"^\| voxtral \| short-ack \| 7 \| 0\.\d\d \| 0\.\d\d / 0\.\d\d \|.* \| ✓ 8 of 8 checks \|$"
    assert re.search(row, report, re.M)
    sheet = render_ab_markdown(verdict, heard_benchmark)
    assert "speech 0." in sheet and " LUFS" in sheet and "✓ 8 of 8 checks" in sheet


# -- speaker similarity (optional) ------------------------------------------------------------------------


def test_speaker_similarity_without_resemblyzer_says_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # import resemblyzer -> ImportError
    result = speaker_similarity.measure(str(tmp_path / "ref.wav"), {"voxtral": {"a": "x.wav"}}, "wav/reference.wav")
    assert result == {
        "measured": False,
        "reason": "not measured (resemblyzer not installed)",
        "model": None,
        "reference": "wav/reference.wav",
        "scores": {},
    }
    assert speaker_similarity.measure(None, {})["reason"].startswith("not measured (no reference voice configured")


def fake_resemblyzer(embeddings: dict):
    """A stand-in for resemblyzer's API (preprocess_wav, VoiceEncoder.embed_utterance) with fixed embeddings."""
    module = types.ModuleType("resemblyzer")

    def preprocess_wav(path):
        return str(path).rsplit("/", 1)[-1]

    class VoiceEncoder:
        def __init__(self, device=None, verbose=True):
            assert (device, verbose) == ("cpu", False)

        def embed_utterance(self, wav):
            return embeddings[wav]

    module.preprocess_wav = preprocess_wav
    module.VoiceEncoder = VoiceEncoder
    return module


def test_speaker_similarity_is_the_cosine_of_the_embeddings(monkeypatch):
    embeddings = {"reference.wav": [1.0, 0.0, 0.0], "same.wav": [2.0, 0.0, 0.0], "half.wav": [1.0, 1.0, 0.0]}
    monkeypatch.setitem(sys.modules, "resemblyzer", fake_resemblyzer(embeddings))
    outputs = {"voxtral": {"a": "/r/wav/half.wav", "b": "/r/wav/gone.wav"}, "chatterbox": {"a": "/r/wav/same.wav"}}
    result = speaker_similarity.measure("/r/wav/reference.wav", outputs, "wav/reference.wav")
    assert result["measured"] is True and result["reason"] is None
    assert result["scores"] == {"voxtral": {"a": 0.7071, "b": None}, "chatterbox": {"a": 1.0}}
    assert result["model"].startswith("resemblyzer ")


def resemblyzer_importable() -> bool:
    try:
        import resemblyzer  # noqa: F401
    except ImportError:
        return False
    return True


@needs_espeak
@pytest.mark.skipif(not resemblyzer_importable(), reason="resemblyzer (the optional extra) is not installed")
def test_real_resemblyzer_scores_the_same_voice_above_another_voice(tmp_path):
    """The real encoder on espeak-ng speech: its own voice on another line scores above its female variant."""
    lines = {
        "reference": ("en-us", "The quick brown fox jumps over the lazy dog, and then it rests in the shade."),
        "same": ("en-us", "I will be right there, give me just a moment to finish this."),
        "other": ("en-us+f3", "I will be right there, give me just a moment to finish this."),
    }
    for name, (voice, text) in lines.items():
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(tmp_path / f"{name}.wav"), text], check=True, timeout=30)
    outputs = {"espeak": {name: str(tmp_path / f"{name}.wav") for name in ("same", "other")}}
    result = speaker_similarity.measure(str(tmp_path / "reference.wav"), outputs, "reference.wav")
    assert result["measured"] is True, result["reason"]
    scores = result["scores"]["espeak"]
    assert 0 <= scores["other"] < scores["same"] <= 1


def write_run(dest, speech, with_reference=True):
    """A run's artifacts as tts_benchmark leaves them: the WAVs of both systems (and the reference)."""
    (dest / "wav").mkdir(parents=True, exist_ok=True)
    for uid, (_s, _r, wav) in speech.items():
        (dest / "wav" / f"voxtral-{uid}.wav").write_bytes(wav)
    (dest / "wav" / "chatterbox-short-ack.wav").write_bytes(speech["short-ack"][2])
    if with_reference:
        (dest / "wav" / "reference.wav").write_bytes(speech["samantha-preview"][2])


def benchmark_with_reference(heard_benchmark):
    benchmark = copy.deepcopy(heard_benchmark)
    benchmark["ab"]["reference"]["wav"] = "wav/reference.wav"
    return benchmark


def test_module_measures_the_similarity_of_the_kept_wavs_when_resemblyzer_is_there(
    monkeypatch, tmp_path, speech, heard_benchmark
):
    dest = tmp_path / "artifacts" / "titan" / "R1"
    write_run(dest, speech)
    embeddings = {
        "reference.wav": [1.0, 0.0],
        "voxtral-short-ack.wav": [0.6, 0.8],
        "voxtral-samantha-preview.wav": [1.0, 0.0],
        "chatterbox-short-ack.wav": [1.0, 1.0],
    }
    monkeypatch.setitem(sys.modules, "resemblyzer", fake_resemblyzer(embeddings))
    result = run_module(module_args(tmp_path, benchmark=benchmark_with_reference(heard_benchmark)))
    verdict = result["verdict"]
    VALIDATOR.validate(verdict)
    similarity = verdict["audio"]["speaker_similarity"]
    assert similarity["measured"] is True and similarity["reference"] == "wav/reference.wav"
    voxtral, other = verdict["audio"]["systems"]
    assert voxtral["utterances"]["short-ack"]["speaker_similarity"] == 0.6
    assert voxtral["utterances"]["samantha-preview"]["speaker_similarity"] == 1.0
    assert other["utterances"]["short-ack"]["speaker_similarity"] == 0.7071
    assert other["utterances"]["samantha-preview"]["speaker_similarity"] is None  # no WAV kept
    assert "wav/reference.wav" in verdict["artifacts"]["wavs"]
    page = (dest / "ab.html").read_text(encoding="utf-8")
    assert "similarity to the reference 0.60" in page
    assert "<h2>Reference voice</h2>" in page and 'src="wav/reference.wav"' in page


def test_module_without_resemblyzer_reports_not_measured(monkeypatch, tmp_path, speech, heard_benchmark):
    dest = tmp_path / "artifacts" / "titan" / "R1"
    write_run(dest, speech)
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    verdict = run_module(module_args(tmp_path, benchmark=benchmark_with_reference(heard_benchmark)))["verdict"]
    assert verdict["audio"]["speaker_similarity"]["reason"] == "not measured (resemblyzer not installed)"
    assert "not measured (resemblyzer not installed)" in (dest / "report.md").read_text(encoding="utf-8")
    # A reference configured but not kept in the artifacts says so.
    verdict = run_module(module_args(tmp_path, benchmark=heard_benchmark))["verdict"]
    assert verdict["audio"]["speaker_similarity"]["reason"] == (
        "not measured (the reference voice was not fetched into the run's artifacts)"
    )


# -- the pictures -------------------------------------------------------------------------------------------


def png_size(data_uri: str) -> tuple[int, int]:
    data = base64.b64decode(data_uri.split("base64,", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # Every chunk's CRC is right, and the pixels inflate to height rows of 1 + 3 * width bytes.
    offset, pixels = 8, b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        assert struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])[0] == zlib.crc32(kind + body)
        pixels += body if kind == b"IDAT" else b""
        offset += 12 + length
    assert len(zlib.decompress(pixels)) == height * (1 + 3 * width)
    return width, height


def test_fft_matches_the_discrete_fourier_transform():
    import cmath

    values = [((i * 7) % 5) - 2.0 for i in range(16)]
    slow = [sum(v * cmath.exp(-2j * cmath.pi * k * n / 16) for n, v in enumerate(values)) for k in range(16)]
    fast = audio_pictures.fft(values)
    assert all(abs(a - b) < 1e-9 for a, b in zip(fast, slow, strict=True))


@needs_espeak
def test_the_spectrogram_of_speech_is_a_valid_png_and_the_waveform_an_svg_path(speech):
    samples, rate, _wav = speech["samantha-preview"]
    img = audio_pictures.spectrogram_img(samples, rate, "spectrogram of <voxtral>")
    width, height = png_size(re.search(r'src="([^"]+)"', img).group(1))
    assert (width, height) == (audio_pictures.SPECTROGRAM_COLUMNS, audio_pictures.FFT_SIZE // 2)
    assert 'alt="spectrogram of &lt;voxtral&gt;"' in img
    svg = audio_pictures.waveform_svg(samples, rate, "waveform of <voxtral>")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and '<path d="M0,' in svg
    assert "<title>waveform of &lt;voxtral&gt; (" in svg
    # Speech fills the envelope; silence leaves it a flat line.
    flat = audio_pictures.waveform_svg([0] * 2400, 24000)
    assert re.findall(r",(\d+\.\d)", flat) == ["32.0"] * (2 * audio_pictures.WAVE_WIDTH)
    # A short sound still gives one column.
    assert png_size(re.search(r'src="([^"]+)"', audio_pictures.spectrogram_img([0] * 10, 24000)).group(1)) == (1, 128)


def test_the_chart_has_a_bar_per_system_and_level_and_says_na_for_a_missing_one():
    groups = [("c 1", [("voxtral", 120.0), ("chatterbox", 710.0)]), ("c 4", [("voxtral", 160.0), ("chatterbox", None)])]
    svg = audio_pictures.bar_chart_svg("TTFA <p50>", groups)
    assert svg.count('class="bar"') == 3 and ">n/a</text>" in svg
    assert "TTFA &lt;p50&gt;" in svg and "<p50>" not in svg
    assert ">710.0</text>" in svg and ">chatterbox</text>" in svg


@needs_espeak
def test_module_writes_an_ab_page_with_pictures_and_a_chart_and_rewrites_nothing_unchanged(
    monkeypatch, tmp_path, speech, heard_benchmark
):
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    dest = tmp_path / "artifacts" / "titan" / "R1"
    write_run(dest, speech)
    benchmark = benchmark_with_reference(heard_benchmark)
    (dest / "wav" / "voxtral-samantha-preview.wav").write_bytes(b"not a wav")
    result = run_module(module_args(tmp_path, benchmark=benchmark))
    assert result["changed"] is True
    page = (dest / "ab.html").read_text(encoding="utf-8")
    # 3 kept WAVs of the systems plus the reference; the broken one says why it has no picture.
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="waveform"') == 3
    assert page.count('<img class="spectrogram"') == 3
    assert "no picture: wav/voxtral-samantha-preview.wav could not be read (not a RIFF/WAVE file" in page
    assert page.count('class="chart"') == 2
    assert "Time to first audio p50 (ms)" in page and "Real-time factor p50" in page
    assert '<li class="fail">✗ speech ratio 0.00' in page
    assert '<li class="pass">✓ speech ratio' in page
    assert 'src="http' not in page and "<script" not in page  # self-contained, nothing fetched

    # Idempotent: the pages are rewritten only when their content changes (verdict.json has a timestamp).
    before = {name: (dest / name).stat().st_mtime_ns for name in ("ab.html", "ab.md")}
    run_module(module_args(tmp_path, benchmark=benchmark))
    assert {name: (dest / name).stat().st_mtime_ns for name in before} == before

    # Check mode writes nothing, pages included.
    (dest / "ab.html").unlink()
    assert run_module(module_args(tmp_path, benchmark=benchmark), check_mode=True)["changed"] is False
    assert not (dest / "ab.html").exists()


def test_wav_helpers_round_trip(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(to_wav([0, 1000, -1000, 32767], 24000))
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (24000, 4)
    assert json.dumps(list(samples_from_wav(path.read_bytes())[0])) == "[0, 1000, -1000, 32767]"
