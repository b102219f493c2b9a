"""The guard lock between service_swap and the flight guard, with real processes: a swap holding it is stopped
(SIGTERM, or SIGKILL when it ignores that), a stale PID only means waiting, a swap never starts beside the guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils import guard_lock

# The restore program's folder: guard_lock imported by plain name there, as on the host.
GUARD_FILES = Path(__file__).resolve().parents[2] / "roles" / "flight_guard" / "files"


def holder(lock: Path, script: str) -> subprocess.Popen:
    """A child process that runs `script` (guard_lock imported by plain name) and says "held" when it holds the lock."""
    code = textwrap.dedent(
        f"""
        import fcntl, os, signal, sys, time
        sys.path.insert(0, {str(GUARD_FILES)!r})
        import guard_lock
        lock = {str(lock)!r}
        """
    ) + textwrap.dedent(script)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


SWAP = """
with guard_lock.for_swap(lock):
    print("held", flush=True)
    time.sleep(30)
"""


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


@pytest.fixture
def lock(tmp_path):
    return tmp_path / "run" / "voxtral-deploy" / "flight-guard.lock"


def test_a_swap_holds_the_lock_with_its_pid_and_clears_it_on_release(lock):
    with guard_lock.for_swap(str(lock)):
        assert lock.read_text() == f"{os.getpid()}\n"
        assert oct(lock.parent.stat().st_mode & 0o777) == "0o755"
    assert lock.read_text() == ""


def test_a_swap_does_not_start_while_the_guard_holds_the_lock(lock):
    with guard_lock.for_guard(str(lock)) as what:
        assert what == f"took {lock} (nobody held it)"
        with pytest.raises(guard_lock.LockBusy) as busy, guard_lock.for_swap(str(lock)):
            pytest.fail("the swap took the lock the guard holds")
    assert str(busy.value) == f"the flight guard is restoring Gemma (it holds {lock})"
    with guard_lock.for_swap(str(lock)):
        pass  # released with the guard's restore


def test_the_guard_stops_a_swap_that_holds_the_lock_with_sigterm(lock):
    swap = holder(lock, SWAP)
    began = time.monotonic()
    with guard_lock.for_guard(str(lock), wait_seconds=5) as what:
        assert swap.wait(5) == -signal.SIGTERM
        assert what.startswith(f"stopped the swap (pid {swap.pid}) with SIGTERM, took {lock} after ")
        assert time.monotonic() - began < 4
        with pytest.raises(guard_lock.LockBusy), guard_lock.for_swap(str(lock)):
            pytest.fail("a swap took the lock the guard took over")
    # The guard names nothing: the swap's PID is gone from the file.
    assert lock.read_text() == ""


def test_a_swap_that_ignores_sigterm_gets_sigkill(lock):
    swap = holder(lock, "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SWAP)
    began = time.monotonic()
    with guard_lock.for_guard(str(lock), wait_seconds=0.5) as what:
        assert swap.wait(5) == -signal.SIGKILL
        assert what.startswith(
            f"stopped the swap (pid {swap.pid}) with SIGKILL (it outlived SIGTERM by 0.5 s), took {lock} after "
        )
        assert 0.5 <= time.monotonic() - began < 4


def test_a_stale_pid_in_a_free_lock_is_only_cleared(lock):
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{dead_pid()}\n")
    with guard_lock.for_guard(str(lock)) as what:
        assert what == f"took {lock} (nobody held it)"
        assert lock.read_text() == ""


def test_a_stale_pid_while_the_lock_is_held_means_waiting_for_it(lock):
    """A holder that names no process (another guard restoring, say): waited for, never signalled."""
    lock.parent.mkdir(parents=True)
    stale = dead_pid()
    lock.write_text(f"{stale}\n")
    other_guard = holder(
        lock,
        """
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(0.5)
        """,
    )
    with guard_lock.for_guard(str(lock), wait_seconds=5) as what:
        assert other_guard.wait(5) == 0  # it ended by itself
        assert what.startswith("waited ")
        assert what.endswith(f" s for {lock} (pid {stale} in it is no process)")


def test_a_lock_still_held_after_sigkill_is_an_oserror(lock, monkeypatch):
    """A holder that does not die (uninterruptible sleep, say): the guard goes on without the lock."""
    swap = holder(lock, SWAP)
    monkeypatch.setattr(guard_lock, "_signal", lambda pid, signum: True)  # signals that change nothing
    try:
        with pytest.raises(OSError) as caught, guard_lock.for_guard(str(lock), wait_seconds=0.2):
            pytest.fail("the guard took a lock another process holds")
        assert str(caught.value) == f"{lock} is still held by pid {swap.pid} 0.2 s after its SIGKILL"
    finally:
        swap.kill()
        swap.wait()
