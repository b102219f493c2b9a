#!/usr/bin/env python3
"""Voxtral's memory floor on the Spark (voxtral-memory-floor.service, run beside voxtral-tts.service).

    memory_floor.py --unit voxtral-tts.service --floor-kib N --poll-ms 200 --record FILE

Reads MemAvailable from /proc/meminfo every --poll-ms. On a GB10 the GPU's memory is the system's (unified):
vLLM sizes its engines from MemAvailable, and a start that overshoots (vllm-project/vllm#46307: start-up
profiling past gpu_memory_utilization, a box wedged at ~112 of 121.7 GiB) stalls Gemma and the OS with it.
Below the floor it kills every process of the unit at once (SIGKILL: no shutdown that allocates; the unit's
RestartPreventExitStatus=SIGKILL keeps it down), records why with the figures in --record (JSON, written
before the kill and completed after), says it in one journal line, and exits. It never touches Gemma: a
paused Gemma comes back as after any failed start (the flight's rescue, or the flight guard). Needs no
controller: systemd starts it with Voxtral (Wants=/BindsTo=) and stops it with Voxtral.
Standard library only, with the state-file helpers installed beside it (plugins/module_utils/state_file.py and
atomic_file.py, as the flight guard's restore program has them); the host's /usr/bin/python3.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import state_file  # installed beside this program by voxtral_service's install

KIB_PER_GIB = 1024 * 1024


def mem_available_kib(path="/proc/meminfo"):
    with open(path, "rb") as meminfo:
        for line in meminfo:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError(f"{path} has no MemAvailable")


def unit_gone(unit):
    shown = subprocess.run(
        ["systemctl", "show", unit, "--property=ActiveState,MainPID"], capture_output=True, text=True, check=False
    ).stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    return props.get("ActiveState") not in ("active", "activating", "deactivating", "reloading") or props.get(
        "MainPID"
    ) in ("0", None)


def watch(unit, floor_kib, poll_s, record_path, meminfo="/proc/meminfo"):
    """Poll until MemAvailable falls below the floor; then kill the unit and record. Returns the record."""
    lowest = None
    while True:
        started = time.monotonic()
        available = mem_available_kib(meminfo)
        lowest = available if lowest is None else min(lowest, available)
        if available < floor_kib:
            break
        time.sleep(max(0.0, poll_s - (time.monotonic() - started)))
    crossed = time.monotonic()
    # The kill ends this unit's BindsTo= partner, which stops this program: finish the record first.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record = {
        "fired_at": state_file.utc_iso(),
        "unit": unit,
        "why": "MemAvailable fell below the memory floor",
        "mem_available_gib": round(available / KIB_PER_GIB, 2),
        "floor_gib": round(floor_kib / KIB_PER_GIB, 2),
        "poll_ms": round(poll_s * 1000),
        # The host's monotonic clock at the reading below the floor (benchmarks/memory_floor_bench.py).
        "detected_monotonic_s": round(crossed, 3),
        "gone_after_s": None,
    }
    state_file.save(record_path, record)
    subprocess.run(["systemctl", "kill", "--signal=SIGKILL", unit], check=False)
    deadline = crossed + 30
    while not unit_gone(unit) and time.monotonic() < deadline:
        time.sleep(0.02)
    record["gone_after_s"] = round(time.monotonic() - crossed, 3)
    record["mem_available_after_gib"] = round(mem_available_kib(meminfo) / KIB_PER_GIB, 2)
    state_file.save(record_path, record)
    print(
        f"memory floor: MemAvailable {record['mem_available_gib']} GiB < floor {record['floor_gib']} GiB: "
        f"killed {unit} (gone after {record['gone_after_s']} s; MemAvailable then "
        f"{record['mem_available_after_gib']} GiB); record in {record_path}",
        flush=True,
    )
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--unit", required=True)
    parser.add_argument("--floor-kib", type=int, required=True)
    parser.add_argument("--poll-ms", type=int, default=200)
    parser.add_argument("--record", required=True)
    parser.add_argument("--meminfo", default="/proc/meminfo")
    args = parser.parse_args(argv)
    print(
        f"memory floor: watching MemAvailable every {args.poll_ms} ms; below "
        f"{round(args.floor_kib / KIB_PER_GIB, 2)} GiB {args.unit} is killed "
        f"(now {round(mem_available_kib(args.meminfo) / KIB_PER_GIB, 2)} GiB)",
        flush=True,
    )
    watch(args.unit, args.floor_kib, args.poll_ms / 1000.0, args.record, args.meminfo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
