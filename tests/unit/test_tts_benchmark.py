"""The tts_benchmark role's utterance set and filters, fed with real latency gate results.

The gate (plugins/modules/latency_gate.py) runs in-process against HTTP servers in threads of the test
process; the filters reshape its loop results, and the verdict's pooled figures must be the gate's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import audio_system, pooled
from ansible_collections.voxtral.deploy.plugins.modules import latency_gate
from http_fixtures import HTTPTestServer, audio_stream, status, streaming

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "tts_benchmark"
_spec = importlib.util.spec_from_file_location(
    "tts_benchmark_filters", ROOT / "plugins" / "filter" / "tts_benchmark.py"
)
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)

# The text of samantha_movie_primary.wav as the seed recorded it (shared/seed/, samantha_references).
SEED_SAMANTHA_PREVIEW = "It's good, it's good. It's really good, it's good. Okay? Listen. Dear Theodore Twombly..."
CHUNK = 4800  # 0.1 s of 24 kHz s16le mono
UTTERANCE = {"id": "short-ack", "length": "short", "text": "Sure, I can do that."}


def gate(args: dict) -> dict:
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        latency_gate.main()
    return json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def results():
    """Loop results as Ansible registers them: one good streamed run at concurrency 2, one failing run."""
    routes = {
        "/stream": streaming(first_chunk_ms=60, interval_ms=10, chunks=5, chunk_bytes=CHUNK),
        "/503": status(503, b'{"status": "starting"}'),
    }
    with HTTPTestServer(routes) as server:
        common = {"method": "POST", "body_json": {"input": "x"}, "stream": True, "pcm": {"sample_rate": 24000}}
        good = gate(
            {
                **common,
                "url": server.url("/stream"),
                "requests": 6,
                "warmup": 2,
                "concurrency": 2,
                "samples_limit": 6,
                "expect_content_type": "audio/",
            }
        )
        bad = gate({**common, "url": server.url("/503"), "requests": 2, "warmup": 0, "max_consecutive_errors": 0})
    return [
        {**good, "item": [UTTERANCE, 2], "ansible_loop_var": "item"},
        {**bad, "item": [{**UTTERANCE, "id": "long-letter"}, 1], "ansible_loop_var": "item"},
        {"skipped": True, "item": [UTTERANCE, 4]},
    ]


# -- the utterance set ---------------------------------------------------------------------------------------


def test_the_utterance_set_is_short_medium_and_long_with_the_seeds_samantha_line():
    utterances = yaml.safe_load((ROLE / "files" / "utterances.yml").read_text(encoding="utf-8"))["utterances"]
    ids = [u["id"] for u in utterances]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_-]*", uid) for uid in ids)
    assert {u["length"] for u in utterances} == {"short", "medium", "long"}
    assert SEED_SAMANTHA_PREVIEW in [u["text"] for u in utterances]
    lengths = {u["length"]: len(u["text"]) for u in utterances}
    assert lengths["short"] < lengths["medium"] < lengths["long"]


# -- tts_benchmark_runs ------------------------------------------------------------------------------------


def test_runs_keep_the_gates_figures_and_every_sample(results):
    good, bad = filters.tts_benchmark_runs(results)
    source = results[0]
    assert (good["utterance"], good["concurrency"], good["requests"], good["ok"]) == ("short-ack", 2, 6, 6)
    assert good["passed"] is True and good["failures"] == []
    assert good["ttfa_ms"] == source["ttfb_ms"]
    assert good["total_ms"] == source["total_ms"]
    assert good["rtf"] == source["rtf"]
    # 5 chunks of 0.1 s: 0.5 s of audio, the first byte after the injected 60 ms.
    assert good["audio_seconds"]["p50"] == pytest.approx(0.5)
    assert good["ttfa_ms"]["min"] >= 59
    assert len(good["samples"]) == 6
    assert set(good["samples"][0]) == set(filters.SAMPLE_KEYS)
    assert bad["passed"] is False
    assert bad["failures"] == results[1]["failures"]
    assert bad["ttfa_ms"]["count"] == 0 and bad["ttfa_ms"]["p50"] is None


def test_pooled_figures_are_the_gates_own_statistics(results):
    [good] = filters.tts_benchmark_runs(results[:1])
    figures = pooled([good])
    # The gate's summaries come from unrounded times, its samples are rounded (ms to 3 places, RTF to 4).
    for key, gate_key in (("ttfa_ms", "ttfb_ms"), ("total_ms", "total_ms")):
        assert figures[key]["count"] == results[0][gate_key]["count"]
        assert figures[key]["p50"] == pytest.approx(results[0][gate_key]["p50"], abs=2e-3)
        assert figures[key]["p95"] == pytest.approx(results[0][gate_key]["p95"], abs=2e-3)
    assert figures["rtf"]["p50"] == pytest.approx(results[0]["rtf"]["p50"], abs=2e-4)
    assert (figures["requests"], figures["errors"]) == (6, 0)


def test_a_result_without_figures_keeps_the_modules_message():
    [record] = filters.tts_benchmark_runs([{"failed": True, "msg": "missing httpx", "item": UTTERANCE}])
    assert (record["concurrency"], record["passed"], record["failures"]) == (1, False, ["missing httpx"])
    assert record["samples"] == [] and record["total_ms"]["count"] == 0


def test_a_loop_item_of_another_shape_is_refused():
    with pytest.raises(AnsibleFilterError, match="utterance or \\[utterance, level\\]"):
        filters.tts_benchmark_runs([{"item": "short-ack"}])
    assert filters.tts_benchmark_runs(None) == []


# -- tts_benchmark_failures and tts_benchmark_wavs -----------------------------------------------------------


def test_failures_name_the_endpoint_the_utterance_and_the_level(results):
    runs = filters.tts_benchmark_runs(results)
    failures = filters.tts_benchmark_failures(runs, "voxtral", expected=3)
    assert failures[0].startswith("voxtral long-letter at concurrency 1: error rate 1.00 > 0.00")
    assert failures[1].startswith("voxtral long-letter at concurrency 1: first status error: status 503")
    assert failures[-1] == "voxtral: only 2 of 3 measurements ran"
    assert filters.tts_benchmark_failures(runs[:1], "voxtral", expected=1) == []


def test_wavs_are_the_fetched_files_only():
    fetched = [
        {"item": {"id": "short-ack"}, "dest": "/a/wav/voxtral-short-ack.wav", "changed": True},
        {"item": {"id": "long-letter"}, "failed": True, "msg": "file not found"},
        {"item": {"id": "samantha-preview"}, "skipped": True},
    ]
    assert filters.tts_benchmark_wavs(fetched, "voxtral") == {"short-ack": "wav/voxtral-short-ack.wav"}
    assert filters.tts_benchmark_wavs(None, "voxtral") == {}


# -- what the gate heard, through the filter into the verdict ----------------------------------------------


def voiced(seconds: float, rate: int = 24000) -> bytes:
    """A voiced-speech stand-in (test_latency_gate's): 150 Hz and harmonics in 200 ms syllables, s16le."""
    out = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        value = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in (1, 2, 3)) / 1.83 if (t % 0.26) < 0.2 else 0.0
        out += int(0.3 * 32767 * value).to_bytes(2, "little", signed=True)
    return bytes(out)


