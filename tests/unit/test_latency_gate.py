"""The latency gate module against real HTTP servers running in threads of the test process."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils import audio_metrics
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate import judge
from ansible_collections.voxtral.deploy.plugins.modules import latency_gate
from http_fixtures import (
    HTTPTestServer,
    audio_stream,
    delay_sequence,
    drop_connection,
    every_nth_fails,
    fixed_delay,
    hang,
    refused_port,
    self_signed_cert,
    status,
    streaming,
    trickle,
)

# 24 kHz, s16le, mono: 48000 bytes per second of audio; a 4800-byte chunk is 0.1 s.
PCM = {"sample_rate": 24000, "sample_width": 2, "channels": 1}
CHUNK = 4800


def run_module(args: dict, check_mode: bool = False) -> dict:
    """Run latency_gate.main() as Ansible would and return its JSON result (``failed`` set on failure)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        latency_gate.main()
    return json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def server():
    """One server for the tests that only read: each route is its own endpoint."""
    routes = {
        "/fast": fixed_delay(0),
        "/json": fixed_delay(0, body=b'{"ok": true}\n', content_type="application/json"),
        "/ms20": fixed_delay(20),
        "/ms60": fixed_delay(60),
        "/503": status(503, b'{"status": "starting"}'),
        "/hang": hang(30),
        "/trickle": trickle(interval_ms=50),
        "/drop": drop_connection(),
        "/empty-audio": fixed_delay(0, body=b"", content_type="audio/pcm"),
        "/stream": streaming(first_chunk_ms=120, interval_ms=40, chunks=5, chunk_bytes=CHUNK),
    }
    with HTTPTestServer(routes) as running:
        yield running


# -- measuring ----------------------------------------------------------------------------------------


def test_fixed_190ms_endpoint_measures_every_request_never_below_the_servers_time():
    # How close the gate's p50 comes to the server's (within a few percent and ms) is a figure of
    # benchmarks/latency_gate_bench.py, not a test: under CI's load an upper bound on time is a race.
    handled: list[float] = []
    with HTTPTestServer({"/gemma": fixed_delay(190, jitter_ms=10, seed=3, handled_ms=handled)}) as srv:
        result = run_module({"url": srv.url("/gemma"), "requests": 24, "warmup": 3, "concurrency": 3})
    assert result["passed"] is True and not result.get("failed")
    assert result["requests"] == result["ok"] == result["total_ms"]["count"] == 24
    assert len(handled) == 24 + 3  # the warm-up reached the server too, and is not in the figures
    p50 = result["total_ms"]["p50"]
    # Lower bounds are exact: no answer comes before the server's wait (190 ms - 10 ms of jitter), and each
    # measured request holds the server's own time for it plus the transport, never less; so the gate's p50
    # (at least the 12th of its 24) is at least the 12th fastest of all the server's 27 answers.
    assert result["total_ms"]["min"] >= 180.0, result["total_ms"]
    assert p50 >= sorted(handled)[11], (p50, sorted(handled))
    assert result["total_ms"]["min"] <= p50 <= result["total_ms"]["max"]
    assert result["ttfb_ms"]["count"] == 0  # not streamed: no time to first byte
    assert result["error_rate"] == 0.0
    assert result["stopped_early"] is False
    assert result["changed"] is False and result["saved_to"] is None


def test_streaming_endpoint_time_to_first_byte_and_total(server):
    result = run_module(
        {
            "url": server.url("/stream"),
            "stream": True,
            "requests": 6,
            "warmup": 1,
            "concurrency": 3,
            "pcm": PCM,
            "expect_content_type": "audio/",
        }
    )
    assert result["passed"] is True, result["failures"]
    ttfb, total = result["ttfb_ms"], result["total_ms"]
    assert ttfb["count"] == 6
    # Lower bounds are exact (the server cannot answer early); upper ones leave room for a busy machine.
    assert 120.0 <= ttfb["p50"] < 145.0, ttfb
    assert 280.0 <= total["p50"] < 330.0, total
    assert ttfb["max"] < total["min"]
    assert result["bytes"]["p50"] == 5 * CHUNK
    assert result["bytes_total"] == 6 * 5 * CHUNK
    assert result["audio_seconds"]["p50"] == pytest.approx(0.5)
    # RTF = generation time / audio seconds: about 0.28 s / 0.5 s.
    assert result["rtf"]["p50"] == pytest.approx(total["p50"] / 1000 / 0.5, rel=1e-3)
    assert 0.56 <= result["rtf"]["p50"] < 0.66


