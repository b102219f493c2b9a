#!/usr/bin/python
"""Ansible module: stop one systemd service and start another, on the host, in one step."""

DOCUMENTATION = r"""
---
module: service_swap
short_description: Stop a service, wait for its memory to come back, start another and wait for its health
description:
  - The part of a flight between "Gemma stopped" and "Voxtral serving", run on the host as one step instead of
    one controller round trip per task, so the stopped service's outage is the started one's own start.
  - "Before anything changes: C(lock) (take the flight guard's lock I(lock); held by the guard, the swap does not
    start), C(heartbeat) (the guard removes I(heartbeat) when it fires: without one a swap that would stop a running
    I(stop_unit) does not start). The
    lock is held for the whole swap; the guard, when it fires meanwhile, stops the swap with SIGTERM and restores
    Gemma itself."
  - "Phases, in order: C(stop) (stop, and disable if enabled, I(stop_unit)), C(stopped) (wait until it is
    inactive or failed with C(MainPID=0)), C(memory) (wait until C(MemAvailable) reaches I(mem_min_available_kib)),
    C(start_memory) (refuse to start below the memory the started service's stages claim), C(start)
    (C(systemctl start) I(start_unit), which ends when the unit is started), C(health) (wait until
    I(health_url) answers 200)."
  - A unit already stopped is not stopped again, a unit already active is not started again and its memory is not
    checked, so a second run changes nothing.
  - On any failure the module fails with a message naming the phase and the figure it saw, and returns what it
    saw up to then. A failure once I(stop_unit) was stopped also stops I(start_unit) and starts I(stop_unit) again
    (the message ends with what that did); the caller's restore then finds it serving.
  - "Stopped by SIGTERM (the flight guard), it fails at once naming the phase, and restores nothing: the guard does."
  - "It never refreshes I(heartbeat): an async job runs on after its controller died."
  - In check mode nothing is stopped, started or waited for (nor locked), and the heartbeat is not required (a
    guard armed in check mode creates none); the module reports what it would do.
options:
  stop_unit:
    description: The systemd unit to stop (Gemma's).
    type: str
    required: true
  stop_disable:
    description: Disable I(stop_unit) too, when it is enabled (static units have nothing to disable).
    type: bool
    default: true
  stop_timeout:
    description: Seconds the stop and the wait for the unit to be gone may take.
    type: float
    default: 120
  mem_min_available_kib:
    description: C(MemAvailable) (KiB) to wait for once I(stop_unit) is gone; 0 waits for nothing.
    type: int
    default: 0
  mem_min_reason:
    description: Where I(mem_min_available_kib) comes from, for the failure message.
    type: str
    default: ""
  mem_timeout:
    description: Seconds to wait for I(mem_min_available_kib).
    type: float
    default: 120
  start_unit:
    description: The systemd unit to start (Voxtral's).
    type: str
    required: true
  start_timeout:
    description: Seconds C(systemctl start) may take (the unit's own start timeout is what stops it first).
    type: float
    default: 660
  reset_failed:
    description: Clear a failed state (and its start limit) of I(start_unit) left by an earlier start.
    type: bool
    default: true
  stage_fractions:
    description:
      - The memory fractions of MemTotal the started service's stages claim; with I(memory_headroom_mib) the memory
        that must be available before it starts.
    type: list
    elements: float
    default: []
  memory_headroom_mib:
    description: MiB needed beyond the stages' fractions.
    type: int
    default: 0
  memory_required_mib:
    description: MiB needed before the start, instead of I(stage_fractions) and I(memory_headroom_mib).
    type: int
  drop_page_cache:
    description: Drop the page cache before the start's memory is read (on unified memory it counts against a GPU).
    type: bool
    default: false
  health_url:
    description: URL that answers 200 once the started service serves.
    type: str
    required: true
  health_timeout:
    description: Seconds to wait for I(health_url) once the unit is started.
    type: float
    default: 600
  poll_interval:
    description: Seconds between two reads while waiting (unit state, meminfo, health).
    type: float
    default: 0.2
  journal_lines:
    description: Lines of I(start_unit)'s journal in the message of a failed start or health wait.
    type: int
    default: 40
  meminfo:
    description: Where C(MemAvailable) and C(MemTotal) are read (on GB10 the one pool GPU memory comes from).
    type: path
    default: /proc/meminfo
  lock:
    description: The flight guard's lock (module_utils/guard_lock.py), held for the whole swap.
    type: path
    default: /run/voxtral-deploy/flight-guard.lock
  heartbeat:
    description:
      - The flight's heartbeat (module_utils/flight_heartbeat.py), only looked at; its absence refuses the swap.
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop Gemma, wait for its memory, start Voxtral and wait until it serves
  voxtral.deploy.service_swap:
    stop_unit: gemma.service
    mem_min_available_kib: 20971520
    start_unit: voxtral-tts.service
    stage_fractions: [0.8, 0.1]
    memory_headroom_mib: 2048
    health_url: http://127.0.0.1:8091/health
  register: swap
"""

