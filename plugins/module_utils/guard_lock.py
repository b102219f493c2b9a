"""One lock between the swap and the flight guard: whoever holds it acts on Gemma and Voxtral, never both at once.

Pure standard library, like ``state_file.py`` and ``flight_heartbeat.py``: the ``service_swap`` module (an async
job on the host) holds it for its whole swap (``for_swap``), and the flight guard's restore program, which runs on
the host without Ansible (``flight_guard`` installs this file beside it), takes it before it restores Gemma
(``for_guard``). The guard wins: a swap that holds the lock is stopped (SIGTERM, then SIGKILL), a swap that finds
the guard holding it does not start.

The swap writes its PID into the lock file, so that the guard knows whom to stop; the guard writes none, so that
a second guard waits for the first instead of stopping it. The file lives under ``/run`` (tmpfs: a reboot, which
ends every holder, clears it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import time

# The one guard lock of a host (one flight at a time holds the flight lock, so one swap at a time).
PATH = "/run/voxtral-deploy/flight-guard.lock"


class LockBusy(RuntimeError):
    """The swap found the lock held: the flight guard is restoring Gemma, the swap must not start."""


def _open(path: str) -> int:
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    # os.open's descriptors are not inherited by child processes (PEP 446), so a systemctl the holder runs never
    # keeps the lock once the holder is gone.
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # flock(2): a lock held elsewhere fails LOCK_NB with EWOULDBLOCK (Python's fcntl docs: or EACCES).
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _write_pid(fd: int, pid: int | None) -> None:
    """Replace the file's content with ``pid`` (None: empty it)."""
    os.ftruncate(fd, 0)
    if pid is not None:
        # os.pwrite is write(2) on the descriptor: no user-space buffer, so it is flushed when it returns.
        os.pwrite(fd, f"{pid}\n".encode("ascii"), 0)


def _holder_pid(fd: int) -> int | None:
    """The PID the holder wrote, None when there is none (flock is advisory: reading needs no lock)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    # Never 0 or 1: kill(2) with 0 signals our own process group, and 1 is init.
    return int(text) if text.isdigit() and int(text) > 1 else None


@contextlib.contextmanager
def for_swap(path: str = PATH):
    """Hold the lock for a swap, with this process's PID in the file; LockBusy when the guard holds it."""
    fd = _open(path)
    try:
        if not _try_lock(fd):
            raise LockBusy(f"the flight guard is restoring Gemma (it holds {path})")
        _write_pid(fd, os.getpid())
        try:
            yield
        finally:
            _write_pid(fd, None)
    finally:
        # flock(2): the lock goes with the last descriptor of the open file, closed here or by the kernel when
        # the process exits (a SIGKILLed holder's lock is released too).
        os.close(fd)


def _signal(pid: int, signum: int) -> bool:
    """Send ``signum``; False when there is no such process (a stale PID)."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _take(fd: int, path: str, wait_seconds: float, poll_seconds: float) -> str:
    """Take the lock, stopping the swap that holds it; what was done, for the journal."""
    began = time.monotonic()
    if _try_lock(fd):
        return f"took {path} (nobody held it)"
    sent = None  # (pid, signal, when) of the last signal that reached a process
    stale = None
    while not _try_lock(fd):
        now = time.monotonic()
        pid = _holder_pid(fd)
        if pid is None or pid == os.getpid():
            pass  # a holder that named no process (another guard restoring, or a swap about to write): wait
        elif sent is None or sent[0] != pid:
            if _signal(pid, signal.SIGTERM):
                sent = (pid, signal.SIGTERM, now)
            else:
                stale = pid  # its process is gone; whoever holds the lock now names itself soon or releases it
        elif sent[1] == signal.SIGTERM and now - sent[2] >= wait_seconds:
            if _signal(pid, signal.SIGKILL):
                sent = (pid, signal.SIGKILL, now)
        elif sent[1] == signal.SIGKILL and now - sent[2] >= wait_seconds:
            raise TimeoutError(f"{path} is still held by pid {pid} {wait_seconds:g} s after its SIGKILL")
        time.sleep(poll_seconds)
    waited = time.monotonic() - began
    if sent is None:
        named = f"pid {stale} in it is no process" if stale else "its holder named no process"
        return f"waited {waited:.1f} s for {path} ({named})"
    how = "SIGTERM" if sent[1] == signal.SIGTERM else f"SIGKILL (it outlived SIGTERM by {wait_seconds:g} s)"
    return f"stopped the swap (pid {sent[0]}) with {how}, took {path} after {waited:.1f} s"


@contextlib.contextmanager
def for_guard(path: str = PATH, wait_seconds: float = 20, poll_seconds: float = 0.05):
    """Hold the lock for the guard's restore; yields what taking it did (for the journal).

    A swap that holds it gets SIGTERM (service_swap then exits without touching a unit), SIGKILL when it still
    holds it ``wait_seconds`` later, and a lock still held ``wait_seconds`` after that raises TimeoutError (an
    OSError). A PID of no process, or none at all, only means waiting for the lock.
    """
    fd = _open(path)
    try:
        what = _take(fd, path, wait_seconds, poll_seconds)
        _write_pid(fd, None)  # a killed swap's PID goes: only a swap names itself
        yield what
    finally:
        os.close(fd)  # flock(2): releases the lock