def test_percentiles_in_the_result_match_an_independent_computation(server):
    result = run_module({"url": server.url("/fast"), "requests": 25, "warmup": 0, "samples_limit": 25})
    totals = [s["total_ms"] for s in result["samples"]]
    assert len(totals) == 25 and [s["index"] for s in result["samples"]] == list(range(25))
    cuts = statistics.quantiles(totals, n=100, method="inclusive")
    assert result["total_ms"]["p50"] == pytest.approx(statistics.median(totals), abs=2e-3)
    assert result["total_ms"]["p95"] == pytest.approx(cuts[94], abs=2e-3)
    assert result["total_ms"]["p99"] == pytest.approx(cuts[98], abs=2e-3)
    assert result["total_ms"]["mean"] == pytest.approx(statistics.fmean(totals), abs=2e-3)


def test_concurrency_keeps_that_many_requests_in_flight():
    with HTTPTestServer({"/slow": fixed_delay(100)}) as srv:
        result = run_module({"url": srv.url("/slow"), "requests": 8, "warmup": 4, "concurrency": 4})
        assert srv.count("/slow") == 12
        assert srv.max_in_flight == 4
    assert result["concurrency"] == 4 and result["ok"] == 8


def test_post_json_body_headers_and_bearer_token_are_sent():
    with HTTPTestServer({"/v1/chat/completions": fixed_delay(0)}) as srv:
        result = run_module(
            {
                "url": srv.url("/v1/chat/completions"),
                "method": "post",
                "body_json": {"model": "gemma", "messages": [{"role": "user", "content": "héllo"}]},
                "headers": {"X-Flight": 7},
                "api_key": "s3cret",
                "requests": 2,
                "warmup": 1,
            }
        )
        sent = srv.requests
    assert result["passed"] is True and result["method"] == "POST"
    assert len(sent) == 3
    request = sent[-1]
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {
        "model": "gemma",
        "messages": [{"role": "user", "content": "héllo"}],
    }
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-flight"] == "7"
    assert "s3cret" not in json.dumps(result)


