#!/usr/bin/python
"""Ansible module: measure an HTTP endpoint's latency and fail the task when it breaks a threshold."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: latency_gate
short_description: Measure an HTTP endpoint's latency and fail when a threshold is broken
description:
  - Sends O(warmup) discarded requests, then O(requests) counted requests (O(concurrency) at a time) to
    O(url) from the managed host, and measures each one with a monotonic clock.
  - Reports the total time of each request (from sending it to the last body byte) and, with O(stream=true),
    the time to the first body byte (for a TTS endpoint streaming raw audio, the time to first audio).
  - Compares p50 / p95 / p99, p50 time to first byte, p50 real-time factor and the error rate with the
    thresholds given, and with a recorded baseline (O(baseline_p50_ms) x O(max_ratio)).
  - Fails the task when any threshold is broken. The message has one line per broken threshold with the
    numbers, for example C(p50 412.3 ms > 380.0 ms (2.0 × baseline 190.0 ms)), and the failed result
    still carries every figure.
  - "Percentiles: linear interpolation between closest ranks (the inclusive method, Hyndman & Fan type 7,
    numpy's default C(linear), Python's C(statistics.quantiles(method='inclusive'))), over the successful
    counted requests only. Failed requests are counted in the error rate, never in the latencies."
  - Requests are timed on the wire, as an independent client such as wrk times them, from the start of the
    connect (or of the first write on a kept-alive connection) to the socket read that brought the first
    and the last body byte; the client's own request building and response parsing are not counted.
  - Each worker keeps one HTTP/1.1 keep-alive connection, so latencies after the warm-up exclude connection
    set-up. Proxy environment variables are ignored, the endpoint is measured directly. Redirects are not
    followed. TCP_NODELAY is set on every connection (httpcore before 0.17, under Debian 12's httpx 0.23,
    left it off, which delayed each POST by the peer's delayed ACK, about 40 ms).
author:
  - voxtral-deploy contributors
requirements:
  - httpx >= 0.23.3 on the managed host (C(python3-httpx) on Debian, Ubuntu and DGX OS)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The gate only measures, so it runs in check mode as well; it writes no O(save_to) file then.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: Absolute C(http://) or C(https://) URL of the endpoint.
    type: str
    required: true
  method:
    description: HTTP method, one of C(GET POST PUT PATCH DELETE HEAD OPTIONS) (case-insensitive).
    type: str
    default: GET
  body:
    description:
      - Raw request body, sent as is (UTF-8). Set its C(Content-Type) in O(headers).
      - Mutually exclusive with O(body_json).
    type: str
  body_json:
    description:
      - Request body serialised as JSON, sent with C(Content-Type) C(application/json) unless O(headers) sets
        another. A string is taken as JSON text and must parse.
      - Mutually exclusive with O(body).
    type: raw
  headers:
    description: Extra request headers.
    type: dict
    default: {}
  api_key:
    description:
      - Sent as C(Authorization) C(Bearer <api_key>). Never logged.
      - Do not also set C(Authorization) in O(headers).
    type: str
  requests:
    description: Number of counted requests.
    type: int
    default: 20
  warmup:
    description:
      - Number of requests sent first and discarded (connection set-up, caches, CUDA graph capture).
      - Use at least O(concurrency) so that every worker's connection is warm.
    type: int
    default: 2
  concurrency:
    description: Number of requests in flight at once (one thread and one connection each).
    type: int
    default: 1
  timeout:
    description:
      - Deadline for one request in seconds, from sending it to its last body byte. It also bounds each
        network wait (connect, send, each read), so a request that trickles bytes ends at most one read
        wait after the deadline.
    type: float
    default: 30
  stream:
    description:
      - Read the response body as it arrives and measure the time to its first byte (O(max_ttfb_p50_ms)
        needs it). The request itself is not changed, so ask the endpoint to stream in O(body_json).
    type: bool
    default: false
  expect_status:
    description: Status codes that count as success; any other is a C(status) error.
    type: list
    elements: int
    default: [200]
  expect_content_type:
    description:
      - Prefix the response's C(Content-Type) must start with (case-insensitive), for example C(audio/).
        A mismatch is a C(content_type) error.
    type: str
  max_p50_ms:
    description: Maximum p50 total time in milliseconds.
    type: float
  max_p95_ms:
    description: Maximum p95 total time in milliseconds.
    type: float
  max_p99_ms:
    description: Maximum p99 total time in milliseconds.
    type: float
  max_ttfb_p50_ms:
    description: Maximum p50 time to first byte in milliseconds. Needs O(stream=true).
    type: float
  baseline_p50_ms:
    description:
      - A p50 recorded earlier (for example Gemma's before the flight). The p50 measured now must not exceed
        O(max_ratio) times this.
    type: float
  max_ratio:
    description:
      - Largest allowed p50 / O(baseline_p50_ms). Needs O(baseline_p50_ms).
      - When O(baseline_p50_ms) is set without it, 2.0 applies (abort above twice the baseline).
    type: float
  max_error_rate:
    description: Largest allowed share of failed counted requests, 0 to 1.
    type: float
    default: 0
  max_consecutive_errors:
    description:
      - Stop after this many errors in a row (warm-up included) instead of waiting out every timeout on a
        dead endpoint. The gate then fails. V(0) never stops early.
    type: int
    default: 5
  pcm:
    description:
      - Format of a raw PCM audio response body. With it, each response's audio duration and real-time
        factor (RTF = total request time / audio seconds) are computed, and a successful response with no
        audio counts as an C(other) error.
      - Voxtral's raw stream (C(response_format=pcm), C(stream_format=audio)) is s16le, 24 kHz, mono.
    type: dict
    suboptions:
      sample_rate:
        description: Samples per second.
        type: int
        required: true
      sample_width:
        description: Bytes per sample.
        type: int
        default: 2
        choices: [1, 2, 3, 4]
      channels:
        description: Number of channels.
        type: int
        default: 1
  max_rtf_p50:
    description: Maximum p50 real-time factor. Needs O(pcm).
    type: float
  audio_checks:
    description:
      - Listen to each successful response's audio (16-bit mono O(pcm)) after its timing is taken - is there
        speech, how much silence leads and trails, is it clipped, how loud (ITU-R BS.1770), does its length fit
        the text - and fail the gate when a figure is outside its limit (module_utils audio_metrics).
      - A fast server streaming silence, noise or a truncated utterance passes the timing limits; this does not.
    type: dict
    suboptions:
      text:
        description: The text that was synthesized (for the duration check). Default is O(body_json)'s C(input).
        type: str
      utterance:
        description: Name of the utterance in the messages.
        type: str
        default: gate
      limits:
        description:
          - Limits over the defaults of audio_metrics C(DEFAULT_LIMITS) (max_leading_silence_s, max_trailing_silence_s,
            min_speech_ratio, max_clipping_ratio, min_loudness_lufs, max_loudness_lufs, min_duration_ratio,
            max_duration_ratio); a limit set to null is not checked.
        type: dict
        default: {}
  save_to:
    description:
      - Path on the managed host where the result is written as JSON (atomically, through a temporary file in
        the same directory and a rename). The directory must exist. Also written when the gate fails.
      - Not written in check mode.
    type: path
  samples_limit:
    description:
      - Return (and save) at most this many per-request samples, the first counted ones. The figures
        always cover every request; raise this for a report that needs each request.
    type: int
    default: 20
  validate_certs:
    description: Verify the server's TLS certificate for C(https://) URLs.
    type: bool
    default: true
notes:
  - The task reports C(changed) only when O(save_to) wrote a file with new content.
  - Latencies are measured with C(time.perf_counter). C(benchmarks/latency_gate_bench.py) compares the
    gate with wrk and curl on the same endpoint and prints its own cost per request.
seealso:
  - name: statistics.quantiles
    description: The reference for the percentile method.
    link: https://docs.python.org/3/library/statistics.html#statistics.quantiles
"""

