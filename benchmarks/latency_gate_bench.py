#!/usr/bin/env python3
"""How far the latency gate's figures are from an independent client's, and what the gate itself costs.

    .venv/bin/python benchmarks/latency_gate_bench.py [--rounds 3] [--seconds 4]

Prints figures; asserts nothing (it is not a timed test). Two endpoints of the test server
(tests/unit/http_fixtures.py), served from a separate process so that no client shares its GIL. The
clients take turns, round after round, so that a neighbour's load on a shared machine falls on all of
them alike; each figure is the median of the rounds' p50s.

1. 190 ms injected latency: the gate's p50 against ``wrk --latency`` (Debian package ``wrk``) and a
   keep-alive curl loop (one curl process, the same URL N times); aim: ratio within 2 %.
2. 0 ms: the gate's own overhead per request:
   - inside the measured window (what it adds to every latency it reports): gate p50 - wrk p50;
   - outside it (its own CPU between requests: building the request, parsing the response, the
     bookkeeping): (elapsed - sum of measured times) / requests. This bounds how fast one worker can
     send, not what it measures.
   Aim: under 1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/unit for its HTTP fixtures; the checkout as the collection voxtral.deploy (scripts/setup.sh).
sys.path[:0] = [str(ROOT / "tests" / "unit"), str(ROOT / ".cache" / "collections")]

SERVE_FLAG = "--serve"


def serve() -> None:
    """Child process: run the test server until stdin closes; print its port first."""
    from http_fixtures import HTTPTestServer, fixed_delay

    routes = {"/ms190": fixed_delay(190), "/ms0": fixed_delay(0, body=b"ok\n", content_type="text/plain")}
    with HTTPTestServer(routes) as server:
        print(server.port, flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def server_process():
    child = subprocess.Popen(
        [sys.executable, __file__, SERVE_FLAG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def run_gate(args: dict) -> dict:
    """The module's main(), as Ansible runs it, in this process; returns its JSON result."""
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.voxtral.deploy.plugins.modules import latency_gate

    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout), contextlib.suppress(SystemExit):
        latency_gate.main()
    return json.loads(stdout.getvalue())


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_p50(url: str, seconds: int) -> tuple[float, int] | None:
    """wrk's p50 (ms) and request count on one connection, or None without wrk."""
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(
        ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url], capture_output=True, text=True, check=True
    ).stdout
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))
    count = int(re.search(r"^\s+(\d+) requests in", out, re.M).group(1))
    return p50, count


def curl_p50(url: str, count: int) -> float | None:
    """p50 (ms) of ``time_total`` over count transfers of one keep-alive curl process, or None."""
    if not shutil.which("curl"):
        return None
    out = subprocess.run(
        ["curl", "-s", "-w", "%{time_total}\n", *(["-o", "/dev/null", url] * count)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return statistics.median(float(line) * 1000.0 for line in out.split())


def _rounded(values: list) -> list:
    return [None if v is None else round(v, 3) for v in values]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="turns each client takes per endpoint")
    parser.add_argument("--seconds", type=int, default=4, help="wrk duration per round")
    parser.add_argument("--slow-requests", type=int, default=20, help="gate requests per round at 190 ms")
    parser.add_argument("--fast-requests", type=int, default=1000, help="gate requests per round at 0 ms")
    options = parser.parse_args()

    import httpx

    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}, {options.rounds} rounds")
    with server_process() as base:
        slow, fast = f"{base}/ms190", f"{base}/ms0"
        run_gate({"url": fast, "requests": 200, "warmup": 10, "samples_limit": 0})  # warm this process

        # 1. Accuracy at 190 ms.
        gate, wrk, curl = [], [], []
        for _ in range(options.rounds):
            result = run_gate({"url": slow, "requests": options.slow_requests, "warmup": 2, "samples_limit": 0})
            gate.append(result["total_ms"]["p50"])
            wrk.append((wrk_p50(slow, options.seconds) or (None,))[0])
            curl.append(curl_p50(slow, options.slow_requests))
        gate_p50, wrk_p50_, curl_p50_ = _median(gate), _median(wrk), _median(curl)
        print(f"\n190 ms endpoint, p50 per round: gate {gate}, wrk {_rounded(wrk)}, curl {_rounded(curl)}")
        print(f"  gate p50 {gate_p50:.3f} ms")
        if wrk_p50_:
            print(f"  wrk --latency p50 {wrk_p50_:.3f} ms: gate / wrk = {gate_p50 / wrk_p50_:.4f}")
        if curl_p50_:
            print(f"  curl keep-alive p50 {curl_p50_:.3f} ms: gate / curl = {gate_p50 / curl_p50_:.4f}")

        # 2. Overhead at 0 ms.
        gate, outside, wrk, curl = [], [], [], []
        for _ in range(options.rounds):
            # No warm-up here, so that elapsed_s covers exactly the counted requests.
            result = run_gate({"url": fast, "requests": options.fast_requests, "warmup": 0, "samples_limit": 0})
            n, total = result["ok"], result["total_ms"]
            gate.append(total["p50"])
            outside.append((result["elapsed_s"] * 1000.0 - total["mean"] * n) / n)
            wrk.append((wrk_p50(fast, options.seconds) or (None,))[0])
            curl.append(curl_p50(fast, 500))
        gate_p50, wrk_p50_, curl_p50_ = _median(gate), _median(wrk), _median(curl)
        print(f"\n0 ms endpoint, p50 per round: gate {gate}, wrk {_rounded(wrk)}, curl {_rounded(curl)}")
        print(f"  gate p50 {gate_p50:.3f} ms over {options.fast_requests} requests a round")
        if wrk_p50_:
            print(f"  inside the window: gate p50 - wrk p50 ({wrk_p50_:.3f}) = {gate_p50 - wrk_p50_:.3f} ms")
        if curl_p50_:
            print(f"  (gate p50 - curl p50 ({curl_p50_:.3f}) = {gate_p50 - curl_p50_:.3f} ms)")
        print(f"  outside the window: {_median(outside):.3f} ms per request (the gate's own CPU)")


if __name__ == "__main__":
    if SERVE_FLAG in sys.argv:
        serve()
    else:
        main()