def test_raw_body_is_sent_as_is_and_a_json_string_body_is_parsed():
    with HTTPTestServer({"/raw": fixed_delay(0)}) as srv:
        run_module(
            {
                "url": srv.url("/raw"),
                "method": "PUT",
                "body": "a=1&b=2",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                "requests": 1,
                "warmup": 0,
            }
        )
        run_module(
            {
                "url": srv.url("/raw"),
                "method": "POST",
                "body_json": '{"x": [1, 2]}',
                "requests": 1,
                "warmup": 0,
            }
        )
        raw, from_string = srv.requests
    assert raw["method"] == "PUT" and raw["body"] == b"a=1&b=2"
    assert raw["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(from_string["body"]) == {"x": [1, 2]}


def test_keepalive_post_is_not_delayed_by_nagle(server):
    # httpx 0.23 (httpcore 0.16) wrote headers and body separately without TCP_NODELAY: every keep-alive
    # POST waited for the server's delayed ACK (~40 ms). The gate must not measure that.
    result = run_module(
        {
            "url": server.url("/json"),
            "method": "POST",
            "body_json": {"model": "m"},
            "requests": 10,
            "warmup": 2,
        }
    )
    assert result["total_ms"]["p50"] < 20.0, result["total_ms"]


def test_samples_are_bounded_and_ordered(server):
    result = run_module({"url": server.url("/fast"), "requests": 10, "warmup": 0, "samples_limit": 3})
    assert [s["index"] for s in result["samples"]] == [0, 1, 2]
    sample = result["samples"][0]
    assert sample["ok"] is True and sample["status"] == 200 and sample["bytes"] == len(b'{"ok": true}\n')
    assert sample["error_kind"] is None and sample["error"] is None
    assert result["started_at"] <= result["finished_at"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", result["started_at"])


def test_https_with_and_without_certificate_validation(tmp_path):
    routes = {"/stream": streaming(first_chunk_ms=50, interval_ms=10, chunks=3, chunk_bytes=CHUNK)}
    with HTTPTestServer(routes, tls=self_signed_cert(tmp_path)) as srv:
        url = srv.url("/stream")
        assert url.startswith("https://")
        trusted = run_module({"url": url, "stream": True, "requests": 3, "validate_certs": False})
        refused = run_module({"url": url, "requests": 1, "warmup": 0})
    assert trusted["passed"] is True and trusted["bytes"]["p50"] == 3 * CHUNK, trusted["failures"]
    assert 50.0 <= trusted["ttfb_ms"]["p50"] < trusted["total_ms"]["p50"]
    assert refused["errors"]["connect"] == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused["error_messages"]["connect"]


# -- errors -------------------------------------------------------------------------------------------


def test_5xx_is_a_status_error_with_the_body_in_the_message(server):
    result = run_module({"url": server.url("/503"), "requests": 4, "warmup": 0, "max_consecutive_errors": 0})
    assert result["failed"] is True and result["passed"] is False
    assert result["errors"] == {"timeout": 0, "connect": 0, "status": 4, "content_type": 0, "other": 0}
    assert result["status_codes"] == {"503": 4}
    assert result["error_rate"] == 1.0
    assert result["failures"] == ["error rate 1.00 > 0.00 (4 of 4 failed: 4 status)"]
    assert result["msg"] == "error rate 1.00 > 0.00 (4 of 4 failed: 4 status)"
    assert result["error_messages"]["status"] == (
        f'status 503 from {server.url("/503")} (expected 200): {{"status": "starting"}}'
    )
    assert result["total_ms"]["count"] == 0 and result["total_ms"]["p50"] is None


def test_expect_status_accepts_other_codes(server):
    result = run_module({"url": server.url("/503"), "requests": 2, "warmup": 0, "expect_status": [200, 503]})
    assert result["passed"] is True and result["ok"] == 2
    result = run_module({"url": server.url("/503"), "requests": 1, "warmup": 0, "expect_status": "503"})
    assert result["passed"] is True, "a single code, as YAML gives it, is a list of one"


def test_connection_refused_is_a_connect_error():
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/health"
        result = run_module({"url": url, "requests": 2, "warmup": 0, "max_consecutive_errors": 0})
    assert result["errors"]["connect"] == 2
    assert result["error_messages"]["connect"].startswith(f"connect error to {url}: ")
    assert result["failures"] == ["error rate 1.00 > 0.00 (2 of 2 failed: 2 connect)"]


def test_read_timeout_is_a_timeout_error(server):
    started = time.monotonic()
    result = run_module({"url": server.url("/hang"), "requests": 2, "warmup": 0, "concurrency": 2, "timeout": 0.2})
    assert time.monotonic() - started < 10
    assert result["errors"]["timeout"] == 2
    assert result["error_messages"]["timeout"] == f"read timeout after 0.2 s from {server.url('/hang')}"
    assert result["failures"] == ["error rate 1.00 > 0.00 (2 of 2 failed: 2 timeout)"]


def test_a_trickling_body_is_cut_at_the_request_deadline(server):
    # No single read waits longer than 50 ms, so only the whole-request deadline can stop it.
    result = run_module({"url": server.url("/trickle"), "requests": 1, "warmup": 0, "timeout": 0.3})
    assert result["errors"]["timeout"] == 1
    assert "did not finish within 0.3 s" in result["error_messages"]["timeout"]
    assert 300.0 <= result["samples"][0]["total_ms"] < 2000.0


def test_wrong_content_type_is_a_content_type_error(server):
    result = run_module({"url": server.url("/json"), "requests": 2, "warmup": 0, "expect_content_type": "audio/"})
    assert result["errors"]["content_type"] == 2
    assert result["error_messages"]["content_type"] == (
        f"content type 'application/json' from {server.url('/json')} (expected 'audio/'...)"
    )
    assert result["failures"] == ["error rate 1.00 > 0.00 (2 of 2 failed: 2 content type)"]


def test_content_type_prefix_is_case_insensitive(server):
    result = run_module({"url": server.url("/stream"), "requests": 1, "expect_content_type": "AUDIO/PCM"})
    assert result["passed"] is True


def test_dropped_connection_is_an_other_error(server):
    result = run_module({"url": server.url("/drop"), "requests": 2, "warmup": 0, "max_consecutive_errors": 0})
    assert result["errors"]["other"] == 2
    assert "RemoteProtocolError" in result["error_messages"]["other"]


def test_empty_audio_body_is_an_error_when_pcm_is_expected(server):
    result = run_module({"url": server.url("/empty-audio"), "requests": 2, "warmup": 0, "pcm": PCM})
    assert result["errors"]["other"] == 2
    assert result["error_messages"]["other"] == f"empty audio body from {server.url('/empty-audio')}"


def test_error_rate_line_and_limit():
    with HTTPTestServer({"/flaky": every_nth_fails(4, code=500)}) as srv:
        failing = run_module({"url": srv.url("/flaky"), "requests": 20, "warmup": 0})
    assert failing["errors"]["status"] == 5 and failing["error_rate"] == 0.25
    assert failing["failures"] == ["error rate 0.25 > 0.00 (5 of 20 failed: 5 status)"]
    assert failing["total_ms"]["count"] == 15  # latencies of the successes only
    with HTTPTestServer({"/flaky": every_nth_fails(4, code=500)}) as srv:
        passing = run_module({"url": srv.url("/flaky"), "requests": 20, "warmup": 0, "max_error_rate": 0.25})
    assert passing["passed"] is True and passing["error_rate"] == 0.25


def test_dead_endpoint_stops_after_max_consecutive_errors_quickly():
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/v1/audio/speech"
        started = time.monotonic()
        result = run_module({"url": url, "requests": 500, "warmup": 0, "max_consecutive_errors": 3, "timeout": 30})
        elapsed = time.monotonic() - started
    assert elapsed < 10
    assert result["requests"] == 3 and result["planned"] == 500
    assert result["stopped_early"] is True
    assert result["failures"][0].startswith(f"stopped after 3 consecutive errors: connect error to {url}")
    assert result["failures"][1] == "error rate 1.00 > 0.00 (3 of 3 failed: 3 connect)"
    assert result["msg"] == "; ".join(result["failures"])


def test_consecutive_errors_count_the_warmup_and_the_server_sees_exactly_that_many():
    with HTTPTestServer({"/down": status(502)}) as srv:
        result = run_module({"url": srv.url("/down"), "requests": 100, "warmup": 2, "max_consecutive_errors": 3})
        assert srv.count("/down") == 3
    assert result["warmup_errors"] == 2 and result["requests"] == 1
    assert result["stopped_early"] is True


def test_timeouts_stop_early_too(server):
    started = time.monotonic()
    result = run_module(
        {"url": server.url("/hang"), "requests": 50, "warmup": 0, "timeout": 0.2, "max_consecutive_errors": 2}
    )
    assert time.monotonic() - started < 10
    assert result["requests"] == 2 and result["errors"]["timeout"] == 2
    assert result["failures"][0].startswith("stopped after 2 consecutive errors: read timeout after 0.2 s")


def test_stopped_during_warmup_reports_no_error_rate():
    with refused_port() as port:
        result = run_module(
            {"url": f"http://127.0.0.1:{port}/", "requests": 5, "warmup": 5, "max_consecutive_errors": 2}
        )
    assert result["requests"] == 0 and result["error_rate"] is None and result["warmup_errors"] == 2
    assert len(result["failures"]) == 1 and result["failures"][0].startswith("stopped after 2 consecutive errors")


# -- thresholds ---------------------------------------------------------------------------------------

# 18 fast requests and 2 slow ones: p50 10 ms, p95 and p99 60 ms (type 7 over 20 values: h = 18.05, 18.81).
SKEWED = [10.0] * 9 + [60.0] + [10.0] * 9 + [60.0]


@pytest.fixture
def skewed():
    with HTTPTestServer({"/skewed": delay_sequence(SKEWED)}) as srv:
        yield srv.url("/skewed")


def _skewed(url: str, **thresholds) -> dict:
    return run_module({"url": url, "requests": 20, "warmup": 0, **thresholds})


def test_p50_p95_p99_pass(skewed):
    result = _skewed(skewed, max_p50_ms=30, max_p95_ms=90, max_p99_ms=90)
    assert result["passed"] is True, result["failures"]
    assert 10.0 <= result["total_ms"]["p50"] < 30.0
    assert 60.0 <= result["total_ms"]["p95"] < 90.0
    assert result["threshold_ms"] == 30.0


def test_p95_and_p99_fail_with_their_numbers(skewed):
    result = _skewed(skewed, max_p50_ms=30, max_p95_ms=40, max_p99_ms=45)
    assert result["failed"] is True
    p95, p99 = result["total_ms"]["p95"], result["total_ms"]["p99"]
    assert result["failures"] == [f"p95 {p95:.1f} ms > 40.0 ms", f"p99 {p99:.1f} ms > 45.0 ms"]
    assert result["msg"] == f"p95 {p95:.1f} ms > 40.0 ms; p99 {p99:.1f} ms > 45.0 ms"


def test_p50_fails(server):
    result = run_module({"url": server.url("/ms20"), "requests": 3, "warmup": 1, "max_p50_ms": 5})
    assert result["failures"] == [f"p50 {result['total_ms']['p50']:.1f} ms > 5.0 ms"]
    assert result["total_ms"]["p50"] >= 20.0 and result["passed"] is False
    assert result["threshold_ms"] == 5.0


def test_time_to_first_byte_pass_and_fail(server):
    args = {"url": server.url("/stream"), "stream": True, "requests": 3, "warmup": 0, "concurrency": 3}
    assert run_module({**args, "max_ttfb_p50_ms": 250})["passed"] is True
    result = run_module({**args, "max_ttfb_p50_ms": 100})
    assert result["failures"] == [f"time to first byte p50 {result['ttfb_ms']['p50']:.1f} ms > 100.0 ms"]
    assert result["ttfb_ms"]["p50"] >= 120.0


def test_rtf_pass_and_fail(server):
    args = {"url": server.url("/stream"), "stream": True, "requests": 3, "warmup": 0, "concurrency": 3, "pcm": PCM}
    assert run_module({**args, "max_rtf_p50": 1.5})["passed"] is True
    result = run_module({**args, "max_rtf_p50": 0.3})
    line = re.fullmatch(r"RTF p50 (\d\.\d\d) > 0\.30", result["failures"][0])
    assert line and float(line.group(1)) == pytest.approx(result["rtf"]["p50"], abs=0.005), result["failures"]
    assert result["rtf"]["p50"] >= 0.56  # 0.28 s for 0.5 s of audio, at the least


def test_baseline_ratio_fail_uses_the_seed_rule_by_default(server):
    result = run_module({"url": server.url("/ms60"), "requests": 3, "warmup": 1, "baseline_p50_ms": 20})
    p50 = result["total_ms"]["p50"]
    assert result["threshold_ms"] == 40.0
    assert result["baseline_p50_ms"] == 20.0
    assert result["baseline_ratio"] == pytest.approx(p50 / 20.0, abs=1e-4)
    assert result["failures"] == [f"p50 {p50:.1f} ms > 40.0 ms (2.0 × baseline 20.0 ms)"]


def test_baseline_ratio_pass_and_explicit_ratio(server):
    passing = run_module({"url": server.url("/ms60"), "requests": 3, "warmup": 1, "baseline_p50_ms": 55})
    assert passing["passed"] is True and 1.0 < passing["baseline_ratio"] < 1.5
    failing = run_module(
        {"url": server.url("/ms60"), "requests": 3, "warmup": 1, "baseline_p50_ms": 55, "max_ratio": 1.05}
    )
    assert failing["threshold_ms"] == 57.75
    assert failing["failures"][0].endswith(" ms > 57.8 ms (1.05 × baseline 55.0 ms)")


def test_each_broken_threshold_gets_its_own_line(server):
    result = run_module(
        {
            "url": server.url("/ms60"),
            "requests": 3,
            "warmup": 1,
            "max_p50_ms": 30,
            "baseline_p50_ms": 20,
            "max_p95_ms": 30,
        }
    )
    assert result["threshold_ms"] == 30.0
    assert [line.split(" ms > ")[1] for line in result["failures"]] == [
        "30.0 ms",
        "40.0 ms (2.0 × baseline 20.0 ms)",
        "30.0 ms",
    ]


def test_a_close_miss_is_shown_with_enough_decimals():
    assert judge.fmt_pair(0.3012, 0.30, 2) == ("0.301", "0.300")
    assert judge.fmt_pair(380.04, 380.0, 1) == ("380.04", "380.00")


# -- saving and check mode ----------------------------------------------------------------------------


def test_save_to_writes_the_result_atomically_and_reports_changed(server, tmp_path):
    target = tmp_path / "gate.json"
    result = run_module({"url": server.url("/fast"), "requests": 3, "warmup": 0, "save_to": str(target)})
    assert result["changed"] is True and result["saved_to"] == str(target)
    saved = json.loads(target.read_text(encoding="utf-8"))
    assert saved["total_ms"] == result["total_ms"] and saved["passed"] is True
    assert "changed" not in saved
    assert [p.name for p in tmp_path.iterdir()] == ["gate.json"]  # no temporary file left behind


def test_a_failed_gate_still_saves_its_figures(server, tmp_path):
    target = tmp_path / "gate.json"
    result = run_module(
        {"url": server.url("/ms20"), "requests": 2, "warmup": 0, "max_p50_ms": 1, "save_to": str(target)}
    )
    assert result["failed"] is True and result["changed"] is True
    assert json.loads(target.read_text(encoding="utf-8"))["failures"] == result["failures"]


def test_check_mode_measures_but_writes_nothing(server, tmp_path):
    target = tmp_path / "missing-dir" / "gate.json"  # not even the directory is needed in check mode
    result = run_module(
        {"url": server.url("/fast"), "requests": 2, "warmup": 0, "save_to": str(target)}, check_mode=True
    )
    assert result["passed"] is True and result["requests"] == 2 and result["ok"] == 2
    assert result["changed"] is False and result["saved_to"] is None
    assert not target.parent.exists()


def test_save_to_in_a_missing_directory_fails_before_measuring(tmp_path):
    with HTTPTestServer({"/fast": fixed_delay(0)}) as srv:
        result = run_module({"url": srv.url("/fast"), "save_to": str(tmp_path / "nope" / "gate.json")})
        assert srv.count("/fast") == 0
    assert result["msg"] == f"save_to: directory {tmp_path / 'nope'} does not exist"


def test_unwritable_save_to_fails_with_the_figures(server, tmp_path):
    target = tmp_path / "gate.json"
    target.mkdir()  # a directory where the file should go: the rename fails
    result = run_module({"url": server.url("/fast"), "requests": 2, "warmup": 0, "save_to": str(target)})
    assert result["failed"] is True and result["msg"].startswith(f"save_to {target}: ")
    assert result["ok"] == 2 and result["saved_to"] is None


# -- parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"requests": -1}, "requests must be at least 1, got -1"),
        ({"requests": 0}, "requests must be at least 1, got 0"),
        ({"warmup": -2}, "warmup must be at least 0, got -2"),
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"max_consecutive_errors": -1}, "max_consecutive_errors must be at least 0, got -1"),
        ({"timeout": 0}, "timeout must be more than 0 seconds, got 0"),
        ({"timeout": -5}, "timeout must be more than 0 seconds, got -5"),
        ({"max_p95_ms": -1}, "max_p95_ms must be more than 0, got -1"),
        ({"max_error_rate": 1.5}, "max_error_rate must be within 0..1, got 1.5"),
        ({"expect_status": [42]}, "expect_status must hold HTTP status codes (100..599), got 42"),
        (
            {"method": "FETCH"},
            "method must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, got 'FETCH'",
        ),
        ({"body": "x", "body_json": {"a": 1}}, "parameters are mutually exclusive: body|body_json"),
        ({"max_ratio": 2.0}, "missing parameter(s) required by 'max_ratio': baseline_p50_ms"),
        ({"max_rtf_p50": 0.5}, "missing parameter(s) required by 'max_rtf_p50': pcm"),
        (
            {"max_ttfb_p50_ms": 100},
            "max_ttfb_p50_ms needs stream: true (time to first byte is measured then)",
        ),
        (
            {"api_key": "sekrit-token-123", "headers": {"authorization": "Bearer x"}},
            "set either api_key or an Authorization",
        ),
        ({"body_json": "{not json"}, "body_json is a string that is not valid JSON: "),
        ({"pcm": {"sample_rate": 0}}, "pcm.sample_rate must be at least 1, got 0"),
        ({"headers": {"X-Bad": "é"}}, "cannot build the request: "),
    ],
)
def test_bad_parameters_fail_with_one_clear_message(args, message):
    with HTTPTestServer({"/fast": fixed_delay(0)}) as srv:
        result = run_module({"url": srv.url("/fast"), **args})
        assert srv.count("/fast") == 0, "a bad parameter must stop the gate before any request"
    assert result["failed"] is True
    assert result["msg"].startswith(message), result["msg"]
    assert "passed" not in result