EXAMPLES = r"""
- name: Record Gemma's baseline before the flight
  latency_gate:
    url: http://127.0.0.1:8080/v1/chat/completions
    method: POST
    body_json:
      model: gemma
      messages: [{role: user, content: "Say OK."}]
      max_tokens: 8
    requests: 20
    warmup: 3
    save_to: /var/lib/voxtral-deploy/gate-gemma-baseline.json
  register: gemma_baseline

- name: Voxtral's time to first audio while Gemma is paused
  latency_gate:
    url: http://127.0.0.1:8091/v1/audio/speech
    method: POST
    body_json:
      model: /opt/models/voxtral
      input: "The flight is on time."
      voice: casual_female
      stream: true
      stream_format: audio
      response_format: pcm
    stream: true
    expect_content_type: audio/
    pcm: {sample_rate: 24000}
    requests: 10
    warmup: 2
    timeout: 60
    max_ttfb_p50_ms: 500
    max_rtf_p50: 0.5
    max_consecutive_errors: 3

- name: Gemma again after the flight, within 2x its baseline
  latency_gate:
    url: http://127.0.0.1:8080/v1/chat/completions
    method: POST
    body_json: "{{ gemma_gate_request }}"
    api_key: "{{ gemma_api_key | default(omit) }}"
    baseline_p50_ms: "{{ gemma_baseline.total_ms.p50 }}"
    max_ratio: 2.0
"""

