"""The flight's heartbeat on the host: a file whose modification time says when the controller last acted there.

Pure standard library, like ``state_file.py``: the project's modules refresh it (``beat``) each time the
controller runs them on the host — every ``flight_state`` read or write, every poll of ``async_progress`` —
and the flight guard's restore program, which runs on the host without Ansible, reads its age (``age``) and
decides (``decide``) whether the controller is gone. Only a module the controller runs may beat: a job that
runs on by itself (an async job) must not, or a dead controller's job would keep the heartbeat young.

The file exists only while a guard is armed (``start`` creates it, the guard removes it when it fires or is
disarmed): ``beat`` never creates it, so outside a flight nothing is written. It lives under ``/run`` (tmpfs,
gone at a reboot, when the guard's boot step decides from the state file instead).
"""

from __future__ import annotations

import contextlib
import os
import time

# The one heartbeat of a host (one flight at a time holds the flight lock).
PATH = "/run/voxtral-deploy/flight-heartbeat"


def beat(path: str = PATH) -> bool:
    """Refresh the heartbeat when a guard is armed (the file exists); True when it was refreshed.

    Never fails its caller: a heartbeat that cannot be written costs at worst an early restore of Gemma,
    which the caller's own work must not be stopped for.
    """
    try:
        os.utime(path)
    except OSError:
        return False
    return True


def start(path: str = PATH) -> None:
    """Create (or refresh) the heartbeat: the guard is being armed."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with open(path, "a", encoding="utf-8"):
        pass
    os.utime(path)


def stop(path: str = PATH) -> None:
    """Remove the heartbeat: the guard fired or was disarmed, later beats write nothing."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def age(path: str = PATH, now: float | None = None) -> float | None:
    """Seconds since the last beat, None when there is no heartbeat."""
    try:
        modified = os.stat(path).st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - modified)


# Why the guard fires, as it records it (`why` in the state file's flight_guard section).
WHY_HEARTBEAT = "the controller's heartbeat stopped"
WHY_DEADLINE = "deadline passed without a disarm"


def decide(
    heartbeat_age: float | None, heartbeat_timeout: float, armed_seconds: float, deadline_seconds: float
) -> str | None:
    """Why the guard must restore Gemma now, or None while the flight is alive and within its deadline.

    ``heartbeat_age`` None (no heartbeat while armed: removed, or lost with /run) counts as a stopped heartbeat;
    ``heartbeat_timeout`` 0 judges only the deadline.
    """
    if armed_seconds >= deadline_seconds:
        return WHY_DEADLINE
    if heartbeat_timeout > 0 and (heartbeat_age is None or heartbeat_age > heartbeat_timeout):
        return WHY_HEARTBEAT
    return None