@pytest.mark.parametrize(
    "url",
    [
        "localhost:8000/health",
        "127.0.0.1:8000",
        "http://",
        "ftp://example.org/",
        "http://host:99999/",
        "http://a b/",
    ],
)
def test_malformed_url_fails_with_one_clear_message(url):
    result = run_module({"url": url})
    assert result["failed"] is True
    assert result["msg"].startswith(("url must ", "url '")), result["msg"]
    assert repr(url) in result["msg"] or url in result["msg"]


def test_missing_httpx_gives_the_standard_message(monkeypatch):
    # What the module sees when the engine's ``import httpx`` failed.
    monkeypatch.setattr(latency_gate, "HTTPX_IMPORT_ERROR", "Traceback: No module named 'httpx'")
    result = run_module({"url": "http://127.0.0.1:1/"})
    assert result["failed"] is True
    assert result["msg"].startswith("Failed to import the required Python library (httpx) on ")


def test_without_httpx_the_module_still_imports_and_says_so():
    # A host without python3-httpx: every part of the gate must import, so that main() can say what is missing.
    script = (
        "import sys, io, json, contextlib\n"
        "sys.modules['httpx'] = sys.modules['httpcore'] = None\n"
        "from ansible.module_utils.testing import patch_module_args\n"
        "from ansible_collections.voxtral.deploy.plugins.modules import latency_gate\n"
        "out = io.StringIO()\n"
        "with patch_module_args({'url': 'http://127.0.0.1:1/'}), contextlib.redirect_stdout(out):\n"
        "    with contextlib.suppress(SystemExit):\n"
        "        latency_gate.main()\n"
        "print(json.loads(out.getvalue())['msg'])\n"
    )
    collections = str(Path(latency_gate.__file__).parents[5])  # the directory holding ansible_collections/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([collections, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Failed to import the required Python library (httpx) on "), done.stdout


