"""The latency gate's parameters, checked and turned into a request plan (what every request is made of).

Kept apart from the engine so that a bad parameter fails the task with one sentence before any request,
and so that the request's parts (URL, method, headers, body, audio settings) are computed once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import DEFAULT_LIMITS as AUDIO_LIMITS

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
USER_AGENT = "voxtral-deploy-latency-gate"


class GateParameterError(Exception):
    """A parameter the gate cannot work with; its text is the task's whole failure message."""


@dataclass
class RequestPlan:
    """Everything the engine needs to send the task's requests, and the judge to label its figures."""

    url: str
    method: str = "GET"
    headers: dict = field(default_factory=dict)
    content: bytes | None = None
    timeout: float = 30.0
    requests: int = 20
    warmup: int = 2
    concurrency: int = 1
    stream: bool = False
    expect_status: frozenset = frozenset({200})
    expect_content_type: str | None = None  # lower-cased prefix, or None
    expect_content_type_given: str | None = None  # as the task spelled it, for messages
    max_consecutive_errors: int = 5
    validate_certs: bool = True
    sample_rate: int | None = None  # of the PCM body, with pcm
    bytes_per_second: int | None = None  # of the PCM body, with pcm
    audio: dict | None = None  # with audio_checks: utterance, text, limits

    @classmethod
    def from_params(cls, p: dict) -> RequestPlan:
        """The plan of validated parameters (see validate)."""
        headers = {"User-Agent": USER_AGENT}
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
        pcm = p["pcm"]
        audio = None
        if p["audio_checks"] is not None:
            text = p["audio_checks"]["text"]
            if text is None and isinstance(p["body_json"], (dict, str)):
                document = json.loads(p["body_json"]) if isinstance(p["body_json"], str) else p["body_json"]
                text = document.get("input") if isinstance(document, dict) else None
            limits = {**AUDIO_LIMITS, **p["audio_checks"]["limits"]}
            audio = {"utterance": p["audio_checks"]["utterance"], "text": text, "limits": limits}
        return cls(
            url=p["url"].strip(),
            method=p["method"].upper(),
            headers=headers,
            content=content,
            timeout=p["timeout"],
            requests=p["requests"],
            warmup=p["warmup"],
            concurrency=p["concurrency"],
            stream=p["stream"],
            expect_status=frozenset(p["expect_status"]),
            expect_content_type=(p["expect_content_type"] or "").lower() or None,
            expect_content_type_given=p["expect_content_type"],
            max_consecutive_errors=p["max_consecutive_errors"],
            validate_certs=p["validate_certs"],
            sample_rate=pcm["sample_rate"] if pcm else None,
            bytes_per_second=pcm["sample_rate"] * pcm["sample_width"] * pcm["channels"] if pcm else None,
            audio=audio,
        )


def validate(p: dict, check_mode: bool = False) -> None:
    """Raise GateParameterError with one clear sentence for the first unusable parameter."""
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
    if p["save_to"] and not check_mode:
        directory = os.path.dirname(p["save_to"]) or "."
        if not os.path.isdir(directory):
            raise GateParameterError(f"save_to: directory {directory} does not exist")


def plan_requests(p: dict, check_mode: bool = False) -> RequestPlan:
    """Validate the task's parameters and return its request plan."""
    validate(p, check_mode)
    return RequestPlan.from_params(p)
