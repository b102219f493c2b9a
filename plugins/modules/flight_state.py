#!/usr/bin/python
"""Read and update the host's flight state file (the only writer of state.json)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flight_state
short_description: Read and update the per-host flight state file
description:
  - The one writer of the host's flight state, a JSON object of sections (C(gemma), C(flight_guard),
    C(release), ...), each an object of keys. Rollback must work from this file alone, from another
    controller, days later.
  - O(state=present) removes O(remove_keys) from the top-level O(section), then merges O(data) into it
    (a shallow merge, key by key). O(state=absent) removes O(section). O(state=read) only reads.
  - The file is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
    directory) under an exclusive lock on C(<path>.lock), and only when its content changes.
  - Timestamps are given by the caller, so idempotency stays in the caller's hands; O(stamp) adds the
    host's current UTC time under a key, but only when the section changes.
options:
  path:
    description: Path of the state file. Its parent directory is created (0755) when missing.
    type: path
    default: /var/lib/voxtral-deploy/state.json
  section:
    description: Top-level key the update applies to. Required unless O(state=read).
    type: str
  data:
    description: Keys to set in O(section) (shallow merge; a key set to null is stored as null).
    type: dict
    default: {}
  remove_keys:
    description:
      - Keys to remove from O(section) before O(data) is merged, so that a key in both ends up with its new
        value (forget the last flight's keys, set these). Absent keys are ignored.
    type: list
    elements: str
    default: []
  replace:
    description: Replace the whole section with O(data) instead of merging into it.
    type: bool
    default: false
  stamp:
    description:
      - Name of a key that receives the host's current UTC time (ISO 8601, C(2026-04-14T17:30:00Z))
        when, and only when, the update changes the section. Ignored for O(state=absent) and O(state=read).
    type: str
  state:
    description:
      - V(present) merges, V(absent) removes O(section), V(read) returns the file's content and never
        changes anything (a missing file reads as an empty object).
    type: str
    choices: [present, absent, read]
    default: present
  mode:
    description: Permissions of the state file.
    type: raw
    default: "0644"
  heartbeat:
    description:
      - The flight's heartbeat, refreshed by every call (read, check mode included) while a flight guard is
        armed, so that the guard sees the controller alive; never created here (module_utils/flight_heartbeat.py).
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
notes:
  - Supports check mode (reports what would change, writes nothing) and diff mode (the whole file as
    JSON, before and after).
  - A file that is not a JSON object is never overwritten; the module fails and names it.
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record the Gemma baseline
  flight_state:
    section: gemma
    data:
      baseline_p50_ms: 190.4
      baseline_url: http://127.0.0.1:8000/v1/chat/completions
    stamp: baseline_at

- name: Read the state (rollback from another controller)
  flight_state:
    state: read
  register: flight

- name: Use the recorded baseline
  ansible.builtin.debug:
    msg: "{{ flight.state_data.gemma.baseline_p50_ms }}"

- name: Forget the guard section
  flight_state:
    section: flight_guard
    state: absent
"""

RETURN = r"""
state_data:
  description: The whole state after the update (in check mode, what it would be).
  returned: always
  type: dict
  sample: {"gemma": {"baseline_p50_ms": 190.4, "baseline_at": "2026-04-14T17:30:00Z"}}
section_data:
  description: The content of O(section) after the update (empty when absent or no section given).
  returned: always
  type: dict
exists:
  description: Whether the file existed before the task.
  returned: always
  type: bool
path:
  description: The state file's path.
  returned: always
  type: str
stamped:
  description: The timestamp written under O(stamp), when one was written.
  returned: when O(stamp) was given and the section changed
  type: str
  sample: "2026-04-14T17:30:00Z"
"""

import contextlib
import copy
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import (
    StateFileError,
    dump,
    load,
    locked,
    save,
    utc_iso,
)

# A state file the module refuses to touch (not JSON, not an object, ...).
FlightStateError = StateFileError