# -- documentation ------------------------------------------------------------------------------------


def _spec_matches_docs(spec: dict, docs: dict, where: str) -> None:
    assert set(spec) == set(docs), f"{where}: options documented {sorted(docs)} vs spec {sorted(spec)}"
    for name, option in spec.items():
        doc = docs[name]
        assert doc["type"] == option.get("type", "str"), f"{where}.{name}: type"
        assert doc.get("default") == option.get("default"), f"{where}.{name}: default"
        assert doc.get("required", False) == option.get("required", False), f"{where}.{name}: required"
        assert doc.get("choices") == option.get("choices"), f"{where}.{name}: choices"
        assert doc.get("elements") == option.get("elements"), f"{where}.{name}: elements"
        assert option.get("no_log", False) == (name == "api_key"), f"{where}.{name}: no_log"
        if "options" in option:
            _spec_matches_docs(option["options"], doc["suboptions"], f"{where}.{name}")


def test_documentation_matches_the_argument_spec():
    docs = yaml.safe_load(latency_gate.DOCUMENTATION)
    _spec_matches_docs(latency_gate.ARGUMENT_SPEC, docs["options"], "latency_gate")
    yaml.safe_load(latency_gate.EXAMPLES)


def test_documented_return_keys_are_returned(server):
    documented = set(yaml.safe_load(latency_gate.RETURN))
    no_limits = dict.fromkeys(audio_metrics.DEFAULT_LIMITS)  # every figure measured, none judged
    result = run_module(
        {
            "url": server.url("/stream"),
            "stream": True,
            "requests": 1,
            "warmup": 0,
            "pcm": PCM,
            "audio_checks": {"limits": no_limits},
        }
    )
    assert documented <= set(result), documented - set(result)
    undocumented = set(result) - documented - {"changed", "invocation"}
    assert not undocumented, undocumented