RETURN = r"""
requests:
  description: Counted requests sent (fewer than asked when the gate stopped early).
  returned: always
  type: int
  sample: 20
planned:
  description: Counted requests asked for (O(requests)).
  returned: always
  type: int
  sample: 20
ok:
  description: Counted requests that succeeded.
  returned: always
  type: int
  sample: 19
errors:
  description: Failed counted requests by kind.
  returned: always
  type: dict
  contains:
    timeout:
      description: Connect, send or read wait, or the whole request, took longer than O(timeout).
      type: int
    connect:
      description: The connection could not be made (refused, unreachable, DNS).
      type: int
    status:
      description: The status code was not in O(expect_status).
      type: int
    content_type:
      description: The C(Content-Type) did not start with O(expect_content_type).
      type: int
    other:
      description: Anything else (connection dropped mid-response, empty audio, ...).
      type: int
  sample: {timeout: 0, connect: 0, status: 1, content_type: 0, other: 0}
error_messages:
  description: The first message seen for each kind of error, warm-up included.
  returned: always
  type: dict
  sample: {status: "status 503 from http://127.0.0.1:8091/health (expected 200): starting"}
warmup_errors:
  description: Failed warm-up requests (not in the error rate).
  returned: always
  type: int
  sample: 0
status_codes:
  description: Counted responses by status code.
  returned: always
  type: dict
  sample: {"200": 19, "503": 1}
error_rate:
  description: Failed / counted requests, or null when none was counted.
  returned: always
  type: float
  sample: 0.05
total_ms:
  description: Total time per successful request, milliseconds, C(count min max mean p50 p95 p99).
  returned: always
  type: dict
  sample: {count: 19, min: 180.2, max: 230.9, mean: 192.4, p50: 190.1, p95: 221.0, p99: 229.0}
ttfb_ms:
  description: Time to first body byte per successful request, milliseconds (count 0 without O(stream)).
  returned: always
  type: dict
  sample: {count: 19, min: 80.2, max: 99.1, mean: 84.0, p50: 82.6, p95: 97.3, p99: 98.7}
bytes:
  description: Body bytes per successful request, same keys as RV(total_ms).
  returned: always
  type: dict
bytes_total:
  description: Body bytes received by all successful counted requests.
  returned: always
  type: int
audio_seconds:
  description: Audio duration per successful request, same keys as RV(total_ms).
  returned: when O(pcm) is given
  type: dict
rtf:
  description: Real-time factor (total time / audio seconds) per successful request, keys as RV(total_ms).
  returned: when O(pcm) is given
  type: dict
audio:
  description:
    - What O(audio_checks) heard - C(utterance), C(text), the C(limits) applied, the C(figures) of the first
      successful response, and C(failures) (each message with the request it came from).
  returned: when O(audio_checks) is given
  type: dict
baseline_p50_ms:
  description: The baseline given, or null.
  returned: always
  type: float
  sample: 190.0
baseline_ratio:
  description: p50 / O(baseline_p50_ms), or null.
  returned: always
  type: float
  sample: 1.01
threshold_ms:
  description: The effective p50 limit, the lower of O(max_p50_ms) and O(max_ratio) x O(baseline_p50_ms).
  returned: always
  type: float
  sample: 380.0
stopped_early:
  description: Whether O(max_consecutive_errors) stopped the gate before all requests were sent.
  returned: always
  type: bool
passed:
  description: Whether every threshold held.
  returned: always
  type: bool
failures:
  description: One line per broken threshold, with the numbers. Joined with C(; ) as the failure message.
  returned: always
  type: list
  elements: str
  sample:
    - "p50 412.3 ms > 380.0 ms (2.0 × baseline 190.0 ms)"
    - "error rate 0.25 > 0.00 (5 of 20 failed: 5 status)"
saved_to:
  description: Path of the saved result, or null when nothing was written (no O(save_to), or check mode).
  returned: always
  type: str
samples:
  description: The first O(samples_limit) counted requests, in the order they were sent.
  returned: always
  type: list
  elements: dict
  sample:
    - {index: 0, ok: true, status: 200, total_ms: 190.4, ttfb_ms: null, bytes: 312,
       error_kind: null, error: null}
started_at:
  description: When the first request was sent (ISO 8601, UTC).
  returned: always
  type: str
  sample: "2026-11-25T17:30:00.123+00:00"
finished_at:
  description: When the last request ended (ISO 8601, UTC).
  returned: always
  type: str
elapsed_s:
  description: Wall-clock seconds for warm-up and counted requests.
  returned: always
  type: float
url:
  description: The URL measured.
  returned: always
  type: str
method:
  description: The method used.
  returned: always
  type: str
concurrency:
  description: Requests in flight at once.
  returned: always
  type: int
"""

import contextlib
import json
import os
import socket
import threading
import traceback
from datetime import datetime, timezone
from time import perf_counter
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_if_changed
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import DEFAULT_LIMITS as AUDIO_LIMITS
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import check as audio_check
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import measure as audio_measure
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import samples_from_pcm
from ansible_collections.voxtral.deploy.plugins.module_utils.latency_stats import ratio, summarize

try:
    import httpx
except ImportError:
    HTTPX_IMPORT_ERROR = traceback.format_exc()
    httpx = None
else:
    HTTPX_IMPORT_ERROR = None

