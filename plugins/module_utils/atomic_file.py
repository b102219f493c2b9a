"""Atomic file writes for the project's modules: readers see the old file or the new one, never half of it.

Pure standard library (``from …module_utils.atomic_file import write_atomically, write_if_changed``).
Not ``AnsibleModule.atomic_move``: that fails the task itself, and a module must still return its figures
when a write fails.
"""

from __future__ import annotations

import os
import stat
import tempfile


def current_mode(path: str, default: int | None = None) -> int:
    """The permission bits of ``path``; for a new file ``default``, or what the umask leaves of 0666."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        if default is not None:
            return default
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(path: str, data: bytes, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: a temporary file beside it, then a rename.

    ``mode`` defaults to the replaced file's (or the umask's for a new file). ``durable`` also syncs the
    file and its directory, so that the new content survives a power cut once this returns.
    """
    directory = os.path.dirname(os.path.abspath(path))
    mode = current_mode(path) if mode is None else mode
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            if durable:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_if_changed(path: str, data: bytes, mode: int | None = None, durable: bool = True) -> bool:
    """``write_atomically`` unless ``path`` already holds ``data``; True when the content changed."""
    try:
        with open(path, "rb") as existing:
            if existing.read() == data:
                return False
    except OSError:
        pass
    write_atomically(path, data, mode, durable)
    return True