# --- audio checks: the gate hears what it times -------------------------------------------------------

RATE = 24000
TEXT = "The gate hears the audio it times."  # 34 characters: about 2 s of speech


def syllables(seconds: float, level: float = 0.3) -> bytes:
    """A voiced-speech stand-in: 150 Hz with harmonics, in 200 ms syllables with 60 ms pauses (s16le)."""
    samples = array("h")
    for n in range(int(seconds * RATE)):
        t = n / RATE
        voiced = (t % 0.26) < 0.2
        value = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in (1, 2, 3)) / 1.83 if voiced else 0.0
        samples.append(int(level * 32767 * value))
    return samples.tobytes()


def gate_args(srv, path):
    return {
        "url": srv.url(path),
        "method": "POST",
        "body_json": {"input": TEXT, "voice": "neutral_female"},
        "stream": True,
        "requests": 2,
        "warmup": 0,
        "pcm": PCM,
        "audio_checks": {"utterance": "deploy-gate"},
    }


@pytest.fixture
def audio_server():
    rng = random.Random(7)
    speech = syllables(2.0)
    routes = {
        "/speech": audio_stream(speech),
        "/silence": audio_stream(b"\x00\x00" * 2 * RATE),
        "/noise": audio_stream(array("h", (rng.choice((-32768, 32767)) for _ in range(2 * RATE))).tobytes()),
        "/truncated": audio_stream(speech[: len(speech) * 3 // 10 // 2 * 2]),
    }
    with HTTPTestServer(routes) as running:
        yield running


def test_speech_passes_and_its_figures_are_returned(audio_server):
    result = run_module(gate_args(audio_server, "/speech"))
    assert result["passed"], result["failures"]
    audio = result["audio"]
    assert audio["utterance"] == "deploy-gate" and audio["text"] == TEXT
    assert audio["figures"]["speech_ratio"] > 0.5 and audio["figures"]["loudness_lufs"] is not None
    assert audio["failures"] == [] and audio["failed_requests"] == 0
    assert audio["limits"] == audio_metrics.DEFAULT_LIMITS


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/silence", "deploy-gate: speech ratio 0 < 0.5 (min_speech_ratio)"),
        ("/noise", "(max_clipping_ratio)"),
        ("/truncated", "< 0.5× (min_duration_ratio)"),
    ],
)
def test_silence_noise_or_a_truncated_utterance_fails_the_gate_at_a_good_ttfb(audio_server, path, expected):
    result = run_module({**gate_args(audio_server, path), "max_ttfb_p50_ms": 2000})
    assert not result["passed"]
    [failure] = result["failures"]  # the timing limits pass: only the audio fails
    assert failure.startswith("audio of request 0: deploy-gate: ")
    assert expected in failure
    assert failure.endswith("(2 of 2 responses failed an audio check)")