ERROR_KINDS = ("timeout", "connect", "status", "content_type", "other")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# The seed's rule: abort when p50 is above twice the baseline.
DEFAULT_MAX_RATIO = 2.0
# How much of an unexpected response body goes into the error message.
SNIPPET_CHARS = 200
MS = 3  # decimals kept for milliseconds (1 µs)
UNITLESS = 4  # decimals kept for ratios, rates, seconds of audio

ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True),
    method=dict(type="str", default="GET"),
    body=dict(type="str"),
    body_json=dict(type="raw"),
    headers=dict(type="dict", default={}),
    api_key=dict(type="str", no_log=True),
    requests=dict(type="int", default=20),
    warmup=dict(type="int", default=2),
    concurrency=dict(type="int", default=1),
    timeout=dict(type="float", default=30),
    stream=dict(type="bool", default=False),
    expect_status=dict(type="list", elements="int", default=[200]),
    expect_content_type=dict(type="str"),
    max_p50_ms=dict(type="float"),
    max_p95_ms=dict(type="float"),
    max_p99_ms=dict(type="float"),
    max_ttfb_p50_ms=dict(type="float"),
    baseline_p50_ms=dict(type="float"),
    max_ratio=dict(type="float"),
    max_error_rate=dict(type="float", default=0),
    max_consecutive_errors=dict(type="int", default=5),
    pcm=dict(
        type="dict",
        options=dict(
            sample_rate=dict(type="int", required=True),
            sample_width=dict(type="int", default=2, choices=[1, 2, 3, 4]),
            channels=dict(type="int", default=1),
        ),
    ),
    max_rtf_p50=dict(type="float"),
    audio_checks=dict(
        type="dict",
        options=dict(
            text=dict(type="str"),
            utterance=dict(type="str", default="gate"),
            limits=dict(type="dict", default={}),
        ),
    ),
    save_to=dict(type="path"),
    samples_limit=dict(type="int", default=20),
    validate_certs=dict(type="bool", default=True),
)


_TIMEOUT_PHASES = {
    "ConnectTimeout": "connect",
    "ReadTimeout": "read",
    "WriteTimeout": "write",
    "PoolTimeout": "pool",
}


class GateParameterError(Exception):
    """A parameter the gate cannot work with; its text is the task's whole failure message."""


class GateSaveError(Exception):
    """save_to could not be written; carries the measured result so that the figures are not lost."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class _DeadlineExceeded(Exception):
    """The whole request took longer than the per-request timeout."""


class _WireClock:
    """When one worker's connection last connected, first wrote and last read (set by _TimedStream).

    The gate times requests on the wire, as an independent client such as wrk does: from the start of the
    connect (a new connection) or of the first write (a kept-alive one) to the socket read that brought
    the first and the last body byte. Building the request, taking the pooled connection and parsing the
    response (httpx and h11, pure Python: most of a millisecond per request on a busy 2-core host) are
    then not counted.
    """

    __slots__ = ("connect_at", "first_write_at", "read_at")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.connect_at = self.first_write_at = self.read_at = None

    def start(self) -> float | None:
        return self.connect_at if self.connect_at is not None else self.first_write_at


class _TimedStream:
    """httpcore's network stream, noting on the clock when data is written and read."""

    def __init__(self, inner, clock: _WireClock):
        self._inner = inner
        self._clock = clock

    def read(self, *args, **kwargs):
        data = self._inner.read(*args, **kwargs)
        self._clock.read_at = perf_counter()
        return data

    def write(self, *args, **kwargs):
        if self._clock.first_write_at is None:
            self._clock.first_write_at = perf_counter()
        return self._inner.write(*args, **kwargs)

    def start_tls(self, *args, **kwargs):
        return _TimedStream(self._inner.start_tls(*args, **kwargs), self._clock)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _TimedBackend:
    """httpcore's sync network backend: timed streams, and TCP_NODELAY on every new connection.

    httpcore before 0.17 (under httpx 0.23, Debian 12's python3-httpx) leaves Nagle's algorithm on and writes
    a request's headers and body separately: with the peer's delayed ACK that added ~44 ms to every
    keep-alive POST on loopback (measured with httpx 0.23.3 / httpcore 0.16.3; 1.3 ms with httpx 0.28.1).
    httpcore 0.17+ sets TCP_NODELAY itself (encode/httpcore#651); setting it again there is harmless.
    """

    def __init__(self, inner, clock: _WireClock):
        self._inner = inner
        self._clock = clock

    def connect_tcp(self, *args, **kwargs):
        if self._clock.connect_at is None:
            self._clock.connect_at = perf_counter()
        stream = self._inner.connect_tcp(*args, **kwargs)
        sock = stream.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _TimedStream(stream, self._clock)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _fmt_pair(value: float, limit: float, decimals: int) -> tuple[str, str]:
    """Both numbers with enough decimals that a broken limit never reads as ``0.13 > 0.13``."""
    for places in range(decimals, decimals + 5):
        shown = f"{value:.{places}f}", f"{limit:.{places}f}"
        if shown[0] != shown[1]:
            return shown
    return f"{value!r}", f"{limit!r}"


def _fmt_factor(factor: float) -> str:
    """2 -> '2.0', 1.75 -> '1.75'."""
    return f"{factor:.1f}" if round(factor, 1) == factor else f"{factor:g}"


