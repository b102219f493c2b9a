"""The latency gate's request engine: sends the warm-up and the counted requests and records each one.

One thread and one keep-alive connection (an httpx client over wire.WireTransport) per worker; each
request becomes a sample (measurement.py): its wire timings, or the kind of error and a sentence a person
can act on. A streamed PCM body is kept and measured (audio_metrics) after its timing is taken. Stops
early after max_consecutive_errors errors in a row. Judging the samples is judge.py's job.
"""

from __future__ import annotations

import threading
import traceback
from datetime import datetime, timezone
from time import perf_counter

from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.measurement import Measurement
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.params import (
    GateParameterError,
    RequestPlan,
)
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.wire import WireClock, WireTransport
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import measure as audio_measure
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import samples_from_pcm

try:
    import httpx
except ImportError:
    HTTPX_IMPORT_ERROR = traceback.format_exc()
    httpx = None
else:
    HTTPX_IMPORT_ERROR = None

# How much of an unexpected response body goes into the error message.
SNIPPET_CHARS = 200

_TIMEOUT_PHASES = {
    "ConnectTimeout": "connect",
    "ReadTimeout": "read",
    "WriteTimeout": "write",
    "PoolTimeout": "pool",
}


class _DeadlineExceeded(Exception):
    """The whole request took longer than the per-request timeout."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def describe_exception(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def new_sample(ok, started, status, kind=None, message=None, ttfb=None, end=None, nbytes=0) -> dict:
    """A sample (see measurement.py) from perf_counter times; ``end`` defaults to now."""
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


class RequestEngine:
    """Sends one task's requests as its plan says; ``run()`` returns the Measurement."""

    def __init__(self, plan: RequestPlan, on_request=None):
        self.plan = plan
        # Called before each request (the module refreshes the flight's heartbeat with it); never fails a request.
        self._on_request = on_request
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_index = 0
        self._consecutive_errors = 0
        self._stop_reason = None
        self._error_messages: dict[str, str] = {}

    def new_client(self) -> tuple:
        """One worker's httpx client (a single keep-alive connection) and the clock of its socket."""
        clock = WireClock()
        client = httpx.Client(
            transport=WireTransport(clock, verify=self.plan.validate_certs),
            timeout=httpx.Timeout(self.plan.timeout),
            follow_redirects=False,
            trust_env=False,
        )
        return client, clock

    def check_request_builds(self, client) -> None:
        """Header values httpx refuses (e.g. non-ASCII) are a parameter error, not N request errors."""
        plan = self.plan
        try:
            client.build_request(plan.method, plan.url, content=plan.content, headers=plan.headers)
        except Exception as exc:
            raise GateParameterError(f"cannot build the request: {describe_exception(exc)}") from None

    # -- one request --------------------------------------------------------------------------------

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

    def request_once(self, client, clock: WireClock) -> dict:
        """One request: its timings, taken on the wire by ``clock`` (wire.py), or its error."""
        plan = self.plan
        url = plan.url
        status = None
        request = client.build_request(plan.method, url, content=plan.content, headers=plan.headers)
        clock.reset()
        sent = perf_counter()
        deadline = sent + plan.timeout
        response = None
        try:
            response = client.send(request, stream=True)
            status = response.status_code
            if status not in plan.expect_status:
                expected = "/".join(str(code) for code in sorted(plan.expect_status))
                snippet = self._read_snippet(response, deadline)
                message = f"status {status} from {url} (expected {expected}){snippet}"
                return self._failed(clock, sent, status, "status", message)
            if plan.expect_content_type is not None:
                content_type = response.headers.get("content-type", "")
                if not content_type.lower().startswith(plan.expect_content_type):
                    message = (
                        f"content type {content_type or '(none)'!r} from {url} "
                        f"(expected {plan.expect_content_type_given!r}...)"
                    )
                    return self._failed(clock, sent, status, "content_type", message)
            first_byte = last_byte = None
            nbytes = 0
            audio = bytearray() if plan.audio is not None else None
            for chunk in response.iter_bytes():
                if chunk:
                    now = perf_counter()
                    if audio is not None:
                        audio += chunk
                    # The read that brought this chunk, not the moment httpx handed it over.
                    last_byte = clock.read_at if clock.read_at is not None else now
                    if first_byte is None:
                        first_byte = last_byte
                    nbytes += len(chunk)
                    if now > deadline:
                        raise _DeadlineExceeded
            end = last_byte if last_byte is not None else perf_counter()
        except _DeadlineExceeded:
            message = f"timeout: {url} did not finish within {plan.timeout:g} s"
            return self._failed(clock, sent, status, "timeout", message)
        except httpx.TimeoutException as exc:
            phase = _TIMEOUT_PHASES.get(type(exc).__name__, "")
            message = f"{phase} timeout after {plan.timeout:g} s from {url}".lstrip()
            return self._failed(clock, sent, status, "timeout", message)
        except httpx.ConnectError as exc:
            return self._failed(clock, sent, status, "connect", f"connect error to {url}: {exc}")
        except Exception as exc:  # a dropped connection, a decoding error...: counted, never fatal
            return self._failed(clock, sent, status, "other", f"{describe_exception(exc)} from {url}")
        finally:
            if response is not None:
                response.close()

        started = clock.start() or sent
        if plan.bytes_per_second is not None and nbytes == 0:
            return new_sample(False, started, status, "other", f"empty audio body from {url}", end=end)
        ttfb = first_byte if plan.stream else None
        sample = new_sample(True, started, status, ttfb=ttfb, end=end)
        sample["bytes"] = nbytes
        if audio is not None:  # after the timed window: listening costs the server nothing
            sample["audio"] = audio_measure(samples_from_pcm(bytes(audio)), plan.sample_rate, plan.audio["text"])
        return sample

    @staticmethod
    def _failed(clock: WireClock, sent: float, status, kind: str, message: str) -> dict:
        return new_sample(False, clock.start() or sent, status, kind, message)

    # -- the workers --------------------------------------------------------------------------------

    def _record(self, sample: dict) -> None:
        """Consecutive-error bookkeeping, shared by all workers (call with the lock held)."""
        if sample["ok"]:
            self._consecutive_errors = 0
            return
        self._error_messages.setdefault(sample["error_kind"], sample["error"])
        self._consecutive_errors += 1
        limit = self.plan.max_consecutive_errors
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
            if self._on_request is not None:
                self._on_request()
            try:
                sample = self.request_once(*channel)
            except Exception as exc:  # a bug here must not silently lose a request in a thread
                now = perf_counter()
                sample = new_sample(False, now, None, "other", describe_exception(exc), end=now)
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

    def run(self) -> Measurement:
        """The warm-up, then the counted requests; GateParameterError when the request cannot be built."""
        plan = self.plan
        channels = [self.new_client() for _channel in range(plan.concurrency)]
        try:
            self.check_request_builds(channels[0][0])
            started_at = utc_now()
            wall_start = perf_counter()
            warmup_samples = self._run_phase(channels, plan.warmup)
            samples = self._run_phase(channels, plan.requests)
            elapsed = perf_counter() - wall_start
            finished_at = utc_now()
        finally:
            for client, _clock in channels:
                client.close()
        samples.sort(key=lambda s: s["index"])
        return Measurement(
            samples=samples,
            warmup_samples=warmup_samples,
            error_messages=dict(self._error_messages),
            stop_reason=self._stop_reason if self._stop.is_set() else None,
            started_at=started_at,
            finished_at=finished_at,
            elapsed_s=elapsed,
        )
