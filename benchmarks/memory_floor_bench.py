#!/usr/bin/env python3
"""The memory floor's reaction time on a simulated Spark (a figure table, never a pass/fail test).

    source scripts/env.sh && python benchmarks/memory_floor_bench.py [--rounds 5]

Voxtral is deployed beside the fake Gemma (deploy-voxtral.yml, coexisting), with its real units: voxtral-tts.service
and voxtral-memory-floor.service as the voxtral_service role renders them. Each round sets the floor 1.5 GiB below
the host's MemAvailable (a drop-in of the floor's unit, then Voxtral restarted), and a co-tenant (a transient
unit) allocates and touches memory 64 MiB at a time, noting on the host's monotonic clock when it first reads
MemAvailable below the floor. The floor's record says when it read that (detected_monotonic_s) and how long
every process of Voxtral took to be gone after (gone_after_s). Printed: crossing -> detected, detected -> gone,
crossing -> gone per round, their medians, and the total against the aim (1 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playbook_runner import run_on  # noqa: E402
from sim_spark import prepared_sparks, put, ssh  # noqa: E402

RECORD = "/var/lib/voxtral-tts/memory-floor.json"
DROP_IN = "/etc/systemd/system/voxtral-memory-floor.service.d/bench.conf"
PROGRAM = "/usr/local/libexec/voxtral-tts/memory_floor.py"
HOG = r"""
import sys, time
floor_kib, step, total = int(sys.argv[1]), 64 << 20, int(sys.argv[2]) << 20
held, crossed = [], None
while sum(map(len, held)) < total:
    held.append(bytearray(b"\xa5") * step)
    with open("/proc/meminfo") as m:
        available = next(int(l.split()[1]) for l in m if l.startswith("MemAvailable:"))
    if crossed is None and available < floor_kib:
        crossed = time.monotonic()
        print(f"crossed {crossed:.3f}", flush=True)
time.sleep(30)
"""


def mem_available_kib(hostvars) -> int:
    return int(ssh(hostvars, "grep MemAvailable /proc/meminfo").stdout.split()[1])


def one_round(hostvars, poll_ms: int, index: int) -> dict:
    floor_kib = mem_available_kib(hostvars) - int(1.5 * 1024 * 1024)
    put(
        hostvars,
        (
            "[Service]\nExecStart=\n"
            f"ExecStart=/usr/bin/python3 -I {PROGRAM} --unit voxtral-tts.service --floor-kib {floor_kib} "
            f"--poll-ms {poll_ms} --record {RECORD}\n"
        ).encode(),
        DROP_IN,
    )
    put(hostvars, HOG.encode(), "/usr/local/lib/floor-bench/hog.py")
    restarted = ssh(
        hostvars,
        f"rm -f {RECORD}; systemctl reset-failed voxtral-tts.service; systemctl daemon-reload && "
        "systemctl restart voxtral-tts.service && systemctl is-active voxtral-memory-floor.service",
    )
    if restarted.returncode != 0:
        raise RuntimeError(f"Voxtral did not restart: {restarted.stdout}{restarted.stderr}")
    hog_unit = f"floor-bench-hog-{index}"  # a unit of its own per round: its journal holds this round's lines only
    ssh(hostvars, f"systemd-run --unit={hog_unit} python3 /usr/local/lib/floor-bench/hog.py {floor_kib} 3072")
    deadline = time.monotonic() + 60
    while ssh(hostvars, f"test -s {RECORD} && grep -q mem_available_after_gib {RECORD}").returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the floor did not fire within 60 s")
        time.sleep(0.5)
    record = json.loads(ssh(hostvars, f"cat {RECORD}").stdout)
    hog = ssh(hostvars, f"journalctl -u {hog_unit} -o cat --no-pager | grep '^crossed'").stdout.split()
    ssh(hostvars, f"systemctl stop {hog_unit}; systemctl reset-failed {hog_unit} 2>/dev/null")
    crossed = float(hog[1]) if len(hog) >= 2 else None
    detected = record["detected_monotonic_s"]
    return {
        "floor_gib": record["floor_gib"],
        "crossing_to_detected_s": None if crossed is None else max(0.0, detected - crossed),
        "detected_to_gone_s": record["gone_after_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--poll-ms", type=int, default=200, help="the role's default voxtral_service_memory_floor_poll_ms"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, prepared_sparks({"titan": "voxtral-floor-bench"}, Path(tmp)) as hosts:
        hostvars = hosts["titan"]
        deploy = run_on(hostvars, "deploy-voxtral.yml", Path(tmp), {"voxtral_gemma_mode": "coexist"})
        if deploy.status != "successful":
            raise SystemExit(f"the deploy failed:\n{deploy.stdout[-3000:]}")
        rows = [one_round(hostvars, args.poll_ms, index) for index in range(args.rounds)]
    print(f"\nmemory floor, poll {args.poll_ms} ms, {args.rounds} rounds (co-tenant 64 MiB steps):")
    print(f"{'round':>5} | {'floor GiB':>9} | {'crossing -> detected':>20} | {'detected -> gone':>16} | {'total':>7}")
    totals = []
    for i, row in enumerate(rows, 1):
        detect, gone = row["crossing_to_detected_s"], row["detected_to_gone_s"]
        total = (detect or 0) + gone
        totals.append(total)
        shown = "?" if detect is None else f"{detect * 1000:.0f} ms"
        print(f"{i:>5} | {row['floor_gib']:>9} | {shown:>20} | {gone * 1000:>13.0f} ms | {total * 1000:>4.0f} ms")
    detects = [r["crossing_to_detected_s"] for r in rows if r["crossing_to_detected_s"] is not None]
    print(
        f"median: crossing -> detected {statistics.median(detects) * 1000:.0f} ms, detected -> gone "
        f"{statistics.median(r['detected_to_gone_s'] for r in rows) * 1000:.0f} ms, crossing -> gone "
        f"{statistics.median(totals) * 1000:.0f} ms = {statistics.median(totals):.2f}x the 1 s aim"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