def test_a_limit_set_to_null_is_not_checked(audio_server):
    args = gate_args(audio_server, "/truncated")
    args["audio_checks"]["limits"] = {"min_duration_ratio": None, "min_speech_ratio": 0.1}
    assert run_module(args)["passed"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pcm": None}, "audio_checks needs pcm of 16-bit mono samples (sample_width 2, channels 1)"),
        ({"pcm": {"sample_rate": RATE, "channels": 2}}, "audio_checks needs pcm of 16-bit mono samples"),
        ({"audio_checks": {"limits": {"max_silence": 1}}}, "audio_checks.limits: unknown max_silence (known: "),
    ],
)
def test_bad_audio_settings_are_one_clear_error(audio_server, change, message):
    args = {k: v for k, v in {**gate_args(audio_server, "/speech"), **change}.items() if v is not None}
    result = run_module(args)
    assert result["failed"] and message in result["msg"]


# -- the flight's heartbeat ---------------------------------------------------------------------------


def heartbeat_route(heartbeat: Path, seen: list[float]):
    """Answer 200 after noting the heartbeat's age, then make it old again: each request must find it young."""

    def route(handler) -> None:
        seen.append(time.time() - heartbeat.stat().st_mtime)
        os.utime(heartbeat, (1000, 1000))
        fixed_delay(0)(handler)

    return route