@pytest.fixture(scope="module")
def heard_results():
    """Loop results of the gate with audio_checks: one utterance spoken, one answered with silence."""
    text = "The gate hears the audio it times."
    routes = {"/speech": audio_stream(voiced(2.0)), "/silence": audio_stream(b"\x00\x00" * 48000)}
    with HTTPTestServer(routes) as server:
        out = []
        for path, utterance in (("/speech", UTTERANCE), ("/silence", {**UTTERANCE, "id": "long-letter"})):
            result = gate(
                {
                    "url": server.url(path),
                    "method": "POST",
                    "body_json": {"input": text},
                    "stream": True,
                    "pcm": {"sample_rate": 24000},
                    "requests": 2,
                    "warmup": 0,
                    "audio_checks": {"utterance": utterance["id"], "text": text},
                }
            )
            out.append({**result, "item": [{**utterance, "text": text}, 1], "ansible_loop_var": "item"})
    return out


def test_runs_keep_what_the_gate_heard_in_every_answer(heard_results):
    spoken, silent = filters.tts_benchmark_runs(heard_results)
    assert spoken["passed"] and spoken["audio"] == {
        "limits": heard_results[0]["audio"]["limits"],
        "failed_requests": 0,
        "failures": [],
    }
    assert all(set(s) == set(filters.SAMPLE_KEYS) | {"audio", "audio_failures"} for s in spoken["samples"])
    assert spoken["samples"][0]["audio"] == heard_results[0]["audio"]["figures"]
    assert silent["passed"] is False and silent["audio"]["failed_requests"] == 2
    assert "long-letter: speech ratio 0 < 0.5 (min_speech_ratio)" in silent["samples"][0]["audio_failures"]
    [failure] = filters.tts_benchmark_failures([silent], "voxtral")
    assert failure.startswith("voxtral long-letter at concurrency 1: audio of request 0: long-letter: ")

    # Into the verdict: the figures and each check per utterance, the gate's limits applied.
    utterances = [{"id": "short-ack", "text": "x"}, {"id": "long-letter", "text": "x"}]
    system = audio_system("voxtral", [spoken, silent], utterances)
    assert system["checked"] and (system["requests"], system["failed_requests"]) == (4, 2)
    assert system["utterances"]["short-ack"]["passed"] is True
    assert system["utterances"]["short-ack"]["figures"]["speech_ratio"] > 0.5
    speech_check = next(c for c in system["utterances"]["long-letter"]["checks"] if c["check"] == "min_speech_ratio")
    assert (speech_check["value"], speech_check["passed"], speech_check["failed_requests"]) == (0.0, False, 2)