class FlightState:
    """Loads, changes and atomically writes the state file."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params
        self.path = self.params["path"]

    # -- reading -----------------------------------------------------------------------------------
    def load(self) -> tuple[dict, bool]:
        return load(self.path)

    # -- changing ----------------------------------------------------------------------------------
    def updated(self, before: dict) -> tuple[dict, str | None]:
        """The state after the requested change, and the stamp written (if any)."""
        state = self.params["state"]
        section = self.params["section"]
        after = copy.deepcopy(before)
        if state == "absent":
            after.pop(section, None)
            return after, None
        current = before.get(section, {})
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise FlightStateError(
                f"section {section!r} in {self.path} is a JSON {type(current).__name__}, not an object"
            )
        new = {} if self.params["replace"] else copy.deepcopy(current)
        for key in self.params["remove_keys"]:
            new.pop(key, None)
        new.update(copy.deepcopy(self.params["data"]))
        stamped = None
        stamp = self.params["stamp"]
        if stamp and (new != current or section not in before):
            stamped = utc_iso()
            new[stamp] = stamped
        after[section] = new
        return after, stamped

    # -- writing -----------------------------------------------------------------------------------
    def file_mode(self) -> int:
        mode = self.params["mode"]
        if isinstance(mode, int):
            return mode
        try:
            return int(str(mode), 8)
        except ValueError as exc:
            raise FlightStateError(f"mode {mode!r} is not an octal number such as '0644'") from exc

    def write(self, data: dict) -> None:
        save(self.path, data, self.file_mode())

    def mode_differs(self) -> bool:
        try:
            return (os.stat(self.path).st_mode & 0o7777) != self.file_mode()
        except FileNotFoundError:
            return False

    # -- the task --------------------------------------------------------------------------------
    def run(self) -> dict:
        state = self.params["state"]
        section = self.params["section"]
        result: dict = {"changed": False, "path": self.path}

        if state == "read":
            data, exists = self.load()
            result.update(
                state_data=data,
                section_data=(data.get(section) or {}) if section else {},
                exists=exists,
            )
            return result

        directory = os.path.dirname(self.path) or "."
        writing = not self.module.check_mode
        if writing and state == "present" and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755, exist_ok=True)
            result["changed"] = True
        # Writers (this module and the flight guard's restore program) serialise on <path>.lock.
        with locked(self.path) if writing and os.path.isdir(directory) else contextlib.nullcontext():
            before, exists = self.load()
            after, stamped = self.updated(before)
            content_changes = after != before or (not exists and state == "present")
            if content_changes:
                result["changed"] = True
                if writing:
                    self.write(after)
            elif self.mode_differs():
                result["changed"] = True
                if writing:
                    os.chmod(self.path, self.file_mode())

        result.update(
            state_data=after,
            section_data=after.get(section) or {},
            exists=exists,
        )
        if stamped and content_changes:
            result["stamped"] = stamped
        if self.module._diff:
            result["diff"] = {
                "before": dump(before) if exists else "",
                "after": dump(after) if exists or content_changes else "",
                "before_header": self.path,
                "after_header": self.path,
            }
        return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/voxtral-deploy/state.json"},
            "section": {"type": "str"},
            "data": {"type": "dict", "default": {}},
            "remove_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "replace": {"type": "bool", "default": False},
            "stamp": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent", "read"], "default": "present"},
            "mode": {"type": "raw", "default": "0644"},
            "heartbeat": {"type": "path", "default": flight_heartbeat.PATH},
        },
        required_if=[("state", "present", ["section"]), ("state", "absent", ["section"])],
        supports_check_mode=True,
    )
    flight_heartbeat.beat(module.params["heartbeat"])
    try:
        result = FlightState(module).run()
    except FlightStateError as exc:
        module.fail_json(msg=str(exc), path=module.params["path"])
    except OSError as exc:
        module.fail_json(msg=f"cannot update {module.params['path']}: {exc}", path=module.params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
