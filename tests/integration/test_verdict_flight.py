"""flight.yml and benchmark-voxtral.yml as users run them, on one simulated Spark: the verdicts they write.

The Spark is prepared once (tests/simulated/prepare-spark.yml) and given the fake Chatterbox serving the
Samantha reference, so the flight's A/B runs too. The fakes' latencies are injected (the fake vllm-omni's
first_audio_ms and rtf, the fake Gemma's 190 ± 10 ms, the fake Chatterbox's delay), and the figures of the
verdict must be those: never faster than injected, within a tolerance above (no wall-clock speed is
asserted beyond what the fakes themselves sleep), and audio lengths exact. In order: a good flight (go),
a flight whose deploy fails (no-go naming the phase, Gemma back), a benchmark with nothing deployed, and a
flight that holds one lock from its deploy to its rollback.
"""

import importlib.util
import json
import math
import re
import sys
import threading
import time
import wave

import jsonschema
import pytest
import yaml
from playbook_runner import ROOT, run_on
from sim_spark import CHATTERBOX_REFERENCE as REFERENCE
from sim_spark import gemma_answers, install_fake_chatterbox, prepared_sparks, ssh, write_behaviour

sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "voices"))
from make_voices import make_voices

SCHEMA = json.loads((ROOT / "schemas" / "verdict.schema.json").read_text(encoding="utf-8"))
UTTERANCES_FILE = ROOT / "roles/tts_benchmark/files/utterances.yml"
UTTERANCES = yaml.safe_load(UTTERANCES_FILE.read_text(encoding="utf-8"))["utterances"]
LOCK = "/var/lib/voxtral-deploy/flight.lock"

# What the fakes are told to do (their knobs), and what that means for the figures.
VOXTRAL = {"first_audio_ms": 120, "rtf": 0.05}  # tests/fixtures/fake_vllm_omni/cli.py
CHATTERBOX = {"first_byte_ms": 200, "rtf": 0.05}  # tests/fixtures/fake_chatterbox.py
SAMPLE_RATE = 24000
STREAM_CHUNK_SAMPLES = 1920  # the fake vllm-omni streams 0.08 s chunks
WAV_HEADER_S = 44 / (2 * SAMPLE_RATE)
# Above the injected values, the tolerance for a loaded 2-core CI machine (Python servers, SSH, threads).
SLACK_MS = 400
REPETITIONS = 2
CONCURRENCY = [1, 4]


def audio_seconds(text):
    """The fakes' audio length: max(0.5, 0.06 s per character), in whole samples."""
    return round(max(0.5, len(text) * 0.06) * SAMPLE_RATE) / SAMPLE_RATE


def voxtral_total_ms(text):
    """The fake vllm-omni's streamed answer: first chunk after first_audio_ms, then one chunk per 0.08 s x rtf."""
    chunks = math.ceil(round(audio_seconds(text) * SAMPLE_RATE) / STREAM_CHUNK_SAMPLES)
    return VOXTRAL["first_audio_ms"] + (chunks - 1) * 80 * VOXTRAL["rtf"]


def chatterbox_total_ms(text):
    return CHATTERBOX["first_byte_ms"] + audio_seconds(text) * 1000 * CHATTERBOX["rtf"]


def within(value, low, slack=SLACK_MS):
    """Never below what the fake sleeps (1 ms for timer granularity), at most `slack` above it."""
    return low - 1 <= value <= low + slack