RETURN = r"""
stop:
  description: What I(stop_unit) was and what was done to it.
  type: dict
  returned: always
  sample: {"unit": "gemma.service", "was_active": true, "was_enabled": true, "stopped": true, "disabled": true,
           "active_state": "inactive", "main_pid": "0"}
memory:
  description: The wait for C(MemAvailable) after the stop (KiB).
  type: dict
  returned: always
  sample: {"needed_kib": 1048576, "available_kib": 20400000, "reads": 1}
start_memory:
  description: The memory check before the start (MiB), C(checked) false when nothing was started.
  type: dict
  returned: always
  sample: {"checked": true, "available_mib": 19900, "total_mib": 24000, "required_mib": 3600,
           "stage_fractions": [0.1, 0.05]}
start:
  description: What I(start_unit) was and whether it was started.
  type: dict
  returned: always
  sample: {"unit": "voxtral-tts.service", "was_active": false, "reset_failed": false, "started": true}
health:
  description: The wait for I(health_url).
  type: dict
  returned: always
  sample: {"url": "http://127.0.0.1:8091/health", "status": 200, "polls": 1}
phases:
  description: Each phase that ran, in order, with its start (epoch seconds) and duration.
  type: list
  elements: dict
  returned: always
  sample: [{"name": "stop", "started_at": 1764690000.12, "seconds": 0.31}]
start_began_at:
  description: When I(start_unit)'s start began (epoch seconds), null when it was not started.
  type: float
  returned: always
phase:
  description: The phase that failed (C(lock) and C(heartbeat) included), or that SIGTERM stopped.
  type: str
  returned: failure
"""

import contextlib
import math
import signal

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat, guard_lock
from ansible_collections.voxtral.deploy.plugins.module_utils.host_probe import HostProbe

RUNNING = ("active", "activating", "reloading", "deactivating")
GIB_KIB = 1024 * 1024


class SwapError(Exception):
    """A phase failed; message names it and what was seen."""

    def __init__(self, phase, message):
        super().__init__(message)
        self.phase = phase


class GuardStopped(BaseException):
    """SIGTERM (the flight guard took the lock over): a BaseException, so no handler of the swap's own failures
    catches it and gives Gemma back beside the guard."""

    def __init__(self, phase):
        super().__init__(phase)
        self.phase = phase


