"""service_swap: the phases, what a second run does, check mode and each failure's message (a fake host)."""

import pytest
from ansible_collections.voxtral.deploy.plugins.modules.service_swap import ARGUMENT_SPEC, ServiceSwap, SwapError

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


def params(**overrides):
    values = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    values.update(stop_unit=GEMMA, start_unit=VOXTRAL, health_url=URL, stage_fractions=[0.1, 0.05])
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
    assert str(error) == "gemma.service did not stop within 1 s (ActiveState=deactivating, MainPID=42)"
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
        "voxtral-tts.service was not started."
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
    assert str(error) == f"{URL} did not answer 200 within 1 s (3 polls, last: HTTP 503)"