class Flight:
    def __init__(self, hostvars, workdir):
        self.hostvars = hostvars
        self.workdir = workdir
        self.artifacts = workdir / "artifacts"
        self.extravars = {
            "voxtral_artifacts_dir": str(self.artifacts),
            # The verdict of a flight that pauses Gemma (its outage in the impact section); auto coexists here.
            "voxtral_gemma_mode": "pause",
            "tts_benchmark_ab_url": "http://127.0.0.1:4123",
            "tts_benchmark_ab_reference_path": REFERENCE,
            "tts_benchmark_repetitions": REPETITIONS,
            "tts_benchmark_warmup": 0,
            "tts_benchmark_concurrency": CONCURRENCY,
        }

    def sh(self, command):
        return ssh(self.hostvars, command)

    def run(self, playbook, extravars=None):
        before = set(self.artifacts.glob("titan/*"))
        run = run_on(self.hostvars, playbook, self.workdir, {**self.extravars, **(extravars or {})})
        [run.dir] = set(self.artifacts.glob("titan/*")) - before
        return run

    def is_active(self, unit):
        return self.sh(f"systemctl is-active {unit}").stdout.strip() == "active"

    def gemma_answers(self):
        return gemma_answers(self.hostvars)

    def install_chatterbox(self):
        """The TTS that serves today, already cloning the Samantha reference."""
        [samantha, *_] = make_voices(self.workdir / "voices")
        write_behaviour(self.hostvars, "/etc/fake-vllm-omni/behaviour.json", VOXTRAL)
        install_fake_chatterbox(self.hostvars, samantha.read_bytes(), CHATTERBOX)


