"""service_swap: the phases, what a second run does, check mode and each failure's message (a fake host); the
flight guard's heartbeat and lock, the give-back after its own failure, and SIGTERM from the guard."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.voxtral.deploy.plugins.module_utils import guard_lock
from ansible_collections.voxtral.deploy.plugins.module_utils.host_probe import HostProbe
from ansible_collections.voxtral.deploy.plugins.modules import service_swap
from ansible_collections.voxtral.deploy.plugins.modules.service_swap import (
    ARGUMENT_SPEC,
    GuardStopped,
    ServiceSwap,
    SwapError,
)

GEMMA, VOXTRAL = "gemma.service", "voxtral-tts.service"
URL = "http://127.0.0.1:8091/health"


class FakeHost:
    """systemctl, meminfo and /health as a script: units change state on the commands a real systemd takes."""

    def __init__(self, gemma="active", voxtral="inactive", enabled=True, mem_kib=(20_000_000,), total_kib=24_000_000):
        self.units = {
            GEMMA: {
                "ActiveState": gemma,
                "MainPID": "42" if gemma == "active" else "0",
                "UnitFileState": "enabled" if enabled else "disabled",
            },
            VOXTRAL: {"ActiveState": voxtral, "MainPID": "0", "UnitFileState": "disabled", "LoadState": "loaded"},
        }
        self.mem_kib = list(mem_kib)
        self.total_kib = total_kib
        self.health = [200]
        self.commands = []
        self.clock = 0.0
        self.stop_lingers = 0  # polls during which the stopped unit still has its main process
        self.start_rc = 0
        self.on_sleep = None  # called on every sleep (a SIGTERM while the swap waits)

    def unit_show(self, unit, properties):
        state = self.units[unit]
        if unit == GEMMA and state["ActiveState"] == "inactive" and self.stop_lingers:
            self.stop_lingers -= 1
            return {"ActiveState": "deactivating", "MainPID": "42"}
        return {key: state.get(key, "") for key in properties}

    def systemctl(self, verb, unit, timeout=None):
        self.commands.append((verb, unit))
        if verb == "stop":
            self.units[unit].update(ActiveState="inactive", MainPID="0")
        elif verb == "disable":
            self.units[unit]["UnitFileState"] = "disabled"
        elif verb == "start":
            if self.start_rc:
                self.units[unit]["ActiveState"] = "failed"
                return self.start_rc, "", "Job for voxtral-tts.service failed."
            self.units[unit]["ActiveState"] = "active"
        elif verb == "reset-failed":
            self.units[unit]["ActiveState"] = "inactive"
        return 0, "", ""

    def meminfo_kib(self):
        available = self.mem_kib.pop(0) if len(self.mem_kib) > 1 else self.mem_kib[0]
        return {"MemAvailable": available, "MemTotal": self.total_kib}

    def journal(self, unit, lines):
        return "crashed: CUDA out of memory"

    def drop_page_cache(self):
        self.commands.append(("drop_page_cache", None))

    def http_status(self, url, timeout):
        status = self.health.pop(0) if len(self.health) > 1 else self.health[0]
        return status, "" if status else "connection refused"

    def monotonic(self):
        return self.clock

    def wall(self):
        return 1_764_690_000.0 + self.clock

    def sleep(self, seconds):
        self.clock += seconds
        if self.on_sleep:
            self.on_sleep()


# The guard's heartbeat and lock of the test that runs (armed_guard): never the host's /run.
GUARD = {}


@pytest.fixture(autouse=True)
def armed_guard(tmp_path, monkeypatch):
    """Every swap runs with a flight guard armed: a heartbeat and a lock file of its own."""
    heartbeat = tmp_path / "run" / "flight-heartbeat"
    heartbeat.parent.mkdir()
    heartbeat.touch()
    monkeypatch.setitem(GUARD, "heartbeat", str(heartbeat))
    monkeypatch.setitem(GUARD, "lock", str(tmp_path / "run" / "flight-guard.lock"))
    return GUARD


def params(**overrides):
    values = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    values.update(stop_unit=GEMMA, start_unit=VOXTRAL, health_url=URL, stage_fractions=[0.1, 0.05], **GUARD)
    values.update(overrides)
    return values


def test_a_swap_stops_disables_waits_and_starts_in_order():
    host = FakeHost(mem_kib=(1_000_000, 1_500_000, 20_000_000))
    host.stop_lingers = 2
    host.health = [None, 503, 200]
    swap = ServiceSwap(params(mem_min_available_kib=10_000_000), host)
    result = swap.run()
    assert swap.changed
    assert host.commands == [("stop", GEMMA), ("disable", GEMMA), ("start", VOXTRAL)]
    assert [p["name"] for p in result["phases"]] == ["stop", "stopped", "memory", "start_memory", "start", "health"]
    assert (
        result["stop"] | {"stopped": True, "disabled": True, "active_state": "inactive", "main_pid": "0"}
        == result["stop"]
    )
    assert result["memory"] == {"needed_kib": 10_000_000, "available_kib": 20_000_000, "reads": 3}
    assert result["health"]["polls"] == 3 and result["health"]["status"] == 200
    assert result["start"]["started"] is True
    assert result["start_began_at"] is not None


def test_the_start_memory_is_what_memory_yml_asserts():
    host = FakeHost(mem_kib=(20_000_000,), total_kib=24_000_000)
    result = ServiceSwap(params(memory_headroom_mib=1024), host).run()
    # ceil((0.1 + 0.05) * 23437 MiB) + 1024 MiB headroom
    assert result["start_memory"] == {
        "checked": True,
        "available_mib": 19531,
        "total_mib": 23437,
        "required_mib": 3516 + 1024,
        "stage_fractions": [0.1, 0.05],
    }


def test_a_second_run_changes_nothing():
    host = FakeHost(gemma="inactive", voxtral="active", enabled=False)
    swap = ServiceSwap(params(), host)
    result = swap.run()
    assert not swap.changed
    assert not host.commands
    assert result["start_memory"] == {"checked": False}
    assert [p["name"] for p in result["phases"]] == ["stop", "stopped", "memory", "health"]
    assert result["start_began_at"] is None


def test_check_mode_does_nothing_and_says_what_it_would_do():
    host = FakeHost()
    swap = ServiceSwap(params(), host, check_mode=True)
    result = swap.run()
    assert swap.changed
    assert not host.commands
    assert result["stop"]["stopped"] and result["stop"]["disabled"] and result["start"]["started"]
    assert result["phases"] == []


def test_a_failed_voxtral_is_reset_before_its_start():
    host = FakeHost(voxtral="failed")
    ServiceSwap(params(), host).run()
    assert ("reset-failed", VOXTRAL) in host.commands
    assert host.commands.index(("reset-failed", VOXTRAL)) < host.commands.index(("start", VOXTRAL))


def test_page_cache_dropped_only_when_asked():
    host = FakeHost()
    ServiceSwap(params(drop_page_cache=True), host).run()
    assert ("drop_page_cache", None) in host.commands


def fails(host, **overrides):
    with pytest.raises(SwapError) as caught:
        ServiceSwap(params(**overrides), host).run()
    return caught.value


def test_a_unit_that_will_not_stop_fails_the_stopped_phase_with_its_state():
    host = FakeHost()
    host.stop_lingers = 10**6
    error = fails(host, stop_timeout=1, poll_interval=0.25)
    assert error.phase == "stopped"
    assert str(error) == (
        "gemma.service did not stop within 1 s (ActiveState=deactivating, MainPID=42); "
        "the swap stopped voxtral-tts.service and started gemma.service again"
    )
    assert ("start", VOXTRAL) not in host.commands


def test_memory_that_does_not_come_back_fails_with_the_figures():
    host = FakeHost(mem_kib=(1_048_576,))
    error = fails(
        host,
        mem_min_available_kib=2 * 1_048_576,
        mem_timeout=2,
        poll_interval=1,
        mem_min_reason="gemma_pause_min_mem_available_gib=2",
    )
    assert error.phase == "memory"
    assert "MemAvailable is 1.00 GiB after waiting ~2 s (3 reads of /proc/meminfo, timeout 2 s)" in str(error)
    assert "needed 2.00 GiB (gemma_pause_min_mem_available_gib=2)" in str(error)
    assert ("start", VOXTRAL) not in host.commands


def test_too_little_memory_for_the_stages_refuses_the_start():
    host = FakeHost(mem_kib=(100 * 1024,))
    error = fails(host, memory_required_mib=4096)
    assert error.phase == "start_memory"
    assert str(error) == (
        "Not enough memory to start Voxtral: MemAvailable 100 MiB < 4096 MiB needed (memory_required_mib). "
        "voxtral-tts.service was not started; the swap stopped voxtral-tts.service and started gemma.service again"
    )
    assert ("start", VOXTRAL) not in host.commands


def test_a_start_that_fails_says_so_with_the_journal():
    host = FakeHost()
    host.start_rc = 1
    error = fails(host, journal_lines=5)
    assert error.phase == "start"
    assert "systemctl start voxtral-tts.service failed (rc 1: Job for voxtral-tts.service failed.)" in str(error)
    assert "Last 5 journal lines of voxtral-tts.service:\ncrashed: CUDA out of memory" in str(error)


def test_health_that_never_answers_fails_with_the_last_answer():
    host = FakeHost()
    host.health = [503]
    error = fails(host, health_timeout=1, poll_interval=0.5, journal_lines=0)
    assert error.phase == "health"
    assert str(error) == (
        f"{URL} did not answer 200 within 1 s (3 polls, last: HTTP 503); "
        "the swap stopped voxtral-tts.service and started gemma.service again"
    )


def test_no_heartbeat_refuses_the_swap_before_anything_is_run(armed_guard):
    """The guard removes the heartbeat when it fires: a swap after that would stop the Gemma it restored."""
    os.unlink(armed_guard["heartbeat"])
    host = FakeHost()
    with pytest.raises(SwapError) as caught:
        ServiceSwap(params(), host).run()
    assert caught.value.phase == "heartbeat"
    assert str(caught.value) == (
        f"the flight guard already fired or was never armed: no heartbeat at {armed_guard['heartbeat']}; "
        "Gemma is not stopped"
    )
    assert host.commands == []


def test_a_swap_beside_a_stopped_gemma_needs_no_heartbeat(armed_guard):
    """A re-run beside the Gemma an earlier flight paused (no guard armed then) stops nothing: no guard needed."""
    os.unlink(armed_guard["heartbeat"])
    host = FakeHost(gemma="inactive", voxtral="active")
    result = ServiceSwap(params(), host).run()
    assert not result["stop"]["stopped"] and not result["start"]["started"]
    assert ("stop", GEMMA) not in host.commands


def test_check_mode_needs_no_heartbeat(armed_guard):
    """A dry run arms nothing (check mode writes no heartbeat): it reports the swap it would do."""
    os.unlink(armed_guard["heartbeat"])
    host = FakeHost()
    swap = ServiceSwap(params(), host, check_mode=True)
    result = swap.run()
    assert swap.changed
    assert result["start"]["started"]
    assert host.commands == []


def test_a_lock_the_guard_holds_refuses_the_swap_before_the_stop(armed_guard):
    host = FakeHost()
    with guard_lock.for_guard(armed_guard["lock"]):
        error = fails(host)
    assert error.phase == "lock"
    assert str(error) == f"the flight guard is restoring Gemma (it holds {armed_guard['lock']}); Gemma is not stopped"
    assert host.commands == []


def test_the_swap_holds_the_lock_with_its_pid_throughout_and_never_beats(armed_guard):
    heartbeat = armed_guard["heartbeat"]
    os.utime(heartbeat, (1_000_000, 1_000_000))
    host = FakeHost()
    seen = []
    host.on_sleep = lambda: seen.append(Path(armed_guard["lock"]).read_text())
    host.health = [503, 200]
    ServiceSwap(params(), host).run()
    assert seen == [f"{os.getpid()}\n"]
    assert Path(armed_guard["lock"]).read_text() == ""  # released, its PID cleared
    assert os.stat(heartbeat).st_mtime == 1_000_000


def test_a_failure_before_the_stop_gives_nothing_back():
    host = FakeHost(gemma="inactive", enabled=False)
    host.health = [503]
    error = fails(host, health_timeout=1, poll_interval=0.5, journal_lines=0)
    assert str(error).endswith("(3 polls, last: HTTP 503)")
    assert host.commands == [("start", VOXTRAL)]


def test_a_start_that_fails_gives_gemma_back_and_says_what_it_could_not_do():
    host = FakeHost()
    host.start_rc = 1  # every start fails: Voxtral's, then Gemma's
    error = fails(host, journal_lines=0)
    assert error.phase == "start"
    assert str(error) == (
        "systemctl start voxtral-tts.service failed (rc 1: Job for voxtral-tts.service failed.); "
        "the swap stopped voxtral-tts.service and could not start gemma.service (rc 1: "
        "Job for voxtral-tts.service failed.)"
    )
    assert host.commands[-2:] == [("stop", VOXTRAL), ("start", GEMMA)]


def test_sigterm_while_the_swap_waits_ends_it_at_once_and_restores_nothing(armed_guard):
    host = FakeHost(mem_kib=(1_000_000,))
    host.on_sleep = lambda: os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(GuardStopped) as caught:
        ServiceSwap(params(mem_min_available_kib=10_000_000, mem_timeout=60), host).run()
    assert caught.value.phase == "memory"
    assert host.commands == [("stop", GEMMA), ("disable", GEMMA)]  # no stop of Voxtral, no start of Gemma
    assert signal.getsignal(signal.SIGTERM) is before
    with guard_lock.for_swap(armed_guard["lock"]):
        pass  # released for the guard


def test_sigterm_interrupts_a_blocking_systemctl_start_and_kills_it(tmp_path):
    """A real child process stands in for `systemctl start`: it must not outlive the swap."""
    child_pid = tmp_path / "child.pid"

    class BlockingStart(FakeHost):
        def systemctl(self, verb, unit, timeout=None):
            if verb != "start":
                return super().systemctl(verb, unit, timeout)
            self.commands.append((verb, unit))
            script = f"import os, time; open({str(child_pid)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
            return HostProbe.run([sys.executable, "-c", script], timeout=timeout)

    def sigterm_once_started():
        while not child_pid.exists() or not child_pid.read_text():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    host = BlockingStart()
    threading.Thread(target=sigterm_once_started, daemon=True).start()
    began = time.monotonic()
    with pytest.raises(GuardStopped) as caught:
        ServiceSwap(params(), host).run()
    assert caught.value.phase == "start"
    assert time.monotonic() - began < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(child_pid.read_text()), 0)  # killed and reaped
    assert ("start", GEMMA) not in host.commands


def test_the_module_says_the_guard_stopped_it(capsys, monkeypatch):
    host = FakeHost(mem_kib=(1_000_000,))
    host.on_sleep = lambda: os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(service_swap, "HostProbe", lambda meminfo: host)
    args = {k: v for k, v in params(mem_min_available_kib=10_000_000).items() if v is not None}
    with patch_module_args(args), pytest.raises(SystemExit):
        service_swap.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert result["msg"] == "stopped by the flight guard (SIGTERM) in phase memory; the guard restores Gemma"
    assert result["phase"] == "memory"