class ServiceSwap:
    """Stop one unit, wait for it and its memory, check and start another, wait for its health."""

    def __init__(self, params, host, check_mode=False):
        self.params = params
        self.host = host
        self.check_mode = check_mode
        self.changed = False
        self.result = {
            "stop": {"unit": params["stop_unit"]},
            "memory": {"needed_kib": params["mem_min_available_kib"], "available_kib": None, "reads": 0},
            "start_memory": {"checked": False},
            "start": {"unit": params["start_unit"]},
            "health": {"url": params["health_url"], "status": None, "polls": 0},
            "phases": [],
            "start_began_at": None,
        }
        self.current_phase = "read"
        self.stop_issued = False  # a failure from here on gives Gemma back

    def run(self):
        """The result dict; raises SwapError naming the phase that failed, GuardStopped on SIGTERM."""
        if self.check_mode:
            self.plan()
            return self.result
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(guard_lock.for_swap(self.params["lock"]))
            except guard_lock.LockBusy as exc:
                raise SwapError("lock", f"{exc}; Gemma is not stopped") from exc
            except OSError as exc:
                raise SwapError("lock", f"cannot take the flight guard's lock: {exc}; Gemma is not stopped") from exc
            self.plan()
            # Under the lock: the guard removes the heartbeat under it too, so no restore slips in between. Only
            # a swap that stops a running Gemma needs a guard (a re-run beside a paused Gemma stops nothing).
            if self.result["stop"]["stopped"]:
                self.require_heartbeat()
            held.enter_context(self.stopped_by_sigterm())
            try:
                self.swap()
            except Exception as exc:
                if not self.stop_issued:
                    raise
                phase = exc.phase if isinstance(exc, SwapError) else self.current_phase
                raise SwapError(phase, f"{str(exc).rstrip('.')}; {self.give_back()}") from exc
        return self.result

    def require_heartbeat(self):
        # Only looked at (flight_heartbeat.age is a stat): an async job must never beat.
        if flight_heartbeat.age(self.params["heartbeat"]) is None:
            raise SwapError(
                "heartbeat",
                "the flight guard already fired or was never armed: no heartbeat at "
                f"{self.params['heartbeat']}; Gemma is not stopped",
            )

    @contextlib.contextmanager
    def stopped_by_sigterm(self):
        """SIGTERM raises GuardStopped wherever the swap is: in a sleep, a read, or a systemctl (subprocess.run
        kills its child when an exception interrupts its wait: CPython's Lib/subprocess.py, run())."""

        def stop(_signum, _frame):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
            raise GuardStopped(self.current_phase)

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def plan(self):
        """Read both units and decide what the swap does (all check mode does)."""
        stop_state = self.host.unit_show(self.params["stop_unit"], ["ActiveState", "MainPID", "UnitFileState"])
        start_state = self.host.unit_show(self.params["start_unit"], ["ActiveState", "LoadState"])
        stop = self.result["stop"]
        stop["was_active"] = stop_state.get("ActiveState") in RUNNING
        stop["was_enabled"] = stop_state.get("UnitFileState") == "enabled"
        start = self.result["start"]
        start["was_active"] = start_state.get("ActiveState") in ("active", "activating", "reloading")
        start["was_failed"] = start_state.get("ActiveState") == "failed"
        disable = self.params["stop_disable"] and stop["was_enabled"]
        stop["stopped"], stop["disabled"], start["started"] = stop["was_active"], disable, not start["was_active"]
        start["reset_failed"] = start["was_failed"] and self.params["reset_failed"]
        self.changed = stop["stopped"] or disable or start["started"] or start["reset_failed"]

    def swap(self):
        start, disable = self.result["start"], self.result["stop"]["disabled"]
        self.phase("stop", self.stop_unit, disable)
        self.phase("stopped", self.wait_stopped)
        self.phase("memory", self.wait_memory)
        if start["started"]:
            self.phase("start_memory", self.check_start_memory)
            self.phase("start", self.start_unit)
        self.phase("health", self.wait_health)

    def give_back(self):
        """After the swap's own failure once Gemma was stopped: free Voxtral's memory, start Gemma again; what
        was done, for the message."""
        self.current_phase = "give_back"
        voxtral, gemma = self.params["start_unit"], self.params["stop_unit"]
        done = []
        for verb, unit, timeout, did in (
            ("stop", voxtral, self.params["stop_timeout"], f"stopped {voxtral}"),
            ("start", gemma, self.params["start_timeout"], f"started {gemma} again"),
        ):
            rc, _out, err = self.host.systemctl(verb, unit, timeout=timeout)
            if rc == 0:
                done.append(did)
            else:
                why = f"timed out after {timeout:g} s" if rc is None else f"rc {rc}: {err.strip()}"
                done.append(f"could not {verb} {unit} ({why})")
        return "the swap " + " and ".join(done)

    def phase(self, name, action, *args):
        self.current_phase = name
        began_wall, began = self.host.wall(), self.host.monotonic()
        try:
            action(*args)
        finally:
            self.result["phases"].append(
                {"name": name, "started_at": round(began_wall, 3), "seconds": round(self.host.monotonic() - began, 3)}
            )

    def wait_until(self, seconds, done, failure):
        """Poll done() every poll_interval until it is true; after seconds, raise failure()."""
        deadline = self.host.monotonic() + seconds
        while not done():
            if self.host.monotonic() >= deadline:
                raise failure()
            self.host.sleep(self.params["poll_interval"])

    def stop_unit(self, disable):
        unit = self.params["stop_unit"]
        if self.result["stop"]["stopped"]:
            self.stop_issued = True
            rc, _out, err = self.host.systemctl("stop", unit, timeout=self.params["stop_timeout"])
            if rc != 0:
                why = f"timed out after {self.params['stop_timeout']:g} s" if rc is None else f"rc {rc}: {err.strip()}"
                raise SwapError("stop", f"systemctl stop {unit} failed ({why})")
        if disable:
            rc, _out, err = self.host.systemctl("disable", unit, timeout=60)
            if rc != 0:
                raise SwapError("stop", f"systemctl disable {unit} failed (rc {rc}): {err.strip()}")

    def wait_stopped(self):
        unit, stop = self.params["stop_unit"], self.result["stop"]

        def gone():
            state = self.host.unit_show(unit, ["ActiveState", "MainPID"])
            stop["active_state"], stop["main_pid"] = state.get("ActiveState", "?"), state.get("MainPID", "?")
            return stop["main_pid"] == "0" and stop["active_state"] in ("inactive", "failed")

        self.wait_until(
            self.params["stop_timeout"],
            gone,
            lambda: SwapError(
                "stopped",
                f"{unit} did not stop within {self.params['stop_timeout']:g} s "
                f"(ActiveState={stop['active_state']}, MainPID={stop['main_pid']})",
            ),
        )

    def wait_memory(self):
        needed, memory = self.params["mem_min_available_kib"], self.result["memory"]
        began = self.host.monotonic()

        def back():
            memory["available_kib"] = self.host.meminfo_kib()["MemAvailable"]
            memory["reads"] += 1
            return memory["available_kib"] >= needed

        def failure():
            reason = f" ({self.params['mem_min_reason']})" if self.params["mem_min_reason"] else ""
            return SwapError(
                "memory",
                f"{self.params['stop_unit']} is stopped, but MemAvailable is "
                f"{memory['available_kib'] / GIB_KIB:.2f} GiB after waiting "
                f"~{self.host.monotonic() - began:.0f} s ({memory['reads']} reads of {self.params['meminfo']}, "
                f"timeout {self.params['mem_timeout']:g} s); needed {needed / GIB_KIB:.2f} GiB{reason}. "
                "Something else still holds the memory.",
            )

        self.wait_until(self.params["mem_timeout"], back, failure)

    def check_start_memory(self):
        if self.params["drop_page_cache"]:
            self.host.drop_page_cache()
        figures = self.host.meminfo_kib()
        # The same figures and rounding as voxtral_service's tasks/memory.yml.
        available_mib, total_mib = figures["MemAvailable"] // 1024, figures.get("MemTotal", 0) // 1024
        fractions = self.params["stage_fractions"]
        if self.params["memory_required_mib"] is not None:
            required_mib, need = self.params["memory_required_mib"], "memory_required_mib"
        else:
            required_mib = math.ceil(sum(fractions) * total_mib) + self.params["memory_headroom_mib"]
            need = (
                f"stage fractions {' + '.join(f'{f:g}' for f in fractions)} of MemTotal {total_mib} MiB + "
                f"{self.params['memory_headroom_mib']} MiB headroom"
            )
        self.result["start_memory"] = {
            "checked": True,
            "available_mib": available_mib,
            "total_mib": total_mib,
            "required_mib": required_mib,
            "stage_fractions": fractions,
        }
        if available_mib < required_mib:
            raise SwapError(
                "start_memory",
                f"Not enough memory to start Voxtral: MemAvailable {available_mib} MiB < {required_mib} MiB needed "
                f"({need}). {self.params['start_unit']} was not started.",
            )

    def start_unit(self):
        unit = self.params["start_unit"]
        if self.result["start"]["reset_failed"]:
            self.host.systemctl("reset-failed", unit, timeout=30)
        self.result["start_began_at"] = round(self.host.wall(), 3)
        rc, _out, err = self.host.systemctl("start", unit, timeout=self.params["start_timeout"])
        if rc != 0:
            why = f"timed out after {self.params['start_timeout']:g} s" if rc is None else f"rc {rc}: {err.strip()}"
            raise SwapError("start", f"systemctl start {unit} failed ({why}){self.journal()}")

    def wait_health(self):
        url, health = self.params["health_url"], self.result["health"]
        last = {"why": ""}

        def serves():
            health["status"], last["why"] = self.host.http_status(url, timeout=min(5.0, self.params["health_timeout"]))
            health["polls"] += 1
            return health["status"] == 200

        def failure():
            seen = f"HTTP {health['status']}" if health["status"] is not None else f"no answer ({last['why']})"
            return SwapError(
                "health",
                f"{url} did not answer 200 within {self.params['health_timeout']:g} s "
                f"({health['polls']} polls, last: {seen}){self.journal()}",
            )

        self.wait_until(self.params["health_timeout"], serves, failure)

    def journal(self):
        lines = self.params["journal_lines"]
        text = self.host.journal(self.params["start_unit"], lines) if lines > 0 else ""
        return (
            f"\nLast {lines} journal lines of {self.params['start_unit']}:\n{text or '(no journal lines)'}"
            if lines
            else ""
        )


