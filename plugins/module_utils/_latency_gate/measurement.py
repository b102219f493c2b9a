"""What the latency gate's engine hands to its judge: the samples of one run, and how the run ended.

A record of its own so that the judge reads plain data (no sockets, no httpx) and its tests can build one.

A sample is a dict, one per request, as the task returns it under ``samples``::

    {"index": 0, "ok": True, "status": 200, "total_ms": 190.4, "ttfb_ms": None, "bytes": 312,
     "error_kind": None, "error": None}

``error_kind`` is one of ERROR_KINDS for a failed request. With ``audio_checks``, a successful sample also
carries ``audio`` (the figures of audio_metrics.measure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The kinds of failed request, in the order the result's ``errors`` lists them.
ERROR_KINDS = ("timeout", "connect", "status", "content_type", "other")


@dataclass
class Measurement:
    """One run of the gate: warm-up and counted samples, first error message per kind, why it stopped."""

    samples: list = field(default_factory=list)  # counted requests, in the order they were sent
    warmup_samples: list = field(default_factory=list)
    error_messages: dict = field(default_factory=dict)  # first message per error kind, warm-up included
    stop_reason: str | None = None  # set when max_consecutive_errors stopped the run
    started_at: str = ""  # ISO 8601, UTC
    finished_at: str = ""
    elapsed_s: float = 0.0  # wall clock for warm-up and counted requests