def _describe_exception(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LatencyGate:
    """Runs the measurement for one task: validate, send, summarise, judge, save."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_index = 0
        self._consecutive_errors = 0
        self._stop_reason = None
        self._error_messages: dict[str, str] = {}
        self.audio = None
        self._audio_first_failure = None

    # -- parameters ---------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise GateParameterError with one clear sentence for the first unusable parameter."""
        p = self.params
        url = p["url"].strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise GateParameterError(f"url {url!r} is malformed: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GateParameterError(f"url must be an absolute http:// or https:// URL with a host, got {p['url']!r}")
        if any(ch.isspace() for ch in url):
            raise GateParameterError(f"url must not contain spaces, got {p['url']!r}")
        method = p["method"].upper()
        if method not in METHODS:
            raise GateParameterError(f"method must be one of {', '.join(METHODS)}, got {p['method']!r}")

        for name, minimum in (
            ("requests", 1),
            ("warmup", 0),
            ("concurrency", 1),
            ("max_consecutive_errors", 0),
            ("samples_limit", 0),
        ):
            if p[name] < minimum:
                raise GateParameterError(f"{name} must be at least {minimum}, got {p[name]}")
        if not p["timeout"] > 0:
            raise GateParameterError(f"timeout must be more than 0 seconds, got {p['timeout']:g}")
        for name in (
            "max_p50_ms",
            "max_p95_ms",
            "max_p99_ms",
            "max_ttfb_p50_ms",
            "baseline_p50_ms",
            "max_ratio",
            "max_rtf_p50",
        ):
            if p[name] is not None and not p[name] > 0:
                raise GateParameterError(f"{name} must be more than 0, got {p[name]:g}")
        if not 0 <= p["max_error_rate"] <= 1:
            raise GateParameterError(f"max_error_rate must be within 0..1, got {p['max_error_rate']:g}")
        for code in p["expect_status"]:
            if not 100 <= code <= 599:
                raise GateParameterError(f"expect_status must hold HTTP status codes (100..599), got {code}")
        if not p["expect_status"]:
            raise GateParameterError("expect_status must list at least one status code")
        if p["max_ttfb_p50_ms"] is not None and not p["stream"]:
            raise GateParameterError("max_ttfb_p50_ms needs stream: true (time to first byte is measured then)")
        if p["pcm"] is not None:
            for name in ("sample_rate", "channels"):
                if p["pcm"][name] < 1:
                    raise GateParameterError(f"pcm.{name} must be at least 1, got {p['pcm'][name]}")
        if p["audio_checks"] is not None:
            if p["pcm"] is None or (p["pcm"]["sample_width"], p["pcm"]["channels"]) != (2, 1):
                raise GateParameterError("audio_checks needs pcm of 16-bit mono samples (sample_width 2, channels 1)")
            unknown = sorted(set(p["audio_checks"]["limits"]) - set(AUDIO_LIMITS))
            if unknown:
                raise GateParameterError(
                    f"audio_checks.limits: unknown {', '.join(unknown)} (known: {', '.join(AUDIO_LIMITS)})"
                )
        headers = {str(k): str(v) for k, v in p["headers"].items()}
        if p["api_key"] and any(k.lower() == "authorization" for k in headers):
            raise GateParameterError("set either api_key or an Authorization header, not both")
        if isinstance(p["body_json"], str):
            try:
                json.loads(p["body_json"])
            except ValueError as exc:
                raise GateParameterError(f"body_json is a string that is not valid JSON: {exc}") from None
        if p["save_to"] and not self.module.check_mode:
            directory = os.path.dirname(p["save_to"]) or "."
            if not os.path.isdir(directory):
                raise GateParameterError(f"save_to: directory {directory} does not exist")

    def _prepare(self) -> None:
        """The parts of every request, computed once."""
        p = self.params
        self.url = p["url"].strip()
        self.method = p["method"].upper()
        self.timeout = p["timeout"]
        headers = {"User-Agent": "voxtral-deploy-latency-gate"}
        headers.update({str(k): str(v) for k, v in p["headers"].items()})
        content = None
        if p["body"] is not None:
            content = p["body"].encode("utf-8")
        elif p["body_json"] is not None:
            document = p["body_json"]
            if isinstance(document, str):
                document = json.loads(document)
            content = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        if p["api_key"]:
            headers["Authorization"] = f"Bearer {p['api_key']}"
        self.headers = headers
        self.content = content
        self.expect_status = frozenset(p["expect_status"])
        self.expect_content_type = (p["expect_content_type"] or "").lower() or None
        pcm = p["pcm"]
        self.bytes_per_second = pcm["sample_rate"] * pcm["sample_width"] * pcm["channels"] if pcm else None
        self.audio = None
        if p["audio_checks"] is not None:
            text = p["audio_checks"]["text"]
            if text is None and isinstance(p["body_json"], (dict, str)):
                document = json.loads(p["body_json"]) if isinstance(p["body_json"], str) else p["body_json"]
                text = document.get("input") if isinstance(document, dict) else None
            limits = {**AUDIO_LIMITS, **p["audio_checks"]["limits"]}
            self.audio = {"utterance": p["audio_checks"]["utterance"], "text": text, "limits": limits}

    def _new_client(self) -> tuple:
        """One worker's httpx client (a single keep-alive connection) and the clock of its socket."""
        transport = httpx.HTTPTransport(
            verify=self.params["validate_certs"],
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            retries=0,
        )
        # httpcore's pool keeps its network backend in _network_backend (0.16 .. 1.0). Should a later
        # release move it, the gate still works: it times around the httpx calls instead (no wire clock).
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        clock = None
        if backend is not None:
            clock = _WireClock()
            pool._network_backend = _TimedBackend(backend, clock)
        client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            trust_env=False,
        )
        return client, clock

    def _check_request_builds(self, client) -> None:
        """Header values httpx refuses (e.g. non-ASCII) are a parameter error, not N request errors."""
        try:
            client.build_request(self.method, self.url, content=self.content, headers=self.headers)
        except Exception as exc:
            raise GateParameterError(f"cannot build the request: {_describe_exception(exc)}") from None

    # -- measuring ----------------------------------------------------------------------------------

    def _sample(self, ok, started, status, kind=None, message=None, ttfb=None, end=None, nbytes=0) -> dict:
        end = perf_counter() if end is None else end
        return {
            "ok": ok,
            "status": status,
            "total_ms": (end - started) * 1000.0,
            "ttfb_ms": None if ttfb is None else (ttfb - started) * 1000.0,
            "bytes": nbytes,
            "error_kind": kind,
            "error": message,
        }

    def _read_snippet(self, response, deadline: float) -> str:
        collected = b""
        try:
            for chunk in response.iter_bytes():
                collected += chunk
                if len(collected) >= SNIPPET_CHARS or perf_counter() > deadline:
                    break
        except Exception:  # the status is the error; a body we cannot read adds nothing
            pass
        text = " ".join(collected[:SNIPPET_CHARS].decode("utf-8", "replace").split())
        return f": {text}" if text else ""

    def request_once(self, client, clock: _WireClock | None = None) -> dict:
        """One request: its timings, or the kind of error and a sentence a person can act on.

        With a clock, times are taken on the wire (see _WireClock); without one, around the httpx calls.
        """
        url = self.url
        status = None
        request = client.build_request(self.method, url, content=self.content, headers=self.headers)
        if clock is not None:
            clock.reset()
        sent = perf_counter()
        deadline = sent + self.timeout
        response = None
        try:
            response = client.send(request, stream=True)
            status = response.status_code
            if status not in self.expect_status:
                expected = "/".join(str(code) for code in sorted(self.expect_status))
                snippet = self._read_snippet(response, deadline)
                message = f"status {status} from {url} (expected {expected}){snippet}"
                return self._failed(clock, sent, status, "status", message)
            if self.expect_content_type is not None:
                content_type = response.headers.get("content-type", "")
                if not content_type.lower().startswith(self.expect_content_type):
                    message = (
                        f"content type {content_type or '(none)'!r} from {url} "
                        f"(expected {self.params['expect_content_type']!r}...)"
                    )
                    return self._failed(clock, sent, status, "content_type", message)
            first_byte = last_byte = None
            nbytes = 0
            audio = bytearray() if self.audio is not None else None
            for chunk in response.iter_bytes():
                if chunk:
                    now = perf_counter()
                    if audio is not None:
                        audio += chunk
                    # The read that brought this chunk, not the moment httpx handed it over.
                    last_byte = clock.read_at if clock is not None and clock.read_at is not None else now
                    if first_byte is None:
                        first_byte = last_byte
                    nbytes += len(chunk)
                    if now > deadline:
                        raise _DeadlineExceeded
            end = last_byte if last_byte is not None else perf_counter()
        except _DeadlineExceeded:
            message = f"timeout: {url} did not finish within {self.timeout:g} s"
            return self._failed(clock, sent, status, "timeout", message)
        except httpx.TimeoutException as exc:
            phase = _TIMEOUT_PHASES.get(type(exc).__name__, "")
            message = f"{phase} timeout after {self.timeout:g} s from {url}".lstrip()
            return self._failed(clock, sent, status, "timeout", message)
        except httpx.ConnectError as exc:
            return self._failed(clock, sent, status, "connect", f"connect error to {url}: {exc}")
        except Exception as exc:  # a dropped connection, a decoding error...: counted, never fatal
            return self._failed(clock, sent, status, "other", f"{_describe_exception(exc)} from {url}")
        finally:
            if response is not None:
                response.close()

        started = (clock.start() if clock is not None else None) or sent
        if self.bytes_per_second is not None and nbytes == 0:
            return self._sample(False, started, status, "other", f"empty audio body from {url}", end=end)
        ttfb = first_byte if self.params["stream"] else None
        sample = self._sample(True, started, status, ttfb=ttfb, end=end)
        sample["bytes"] = nbytes
        if audio is not None:  # after the timed window: listening costs the server nothing
            figures = audio_measure(
                samples_from_pcm(bytes(audio)), self.params["pcm"]["sample_rate"], self.audio["text"]
            )
            sample["audio"] = figures
            sample["audio_failures"] = audio_check(figures, self.audio["limits"], self.audio["utterance"])
        return sample

    def _failed(self, clock, sent: float, status, kind: str, message: str) -> dict:
        started = (clock.start() if clock is not None else None) or sent
        return self._sample(False, started, status, kind, message)

    def _record(self, sample: dict) -> None:
        """Consecutive-error bookkeeping, shared by all workers (call with the lock held)."""
        if sample["ok"]:
            self._consecutive_errors = 0
            return
        self._error_messages.setdefault(sample["error_kind"], sample["error"])
        self._consecutive_errors += 1
        limit = self.params["max_consecutive_errors"]
        if limit and self._consecutive_errors >= limit and not self._stop.is_set():
            self._stop_reason = f"stopped after {self._consecutive_errors} consecutive errors: {sample['error']}"
            self._stop.set()

    def _worker(self, channel: tuple, total: int, out: list) -> None:
        while not self._stop.is_set():
            with self._lock:
                index = self._next_index
                if index >= total:
                    return
                self._next_index += 1
            try:
                sample = self.request_once(*channel)
            except Exception as exc:  # a bug here must not silently lose a request in a thread
                now = perf_counter()
                sample = self._sample(False, now, None, "other", _describe_exception(exc), end=now)
            sample["index"] = index
            with self._lock:
                self._record(sample)
                out.append(sample)

    def _run_phase(self, channels: list, total: int) -> list:
        """Send ``total`` requests over the (client, clock) channels, one thread each; completion order."""
        out: list = []
        self._next_index = 0
        if total == 0 or self._stop.is_set():
            return out
        if len(channels) == 1:
            self._worker(channels[0], total, out)
            return out
        threads = [
            threading.Thread(target=self._worker, args=(channel, total, out), daemon=True) for channel in channels
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return out

    # -- judging ------------------------------------------------------------------------------------

    def _summarize(self, samples: list, warmup_samples: list) -> dict:
        p = self.params
        good = [s for s in samples if s["ok"]]
        errors = dict.fromkeys(ERROR_KINDS, 0)
        status_codes: dict[str, int] = {}
        for s in samples:
            if not s["ok"]:
                errors[s["error_kind"]] += 1
            if s["status"] is not None:
                status_codes[str(s["status"])] = status_codes.get(str(s["status"]), 0) + 1
        failed = len(samples) - len(good)
        result = {
            "url": self.url,
            "method": self.method,
            "concurrency": p["concurrency"],
            "requests": len(samples),
            "planned": p["requests"],
            "ok": len(good),
            "errors": errors,
            "error_messages": dict(self._error_messages),
            "warmup_errors": sum(1 for s in warmup_samples if not s["ok"]),
            "status_codes": status_codes,
            "error_rate": round(failed / len(samples), UNITLESS) if samples else None,
            "total_ms": summarize((s["total_ms"] for s in good), MS),
            "ttfb_ms": summarize((s["ttfb_ms"] for s in good), MS),
            "bytes": summarize((s["bytes"] for s in good), 1),
            "bytes_total": sum(s["bytes"] for s in good),
            "stopped_early": self._stop.is_set() and len(samples) < p["requests"],
        }
        if self.bytes_per_second is not None:
            for s in samples:
                if s["ok"]:
                    s["audio_seconds"] = round(s["bytes"] / self.bytes_per_second, 6)
                    s["rtf"] = s["total_ms"] / 1000.0 / s["audio_seconds"]
            result["audio_seconds"] = summarize((s["audio_seconds"] for s in good), UNITLESS)
            result["rtf"] = summarize((s["rtf"] for s in good), UNITLESS)
        if self.audio is not None:
            heard_bad = [s for s in good if s["audio_failures"]]
            result["audio"] = {
                **self.audio,
                "figures": good[0]["audio"] if good else None,
                "failures": [f"{m} (request {s['index']})" for s in heard_bad for m in s["audio_failures"]],
                "failed_requests": len(heard_bad),
            }
            self._audio_first_failure = heard_bad[0] if heard_bad else None

        baseline = p["baseline_p50_ms"]
        max_ratio = p["max_ratio"] if p["max_ratio"] is not None else DEFAULT_MAX_RATIO
        limits = [limit for limit in (p["max_p50_ms"], max_ratio * baseline if baseline else None) if limit]
        result["baseline_p50_ms"] = baseline
        result["baseline_ratio"] = ratio(result["total_ms"]["p50"], baseline, UNITLESS)
        result["threshold_ms"] = round(min(limits), MS) if limits else None
        result["failures"] = self._judge(result, baseline, max_ratio)
        result["passed"] = not result["failures"]
        return result

    def _judge(self, result: dict, baseline: float | None, max_ratio: float) -> list:
        p = self.params
        failures = []
        if self._stop_reason and result["stopped_early"]:
            failures.append(self._stop_reason)
        if result["requests"]:
            failed = result["requests"] - result["ok"]
            if result["error_rate"] > p["max_error_rate"]:
                kinds = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in result["errors"].items() if n)
                shown = _fmt_pair(result["error_rate"], p["max_error_rate"], 2)
                failures.append(
                    f"error rate {shown[0]} > {shown[1]} ({failed} of {result['requests']} failed: {kinds})"
                )

        def over(label, value, limit, unit=" ms", decimals=1, why=""):
            if limit is None:
                return
            if value is None:
                failures.append(f"{label} not measured: no successful request")
            elif value > limit:
                shown = _fmt_pair(value, limit, decimals)
                failures.append(f"{label} {shown[0]}{unit} > {shown[1]}{unit}{why}")

        total = result["total_ms"]
        over("p50", total["p50"], p["max_p50_ms"])
        if baseline:
            why = f" ({_fmt_factor(max_ratio)} × baseline {baseline:.1f} ms)"
            over("p50", total["p50"], round(max_ratio * baseline, MS), why=why)
        over("p95", total["p95"], p["max_p95_ms"])
        over("p99", total["p99"], p["max_p99_ms"])
        over("time to first byte p50", result["ttfb_ms"]["p50"], p["max_ttfb_p50_ms"])
        if "rtf" in result:
            over("RTF p50", result["rtf"]["p50"], p["max_rtf_p50"], unit="", decimals=2)
        first = self._audio_first_failure
        if first is not None:
            # The first failing response's every figure; how many responses failed says whether it is a fluke.
            failures.append(
                f"audio of request {first['index']}: {'; '.join(first['audio_failures'])} "
                f"({result['audio']['failed_requests']} of {result['ok']} responses failed an audio check)"
            )
        if result["ok"] == 0 and not failures:
            failures.append(f"no successful request ({result['requests']} sent to {self.url})")
        # Drop the "not measured" duplicates when nothing succeeded: the error lines already say why.
        if result["ok"] == 0 and len(failures) > 1:
            failures = [line for line in failures if "not measured" not in line] or failures
        return failures

    # -- saving -------------------------------------------------------------------------------------

    def _save(self, result: dict) -> bool:
        """Write the result JSON atomically; True when the file's content changed."""
        path = self.params["save_to"]
        data = (json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        # Not module.atomic_move: it fails the task itself, and the figures must reach the result.
        return write_if_changed(path, data)

    # -- the task -----------------------------------------------------------------------------------

    def run(self) -> dict:
        """Measure and judge; the result dict (``changed``, figures, ``passed``, ``failures``)."""
        self.validate()
        self._prepare()
        p = self.params
        channels = [self._new_client() for _ in range(p["concurrency"])]
        try:
            self._check_request_builds(channels[0][0])
            started_at = _utc_now()
            wall_start = perf_counter()
            warmup_samples = self._run_phase(channels, p["warmup"])
            samples = self._run_phase(channels, p["requests"])
            elapsed = perf_counter() - wall_start
            finished_at = _utc_now()
        finally:
            for client, _clock in channels:
                client.close()

        samples.sort(key=lambda s: s["index"])
        result = self._summarize(samples, warmup_samples)
        result["started_at"] = started_at
        result["finished_at"] = finished_at
        result["elapsed_s"] = round(elapsed, UNITLESS)
        result["samples"] = [self._rounded(s) for s in samples[: p["samples_limit"]]]
        result["saved_to"] = None
        result["changed"] = False
        if p["save_to"] and not self.module.check_mode:
            result["saved_to"] = p["save_to"]
            saved = {k: v for k, v in result.items() if k != "changed"}
            try:
                result["changed"] = self._save(saved)
            except OSError as exc:
                result["saved_to"] = None
                raise GateSaveError(f"save_to {p['save_to']}: {exc}", result) from None
        return result

    @staticmethod
    def _rounded(sample: dict) -> dict:
        rounded = dict(sample)
        for key, places in (("total_ms", MS), ("ttfb_ms", MS), ("audio_seconds", 6), ("rtf", UNITLESS)):
            if rounded.get(key) is not None:
                rounded[key] = round(rounded[key], places)
        return rounded


def build_module() -> AnsibleModule:
    return AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("body", "body_json")],
        required_by={"max_ratio": "baseline_p50_ms", "max_rtf_p50": "pcm"},
        supports_check_mode=True,
    )


def main() -> None:
    module = build_module()
    if httpx is None:
        module.fail_json(msg=missing_required_lib("httpx"), exception=HTTPX_IMPORT_ERROR)
    gate = LatencyGate(module)
    try:
        result = gate.run()
    except GateParameterError as exc:
        module.fail_json(msg=str(exc))
    except GateSaveError as exc:
        failures = exc.result["failures"]
        module.fail_json(msg="; ".join([str(exc), *failures]), **exc.result)
    if not result["passed"]:
        module.fail_json(msg="; ".join(result["failures"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
