"""The host's flight state file: one JSON object of sections, read and written under one lock, atomically.

Pure standard library, shared by the ``flight_state`` module (``from …module_utils.state_file import
...``) and the flight guard's restore program, which runs on the host without Ansible (``flight_guard``
installs this file and ``atomic_file.py`` beside it). Every writer takes an exclusive ``flock`` on
``<path>.lock`` for its read-change-write, so no writer loses another's update.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os

try:
    from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_atomically
except ImportError:  # beside the flight guard's restore program on the host
    from atomic_file import write_atomically  # type: ignore[no-redef]

# The project's one timestamp format, UTC to the second (2026-04-14T17:30:00Z): the state file, the flight
# lock, the verdict, and the roles' records through the voxtral.deploy.utc_iso filter all write it. It lives
# here because this file also runs on the host without Ansible (beside the flight guard's restore program).
ISO = "%Y-%m-%dT%H:%M:%SZ"


class StateFileError(ValueError):
    """A state file that is refused (not JSON, not an object): it is never overwritten."""


def utc_iso(moment: datetime.datetime | float | None = None) -> str:
    """``moment`` as an ISO timestamp: a datetime (a naive one is UTC, as Jinja's ``now(utc=true)`` gives),
    seconds since the epoch, or, without one, the current time."""
    if moment is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(moment, (int, float)) and not isinstance(moment, bool):
        moment = datetime.datetime.fromtimestamp(moment, datetime.timezone.utc)
    elif not isinstance(moment, datetime.datetime):
        raise TypeError(f"a timestamp is made from a datetime or epoch seconds, not {type(moment).__name__}")
    elif moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime(ISO)


def dump(data: dict) -> str:
    """Stable, human-readable serialisation: equal content gives equal text."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def load(path: str) -> tuple[dict, bool]:
    """The file's object and whether the file exists (a missing or empty file reads as {})."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}, False
    if not text.strip():
        return {}, True
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateFileError(f"{path} is not valid JSON ({exc}); refusing to overwrite it") from exc
    if not isinstance(data, dict):
        raise StateFileError(f"{path} holds a JSON {type(data).__name__}, not an object; refusing to overwrite it")
    return data, True


def save(path: str, data: dict, mode: int = 0o644) -> None:
    """Replace the file with ``data``, atomically and durably (readers see the old file or the new one)."""
    write_atomically(path, dump(data).encode("utf-8"), mode)


@contextlib.contextmanager
def locked(path: str):
    """Hold the exclusive lock every writer of ``path`` takes (``<path>.lock``); its directory must exist."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
