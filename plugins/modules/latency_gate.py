#!/usr/bin/python
"""Ansible module: measure an HTTP endpoint's latency and fail the task when it breaks a threshold.

This file holds the documentation, the argument spec and main(); the work is done in
module_utils/_latency_gate/ (params, engine over wire-level timing, judge, result_file).
"""

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
  - voxtral-deploy maintainers (!UNKNOWN)
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
  heartbeat:
    description:
      - The flight's heartbeat, refreshed before every request while a flight guard is armed (a gate of many
        requests is one long task the controller waits on); never created here (module_utils/flight_heartbeat.py).
      - Set it to an empty string when the gate runs as an async job (C(async) with C(poll=0)), since a job
        runs on after its controller died and must not keep the heartbeat young.
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.engine import (
    HTTPX_IMPORT_ERROR,
    RequestEngine,
)
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.judge import Limits, judge_run
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.params import (
    GateParameterError,
    plan_requests,
)
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.result_file import (
    GateSaveError,
    save_result,
)

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
    heartbeat=dict(type="path", default=flight_heartbeat.PATH),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("body", "body_json")],
        required_by={"max_ratio": "baseline_p50_ms", "max_rtf_p50": "pcm"},
        supports_check_mode=True,
    )
    if HTTPX_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("httpx"), exception=HTTPX_IMPORT_ERROR)
    params = module.params
    try:
        plan = plan_requests(params, check_mode=module.check_mode)
        heartbeat = params["heartbeat"]
        run = RequestEngine(plan, on_request=(lambda: flight_heartbeat.beat(heartbeat)) if heartbeat else None).run()
    except GateParameterError as exc:
        module.fail_json(msg=str(exc))
    result = judge_run(run, Limits.from_params(params), plan, samples_limit=params["samples_limit"])
    result["saved_to"] = None
    result["changed"] = False
    if params["save_to"] and not module.check_mode:
        try:
            result["changed"] = save_result(result, params["save_to"])
        except GateSaveError as exc:
            module.fail_json(msg="; ".join([str(exc), *result["failures"]]), **result)
    if not result["passed"]:
        module.fail_json(msg="; ".join(result["failures"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
