#!/usr/bin/python3
"""Flight guard: a flight was cut short (its deadline passed without a disarm, or the host rebooted during it),
so put Gemma back.

Run by the transient <unit>.service (fired by <unit>.timer at the deadline), with no controller involved: stop
and disable Voxtral, start (and re-enable) Gemma as the state file's gemma section recorded it (the baseline
records which unit or container serves Gemma, the pause what it stopped), and record the firing in the state
file. Every line it prints lands in the journal of the unit.

With --boot it is the boot step (<unit>-boot.service, enabled, run at every boot): the transient timer did not
survive the reboot, so the on-disk record is the armed marker. It does the same restore only when the state
file's flight_guard section still says armed (a reboot during the flight); otherwise it says so and changes
nothing (a disarmed guard: the flight's end state stands).

With --check it is one look of the heartbeat guard (a periodic timer runs it while a guard is armed): it
restores Gemma when the controller's heartbeat (flight_heartbeat.py: the modules the controller runs on the
host refresh it) is older than the config's heartbeat_timeout, or when deadline_seconds have passed since
armed_at; otherwise it changes nothing and says nothing. A guard that is not armed any more stops its timer.

    flight-guard-restore [--boot | --check] [CONFIG]    (CONFIG: the program's own path + ".json", rendered by the role)

The state file is read and written through state_file.py (installed beside this program), under the same
lock and with the same atomic write as the flight_state module. Every restore first takes the guard lock
(guard_lock.py, the lock the service_swap module holds while it stops Gemma and starts Voxtral): a swap still
running is stopped, so that the two never act on Gemma and Voxtral at once.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

import flight_heartbeat  # installed beside this program by flight_guard's arm
import guard_lock  # installed beside this program by flight_guard's arm
import state_file  # installed beside this program by flight_guard's arm


def log(config: dict, message: str) -> None:
    print(f"{config['unit_name']}: {message}", flush=True)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def run(config: dict, argv: list[str], timeout: int = 120) -> bool:
    """Run a command, log it and its outcome; return True when it succeeded."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(config, f"{' '.join(argv)}: {exc}")
        return False
    output = (done.stdout + done.stderr).strip().replace("\n", " | ")
    log(config, f"{' '.join(argv)}: exit {done.returncode}" + (f" ({output})" if output else ""))
    return done.returncode == 0


def unit_exists(unit: str) -> bool:
    done = subprocess.run(
        ["systemctl", "show", "--property=LoadState", "--value", unit], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip() not in ("", "not-found")


def unit_active(unit: str) -> bool:
    done = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, check=False)
    return done.stdout.strip() == "active"


def seconds_between(earlier: str | None, later: datetime.datetime) -> int | None:
    try:
        began = datetime.datetime.strptime(earlier or "", state_file.ISO).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return int((later - began).total_seconds())


def restore_gemma(config: dict, gemma: dict) -> tuple[bool, str]:
    """Start Gemma as the state file recorded it; (succeeded, what was done)."""
    if not gemma.get("mode"):
        return False, "no Gemma recorded in the state file (no baseline was taken): nothing to start"
    if gemma.get("was_active") is False:
        return True, "left stopped (was not running before the flight)"
    if not gemma.get("paused") and gemma.get("mode") == "systemd" and unit_active(gemma.get("unit", "")):
        # A coexisting flight never stopped it: it is not touched (issue 26).
        return True, f"left serving: unit {gemma['unit']} was never stopped"
    timeout = int(config["start_timeout"])
    if gemma["mode"] == "container":
        name = f"{gemma.get('container_engine')} container {gemma.get('container_name')}"
        ok = run(config, [gemma["container_engine"], "start", gemma["container_name"]], timeout=timeout)
        return ok, f"started {name}" if ok else f"could not start {name}"
    if gemma.get("was_enabled"):
        run(config, ["systemctl", "enable", gemma["unit"]])
    ok = run(config, ["systemctl", "start", gemma["unit"]], timeout=timeout)
    return ok, f"started unit {gemma['unit']}" if ok else f"could not start unit {gemma['unit']}"


# Why the guard fires, as recorded in the flight_guard section (`why`).
WHY_DEADLINE = flight_heartbeat.WHY_DEADLINE
WHY_REBOOT = "reboot during the flight"


def read_state(config: dict) -> dict:
    path = config["state_path"]
    try:
        with state_file.locked(path):
            return state_file.load(path)[0]
    except (OSError, ValueError) as exc:
        log(config, f"cannot read {path} ({exc})")
        return {}


def restore(config: dict, gemma: dict, why: str, seen: dict | None = None) -> int:
    """Under the guard lock (a running swap is stopped first): remove the heartbeat, then restore_gemma_now."""
    lock_path = config.get("lock_path", guard_lock.PATH)
    with contextlib.ExitStack() as held:
        try:
            log(config, held.enter_context(guard_lock.for_guard(lock_path, float(config.get("lock_wait_seconds", 20)))))
        except OSError as exc:
            # Gemma's restore matters more than the lock: go on without it.
            log(config, f"could not take the guard lock {lock_path} ({exc}): restoring Gemma without it")
        # Removed under the lock: a swap that takes the lock after this restore finds no heartbeat and refuses.
        flight_heartbeat.stop(config.get("heartbeat_path", flight_heartbeat.PATH))
        return restore_gemma_now(config, gemma, why, seen)


