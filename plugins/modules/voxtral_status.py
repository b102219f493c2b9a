#!/usr/bin/python
"""Read what a Spark's flight left behind: the state file, the lock, the units and the serving release."""

DOCUMENTATION = r"""
---
module: voxtral_status
short_description: Read a Spark's flight state, flight lock, units and serving release
description:
  - Reads, and never changes, what an operator asks a Spark before touching it (which release serves, is
    Gemma paused, is the dead-man's switch armed, who holds the flight lock, what the last flight did).
  - Each source is reported even when another is missing or unreadable; a missing file is not an error.
version_added: "1.0.0"
author:
  - voxtral-deploy maintainers (!UNKNOWN)
options:
  state_path:
    description: The flight state file (JSON) the flight roles share.
    type: path
    required: true
  lock_path:
    description: The flight lock file (JSON) of the preflight role.
    type: path
    required: true
  units:
    description: systemd units whose state to report (C(systemctl show)).
    type: list
    elements: str
    default: []
  release_link:
    description: The link to the serving vllm-omni release (its C(release.json) is read).
    type: path
    required: true
  heartbeat:
    description:
      - The flight's heartbeat (module_utils/flight_heartbeat.py), whose age is reported; only looked at, never
        refreshed (a status read from another terminal must not keep a dead controller's flight alive).
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
attributes:
  check_mode:
    description: Reads only, so a check-mode run reports the same.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Read the Spark's flight status
  voxtral.deploy.voxtral_status:
    state_path: /var/lib/voxtral-deploy/state.json
    lock_path: /var/lib/voxtral-deploy/flight.lock
    units: [voxtral-tts.service, gemma.service, voxtral-flight-guard.timer]
    release_link: /opt/vllm-omni/current
  register: status
"""

RETURN = r"""
state:
  description: The flight state file's content (an empty object when there is none).
  returned: always
  type: dict
state_problem:
  description: Why the state file was not read (C(missing), C(unreadable ...)), or null.
  returned: always
  type: str
lock:
  description: The flight lock's record (owner, purpose, run_id, taken_at) with C(held); C(held=false) when free.
  returned: always
  type: dict
units:
  description: Per unit, its systemd properties (LoadState, ActiveState, SubState, UnitFileState, ...).
  returned: always
  type: dict
release:
  description: The release link, the release it points to, its name and its release.json (C(manifest)).
  returned: always
  type: dict
heartbeat_age_s:
  description: Seconds since the flight's controller last acted on the host, or null when no guard watches one.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat
from ansible_collections.voxtral.deploy.plugins.module_utils.host_status import (
    UNIT_PROPERTIES,
    parse_systemctl_show,
    read_json,
    release_at,
)

ARGUMENT_SPEC = {
    "state_path": {"type": "path", "required": True},
    "lock_path": {"type": "path", "required": True},
    "units": {"type": "list", "elements": "str", "default": []},
    "release_link": {"type": "path", "required": True},
    "heartbeat": {"type": "path", "default": flight_heartbeat.PATH},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    state, state_problem = read_json(params["state_path"])
    lock, lock_problem = read_json(params["lock_path"])
    units = {}
    if params["units"]:
        command = ["systemctl", "show", f"--property={','.join(UNIT_PROPERTIES)}", *params["units"]]
        rc, out, err = module.run_command(command)
        if rc != 0:
            module.fail_json(msg=f"systemctl show failed (rc {rc}): {err.strip()}")
        units = parse_systemctl_show(out)
    heartbeat_age = flight_heartbeat.age(params["heartbeat"])
    module.exit_json(
        changed=False,
        state=state or {},
        state_problem=state_problem,
        lock={**(lock or {}), "held": lock is not None, "problem": None if lock_problem == "missing" else lock_problem},
        units=units,
        release=release_at(params["release_link"]),
        heartbeat_age_s=None if heartbeat_age is None else round(heartbeat_age, 1),
    )


if __name__ == "__main__":
    main()