ARGUMENT_SPEC = {
    "stop_unit": {"type": "str", "required": True},
    "stop_disable": {"type": "bool", "default": True},
    "stop_timeout": {"type": "float", "default": 120},
    "mem_min_available_kib": {"type": "int", "default": 0},
    "mem_min_reason": {"type": "str", "default": ""},
    "mem_timeout": {"type": "float", "default": 120},
    "start_unit": {"type": "str", "required": True},
    "start_timeout": {"type": "float", "default": 660},
    "reset_failed": {"type": "bool", "default": True},
    "stage_fractions": {"type": "list", "elements": "float", "default": []},
    "memory_headroom_mib": {"type": "int", "default": 0},
    "memory_required_mib": {"type": "int"},
    "drop_page_cache": {"type": "bool", "default": False},
    "health_url": {"type": "str", "required": True},
    "health_timeout": {"type": "float", "default": 600},
    "poll_interval": {"type": "float", "default": 0.2},
    "journal_lines": {"type": "int", "default": 40},
    "meminfo": {"type": "path", "default": "/proc/meminfo"},
    "lock": {"type": "path", "default": guard_lock.PATH},
    "heartbeat": {"type": "path", "default": flight_heartbeat.PATH},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    swap = ServiceSwap(module.params, HostProbe(module.params["meminfo"]), check_mode=module.check_mode)
    try:
        result = swap.run()
    except GuardStopped as exc:
        # The lock is released already (the with block ended): the guard restores Gemma now.
        module.fail_json(
            msg=f"stopped by the flight guard (SIGTERM) in phase {exc.phase}; the guard restores Gemma",
            phase=exc.phase,
            changed=swap.changed,
            **swap.result,
        )
    except SwapError as exc:
        module.fail_json(msg=f"phase {exc.phase}: {exc}", phase=exc.phase, changed=swap.changed, **swap.result)
    except (OSError, KeyError, ValueError) as exc:
        module.fail_json(
            msg=f"phase {swap.result['phases'][-1]['name'] if swap.result['phases'] else 'read'}: {exc}",
            changed=swap.changed,
            **swap.result,
        )
    module.exit_json(changed=swap.changed, **result)


if __name__ == "__main__":
    main()