def restore_gemma_now(config: dict, gemma: dict, why: str, seen: dict | None = None) -> int:
    """Stop Voxtral, start Gemma, record the firing (and why) in the state file; 0 when all of it worked."""
    path = config["state_path"]
    fired = now()
    log(config, f"{why} (at {fired.strftime(state_file.ISO)}): restoring Gemma")

    # Voxtral first: its memory must be free before Gemma loads.
    voxtral_unit = config["voxtral_unit"]
    if unit_exists(voxtral_unit):
        voxtral_ok = run(config, ["systemctl", "disable", "--now", voxtral_unit])
    else:
        log(config, f"{voxtral_unit} is not installed: nothing to stop")
        voxtral_ok = True

    gemma_ok, what = restore_gemma(config, gemma)
    log(config, what)

    done = now()
    try:
        with state_file.locked(path):
            state = state_file.load(path)[0]
            state.setdefault("flight_guard", {}).update(
                armed=False,
                fired=True,
                why=why,
                guard_fired_at=fired.strftime(state_file.ISO),
                guard_gemma=what,
                guard_voxtral_stopped=voxtral_ok,
                guard_ok=voxtral_ok and gemma_ok,
                **(seen or {}),
            )
            section = state.setdefault("gemma", {})
            if section.get("paused") and gemma_ok:
                section.update(
                    paused=False,
                    restored_by="flight_guard",
                    restored_at=done.strftime(state_file.ISO),
                    guard_fired_at=fired.strftime(state_file.ISO),
                    outage_seconds=seconds_between(section.get("paused_at"), done),
                )
            state_file.save(path, state)
    except (OSError, ValueError) as exc:
        log(config, f"could not record the firing in {path}: {exc}")
        return 1
    log(config, f"recorded the firing ({why}) in {path}")
    return 0 if voxtral_ok and gemma_ok else 1


def stop_timer(config: dict) -> None:
    """Stop the periodic check's timer (without waiting: this program runs as the unit the timer fires)."""
    run(config, ["systemctl", "stop", "--no-block", f"{config['unit_name']}.timer"])


def check(config: dict, state: dict) -> int:
    """One look of the heartbeat guard: restore Gemma when the controller is gone or the deadline passed."""
    guard = state.get("flight_guard") or {}
    heartbeat_path = config.get("heartbeat_path", flight_heartbeat.PATH)
    if not guard.get("armed"):
        # Disarmed or already fired: the timer has nothing left to watch.
        log(config, f"check: the guard is not armed in {config['state_path']}: stopping {config['unit_name']}.timer")
        stop_timer(config)
        return 0
    armed_seconds = seconds_between(guard.get("armed_at"), now())
    heartbeat_age = flight_heartbeat.age(heartbeat_path)
    why = flight_heartbeat.decide(
        heartbeat_age,
        float(config.get("heartbeat_timeout", 0)),
        float("inf") if armed_seconds is None else armed_seconds,  # no armed_at: nothing to wait for
        float(config["deadline_seconds"]),
    )
    if why is None:
        return 0
    age_text = "none" if heartbeat_age is None else f"{heartbeat_age:.0f} s"
    log(
        config,
        f"check: {why} (heartbeat age {age_text}, timeout {config.get('heartbeat_timeout', 0)} s; "
        f"armed {armed_seconds} s ago, deadline {config['deadline_seconds']} s)",
    )
    seen = {"heartbeat_age_s": None if heartbeat_age is None else round(heartbeat_age, 1), "armed_for_s": armed_seconds}
    status = restore(config, state.get("gemma") or {}, why, seen)  # it removes the heartbeat
    stop_timer(config)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    boot, checking = "--boot" in argv, "--check" in argv
    argv = [arg for arg in argv if arg not in ("--boot", "--check")]
    config_path = argv[0] if argv else os.path.realpath(__file__) + ".json"
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    state = read_state(config)
    if checking:
        return check(config, state)
    if not boot:
        return restore(config, state.get("gemma") or {}, WHY_DEADLINE)
    guard = state.get("flight_guard") or {}
    if not guard.get("armed"):
        # Disarmed (a flight that ended well, or one the guard already restored), or never armed: the state
        # file and every unit stay as the last flight left them.
        log(config, f"boot: the guard is not armed in {config['state_path']}: nothing to do")
        return 0
    log(config, f"boot: the guard was still armed (since {guard.get('armed_at', '?')}) when the host went down")
    return restore(config, state.get("gemma") or {}, WHY_REBOOT)


if __name__ == "__main__":
    sys.exit(main())
