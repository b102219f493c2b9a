#!/usr/bin/python
"""Ansible module: the per-host flight lock (one deploy, benchmark or rollback at a time)."""

DOCUMENTATION = r"""
---
module: flight_lock
short_description: Take or release the per-host flight lock, atomically
description:
  - Takes a lock file with C(O_CREAT|O_EXCL), so two controllers racing for one host cannot both win.
  - The lock records who took it, for what, the run id, and when.
  - While another run holds a lock younger than O(stale_after_minutes), taking it fails with a message
    naming the holder and its age. An older lock is taken over (its controller is presumed dead) and the
    result says so.
  - Taking and releasing report C(changed=false). The lock is bookkeeping for the length of one run,
    not host configuration, and a run that leaves no other trace must stay idempotent.
  - In check mode the lock is checked (a held lock still refuses) but nothing is written.
options:
  path:
    description: The lock file. Its parent directory is created (0755) when missing.
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description:
      - The id of this run. Taking a lock this run already holds is a no-op; releasing only removes a lock
        this run holds (unless O(force)).
    type: str
    required: true
  owner:
    description: Who takes the lock (user@controller), shown to anyone the lock refuses.
    type: str
    default: unknown
  purpose:
    description: What the run is, shown to anyone the lock refuses.
    type: str
    default: flight
  stale_after_minutes:
    description: A lock older than this is taken over.
    type: int
    default: 120
  force:
    description: Release (or take) the lock whoever holds it.
    type: bool
    default: false
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take the flight lock
  flight_lock:
    path: /var/lib/voxtral-deploy/flight.lock
    run_id: "{{ preflight_run_id }}"
    owner: "alice@laptop"
    purpose: deploy-voxtral

- name: Release it at the end of the run
  flight_lock:
    path: /var/lib/voxtral-deploy/flight.lock
    run_id: "{{ preflight_run_id }}"
    state: absent
"""

RETURN = r"""
held:
  description: Whether this run holds the lock after the task.
  type: bool
  returned: always
taken_over:
  description: Whether a stale lock of another run was replaced.
  type: bool
  returned: always
previous:
  description: The lock record found before the task (empty when there was none).
  type: dict
  returned: always
lock:
  description: The lock record this run holds (empty after a release).
  type: dict
  returned: always
  sample: {"run_id": "20261125T180000Z-1a2b3c4d", "owner": "alice@laptop", "purpose": "deploy-voxtral",
           "acquired_at": "2026-11-25T18:00:00Z", "acquired_epoch": 1795370400}
message:
  description: What happened, in one line.
  type: str
  returned: always
"""

import contextlib
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_atomically
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import utc_iso


class FlightLock:
    """Lock logic; the module wrapper only maps parameters and results."""

    def __init__(
        self, path, run_id, owner="unknown", purpose="flight", stale_after_minutes=120, check_mode=False, now=time.time
    ):
        self.path = path
        self.run_id = run_id
        self.owner = owner
        self.purpose = purpose
        self.stale_after_s = stale_after_minutes * 60
        self.check_mode = check_mode
        self.now = now

    def read(self):
        try:
            with open(self.path, encoding="utf-8") as handle:
                record = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # An unreadable or torn lock still counts as held; its age comes from the file itself.
            record = {"owner": "unknown (unreadable lock file)", "run_id": "?", "purpose": "?"}
            try:
                record["acquired_epoch"] = int(os.stat(self.path).st_mtime)
            except FileNotFoundError:
                return {}
        return record if isinstance(record, dict) else {"owner": "unknown", "run_id": "?"}

    def _record(self):
        now = int(self.now())
        return {
            "run_id": self.run_id,
            "owner": self.owner,
            "purpose": self.purpose,
            "pid": os.getppid(),
            "acquired_at": utc_iso(now),
            "acquired_epoch": now,
        }

    def _describe(self, record):
        age_min = (self.now() - record.get("acquired_epoch", self.now())) / 60
        return (
            f"held by {record.get('owner', 'unknown')} for {record.get('purpose', '?')} "
            f"(run {record.get('run_id', '?')}) since {record.get('acquired_at', '?')}, "
            f"{age_min:.0f} min ago"
        )

    def acquire(self, force=False):
        previous = self.read()
        if previous.get("run_id") == self.run_id:
            return {
                "held": True,
                "taken_over": False,
                "previous": previous,
                "lock": previous,
                "message": f"flight lock {self.path} already held by this run",
            }
        record = self._record()
        if not previous:
            if not self.check_mode and not self._create(record):
                # Lost a race with another controller between read and create.
                return self.acquire(force)
            return {
                "held": True,
                "taken_over": False,
                "previous": {},
                "lock": record,
                "message": f"flight lock {self.path} taken by {self.owner}",
            }
        age_s = self.now() - previous.get("acquired_epoch", 0)
        if not force and age_s < self.stale_after_s:
            raise LockHeld(
                f"flight lock {self.path} is {self._describe(previous)}: another flight is running on "
                f"this host. Wait for it, or, if its controller is gone, let it go stale "
                f"(after {self.stale_after_s // 60} min) or run rollback-voxtral.yml with "
                f"-e voxtral_force_lock=true.",
                previous,
            )
        if not self.check_mode:
            self._replace(record)
        return {
            "held": True,
            "taken_over": True,
            "previous": previous,
            "lock": record,
            "message": f"flight lock {self.path} taken over: it was {self._describe(previous)}",
        }

    def release(self, force=False):
        previous = self.read()
        if not previous:
            return {
                "held": False,
                "taken_over": False,
                "previous": {},
                "lock": {},
                "message": f"flight lock {self.path} was not held",
            }
        if previous.get("run_id") != self.run_id and not force:
            return {
                "held": False,
                "taken_over": False,
                "previous": previous,
                "lock": {},
                "message": f"flight lock {self.path} left alone: it is {self._describe(previous)}",
            }
        if not self.check_mode:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        return {
            "held": False,
            "taken_over": False,
            "previous": previous,
            "lock": {},
            "message": f"flight lock {self.path} released",
        }

    def _create(self, record):
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _replace(self, record):
        write_atomically(self.path, json.dumps(record, sort_keys=True).encode("utf-8"), 0o644)


class LockHeld(Exception):
    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "run_id": {"type": "str", "required": True},
            "owner": {"type": "str", "default": "unknown"},
            "purpose": {"type": "str", "default": "flight"},
            "stale_after_minutes": {"type": "int", "default": 120},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["stale_after_minutes"] < 1:
        module.fail_json(msg=f"stale_after_minutes must be at least 1, got {params['stale_after_minutes']}")
    lock = FlightLock(
        params["path"],
        params["run_id"],
        params["owner"],
        params["purpose"],
        params["stale_after_minutes"],
        check_mode=module.check_mode,
    )
    try:
        if params["state"] == "present":
            result = lock.acquire(force=params["force"])
        else:
            result = lock.release(force=params["force"])
    except LockHeld as exc:
        module.fail_json(msg=str(exc), held=False, taken_over=False, previous=exc.holder, lock={})
    except OSError as exc:
        module.fail_json(msg=f"flight lock {params['path']}: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