@pytest.fixture(scope="module")
def flight(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("verdict-flight")
    with prepared_sparks({"titan": "voxtral-verdict-flight"}, workdir) as hosts:
        spark = Flight(hosts["titan"], workdir)
        spark.install_chatterbox()
        yield spark


def read_verdict(run):
    verdict = json.loads((run.dir / "verdict.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(verdict)
    return verdict


def assert_gemma_back(flight):
    assert flight.is_active("gemma.service")
    assert flight.gemma_answers()
    assert not flight.is_active("voxtral-tts.service")
    assert not flight.is_active("voxtral-flight-guard.timer")
    assert flight.sh(f"test -e {LOCK}").returncode == 1


def test_a_good_flight_writes_a_go_verdict_with_the_injected_figures(flight):
    run = flight.run("flight.yml")
    assert run.status == "successful", run.stdout[-3000:]
    assert_gemma_back(flight)
    verdict = read_verdict(run)
    assert (verdict["verdict"], verdict["kind"], verdict["provisional"]) == ("go", "flight", False)
    assert {name: phase["status"] for name, phase in verdict["phases"].items()} == dict.fromkeys(
        ("deploy", "benchmark", "ab", "rollback"), "passed"
    )
    assert verdict["run_id"] == run.dir.name

    build = verdict["build"]
    assert (build["vllm_omni_version"], build["ref"], build["profile"]) == ("0.30.0", "v0.30.0", "gb10-0.30")
    assert [(p["pr"], p["applied"], p["status"]) for p in build["patches"]] == [
        (2405, False, "superseded"),
        (2790, False, "superseded"),
    ]

    # Gemma: the fake answers in 190 ± 10 ms, before and after; paused for this flight, then back.
    impact = verdict["gemma_impact"]
    assert within(impact["baseline_p50_ms"], 180, slack=50)
    assert within(impact["post_flight_p50_ms"], 180, slack=50)
    assert 0.5 <= impact["drift_ratio"] <= 1.5
    assert impact["baseline_from_this_run"] is True
    assert impact["outage_duration_minutes"] > 0
    assert impact["outage_duration_minutes"] == round(impact["outage_seconds"] / 60, 2)
    assert (impact["user_mode"], impact["post_flight_gate_passed"]) == ("pause-gemma", True)

    # Voxtral: every utterance at every level; audio lengths exact, latencies never below the injected ones.
    benchmark = json.loads((run.dir / "benchmark.json").read_text(encoding="utf-8"))
    texts = {u["id"]: u["text"] for u in UTTERANCES}
    assert {(r["utterance"], r["concurrency"]) for r in benchmark["runs"]} == {
        (u, c) for u in texts for c in CONCURRENCY
    }
    for record in benchmark["runs"]:
        text = texts[record["utterance"]]
        assert record["requests"] == record["ok"] == REPETITIONS * record["concurrency"]
        assert record["audio_seconds"]["p50"] == pytest.approx(audio_seconds(text), abs=1e-3)
        assert within(record["ttfa_ms"]["min"], VOXTRAL["first_audio_ms"]), record
        assert within(record["total_ms"]["min"], voxtral_total_ms(text)), record
        expected_rtf = voxtral_total_ms(text) / 1000 / audio_seconds(text)
        assert expected_rtf * 0.98 <= record["rtf"]["p50"] <= expected_rtf + SLACK_MS / 1000 / audio_seconds(text)
    voxtral = verdict["voxtral"]
    assert within(voxtral["ttfa_p50_ms"], VOXTRAL["first_audio_ms"])
    assert voxtral["ttfa_p50_ms"] <= voxtral["ttfa_p95_ms"]
    assert voxtral["source"] == f"benchmark, concurrency 1, {REPETITIONS * len(texts)} requests"
    rtf_low = min(voxtral_total_ms(t) / 1000 / audio_seconds(t) for t in texts.values())
    rtf_high = max(voxtral_total_ms(t) / 1000 / audio_seconds(t) for t in texts.values())
    assert rtf_low * 0.98 <= voxtral["rtf_p50"] <= rtf_high + SLACK_MS / 1000
    assert voxtral["per_concurrency"]["4"]["requests"] == 4 * REPETITIONS * len(texts)
    assert within(voxtral["deploy_gate"]["ttfa_p50_ms"], VOXTRAL["first_audio_ms"])

    # A/B: the same utterances to Chatterbox with the Samantha reference, and both sides' WAVs.
    assert verdict["phases"]["ab"]["status"] == "passed"
    assert verdict["references"]["ab_reference"]["path"] == REFERENCE
    samantha = flight.workdir / "voices" / "samantha_movie_primary.wav"
    assert verdict["references"]["ab_reference"]["sha256"] == flight.sh(f"sha256sum {REFERENCE}").stdout.split()[0]
    assert verdict["references"]["ab_reference"]["size"] == samantha.stat().st_size
    for record in benchmark["ab"]["runs"]:
        text = texts[record["utterance"]]
        assert record["audio_seconds"]["p50"] == pytest.approx(audio_seconds(text) + WAV_HEADER_S, abs=1e-3)
        assert within(record["ttfa_ms"]["min"], chatterbox_total_ms(text)), record
    assert within(verdict["ab"]["figures"]["ttfa_p50_ms"], min(chatterbox_total_ms(t) for t in texts.values()),
                  slack=max(chatterbox_total_ms(t) for t in texts.values()) + SLACK_MS)  # fmt: skip
    assert verdict["ab"]["listener_verdict"] is None
    for side in ("voxtral", "chatterbox"):
        for uid, text in texts.items():
            with wave.open(str(run.dir / "wav" / f"{side}-{uid}.wav")) as wav:
                assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
                assert wav.getnframes() / SAMPLE_RATE == pytest.approx(audio_seconds(text), abs=1e-3)
    assert sorted(verdict["artifacts"]["wavs"]) == sorted(
        [f"wav/{side}-{uid}.wav" for side in ("voxtral", "chatterbox") for uid in texts] + ["wav/reference.wav"]
    )
    assert (run.dir / "wav" / "reference.wav").read_bytes() == samantha.read_bytes()

    # What the gate heard in every answer of both sides: real speech (espeak-ng in the Spark's image), every
    # check passed, the figures per utterance; the speaker similarity measured only with its optional extra.
    assert flight.sh("command -v espeak-ng").returncode == 0
    audio = verdict["audio"]
    assert [system["label"] for system in audio["systems"]] == ["voxtral", "chatterbox"]
    for system in audio["systems"]:
        assert system["checked"] and system["passed"] is True and system["failed_requests"] == 0, system
        assert set(system["utterances"]) == set(texts)
        for uid, entry in system["utterances"].items():
            figures = entry["figures"]
            assert figures["speech_ratio"] >= 0.5 and figures["clipping_ratio"] <= 0.001, (uid, figures)
            assert figures["loudness_lufs"] is not None, (uid, figures)
            assert figures["duration_s"] == pytest.approx(audio_seconds(texts[uid]), abs=0.01)
            assert entry["checks"] and all(check["passed"] for check in entry["checks"]), entry
    assert system["requests"] == REPETITIONS * len(texts)  # the A/B: concurrency 1
    similarity = audio["speaker_similarity"]
    assert similarity["reference"] == "wav/reference.wav"
    if importlib.util.find_spec("resemblyzer") is None:
        assert similarity["reason"] == "not measured (resemblyzer not installed)"

    # ab.html: a player, a waveform and a spectrogram per WAV (both sides and the reference), the charts.
    page = (run.dir / "ab.html").read_text(encoding="utf-8")
    pictured = 2 * len(texts) + 1
    assert page.count("<audio controls") == pictured
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="waveform"') == pictured
    assert page.count('<img class="spectrogram"') == pictured
    assert page.count('class="chart"') == 2 and '<li class="fail">' not in page
    assert "## Listener's verdict" in (run.dir / "ab.md").read_text(encoding="utf-8")

    report = (run.dir / "report.md").read_text(encoding="utf-8")
    assert report.splitlines()[2].startswith("**GO: Voxtral served: time to first audio p50")
    assert f"| Gemma baseline p50 | {impact['baseline_p50_ms']:.1f} ms |" in report
    assert "## Time to first audio, concurrency 1" in report
    assert "## Audio heard (every answer, the latency gate's audio checks)" in report
    heard = REPETITIONS * len(texts) * sum(CONCURRENCY)
    assert f"| voxtral audio | {heard} of {heard} answers passed every check |" in report
    assert (run.dir / "state.json").exists() and (run.dir / "voxtral-gate.json").exists()


def test_a_failed_deploy_writes_a_no_go_verdict_naming_the_phase_and_gemma_is_back(flight):
    run = flight.run("flight.yml", {"vllm_omni_build_version": "v9.9.9"})
    assert run.status == "failed"
    assert run.failure_messages()[-1].startswith("NO-GO: phase deploy failed: ")
    assert_gemma_back(flight)
    verdict = read_verdict(run)
    assert (verdict["verdict"], verdict["failed_phase"], verdict["provisional"]) == ("no-go", "deploy", False)
    assert "v9.9.9" in verdict["error"]
    assert {name: phase["status"] for name, phase in verdict["phases"].items()} == {
        "deploy": "failed",
        "benchmark": "skipped",
        "ab": "skipped",
        "rollback": "passed",
    }
    assert verdict["build"]["built"] is False
    assert verdict["build"]["requested"] == {"version": "v9.9.9"}
    impact = verdict["gemma_impact"]
    # The deploy failed before the baseline: the recorded one is the good flight's; Gemma was never paused.
    assert impact["baseline_from_this_run"] is False
    assert impact["outage_duration_minutes"] == 0.0
    assert impact["post_flight_gate_passed"] is True
    assert verdict["voxtral"]["ttfa_p50_ms"] is None
    assert not (run.dir / "ab.html").exists()
    assert (
        (run.dir / "report.md").read_text(encoding="utf-8").splitlines()[2].startswith("**NO-GO: phase deploy failed: ")
    )


def test_a_benchmark_with_nothing_deployed_is_a_no_go_naming_the_benchmark(flight):
    run = flight.run("benchmark-voxtral.yml")
    assert run.status == "failed"
    verdict = read_verdict(run)
    assert (verdict["kind"], verdict["verdict"], verdict["failed_phase"]) == ("benchmark", "no-go", "benchmark")
    assert "Voxtral is not deployed" in verdict["error"]
    assert verdict["phases"]["deploy"]["status"] == "not_run"
    assert flight.sh(f"test -e {LOCK}").returncode == 1
    assert flight.is_active("gemma.service")


def test_a_flight_holds_one_lock_from_its_deploy_to_its_rollback(flight):
    """No other run can slip in between the phases: the lock is taken once, held throughout, released once."""
    seen = []
    running = threading.Event()
    running.set()

    def watch():
        while running.is_set():
            seen.append(flight.sh(f"test -e {LOCK}").returncode == 0)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run = flight.run("flight.yml")
    finally:
        running.clear()
        watcher.join()
    assert run.status == "successful", run.stdout[-3000:]
    taken = run.ok_results("Take the flight lock (refused while another run holds it)")
    released = run.ok_results("Release the flight lock this run took")
    assert len(taken) == 1, taken
    assert len(released) == 1, released
    # One held span: absent, then present without a gap until the end, then absent again.
    spans = "".join("x" if held else "." for held in seen)
    assert re.fullmatch(r"\.*x+\.*", spans), spans
    assert_gemma_back(flight)