def test_every_request_refreshes_the_flights_heartbeat_while_it_exists(tmp_path):
    heartbeat, seen = tmp_path / "flight-heartbeat", []
    heartbeat.touch()
    os.utime(heartbeat, (1000, 1000))
    with HTTPTestServer({"/beat": heartbeat_route(heartbeat, seen)}) as srv:
        result = run_module({"url": srv.url("/beat"), "requests": 4, "warmup": 1, "heartbeat": str(heartbeat)})
    assert result["passed"], result
    assert len(seen) == 5  # the warm-up too
    assert max(seen) < 60, seen


def test_an_empty_heartbeat_beats_nothing_and_a_missing_one_is_not_created(tmp_path):
    heartbeat, seen = tmp_path / "flight-heartbeat", []
    heartbeat.touch()
    os.utime(heartbeat, (1000, 1000))
    with HTTPTestServer({"/beat": heartbeat_route(heartbeat, seen)}) as srv:
        result = run_module({"url": srv.url("/beat"), "requests": 3, "warmup": 0, "heartbeat": ""})
        assert result["passed"], result
        assert min(seen) > 1e9, seen  # every request found it as old as it was made
        missing = tmp_path / "no-flight" / "flight-heartbeat"
        result = run_module({"url": srv.url("/beat"), "requests": 2, "warmup": 0, "heartbeat": str(missing)})
    assert result["passed"], result
    assert not missing.exists() and not missing.parent.exists()
