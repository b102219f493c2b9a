#!/usr/bin/python
"""Ansible module: read free disk and available memory the way a GB10 needs them read."""

DOCUMENTATION = r"""
---
module: host_resources
short_description: Report free disk for a path and available memory from /proc/meminfo
description:
  - Reads only; never changes the host, so it runs in check mode too.
  - Free disk is that of the file system holding O(path), found from the nearest existing ancestor
    (the path itself need not exist yet). Container root file systems that are missing from
    C(ansible_mounts) are measured all the same.
  - Memory comes from C(/proc/meminfo) C(MemAvailable). On a DGX Spark (GB10, unified memory)
    C(nvidia-smi) reports memory as N/A, so this is the figure that says whether a model fits.
options:
  path:
    description: A path on the file system to measure (need not exist).
    type: path
    default: /
  meminfo:
    description: The meminfo file to read.
    type: path
    default: /proc/meminfo
  heartbeat:
    description:
      - The flight's heartbeat, refreshed by every call while a flight guard is armed (a wait that polls this
        module is the controller alive); never created here (module_utils/flight_heartbeat.py).
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Measure the host
  host_resources:
    path: /opt/vllm-omni
  register: resources

- name: Refuse with numbers
  ansible.builtin.assert:
    that: resources.memory.available_gib >= 20
    fail_msg: "{{ resources.memory.available_gib }} GiB available, need 20"
"""

RETURN = r"""
disk:
  description: The file system holding I(path).
  type: dict
  returned: always
  sample: {"path": "/opt/vllm-omni", "measured_at": "/opt", "free_bytes": 64424509440,
           "free_gib": 60.0, "total_bytes": 107374182400, "total_gib": 100.0}
memory:
  description: Figures from I(meminfo), in bytes and GiB.
  type: dict
  returned: always
  sample: {"available_bytes": 118111600640, "available_gib": 110.0, "total_bytes": 130674521088,
           "total_gib": 121.7}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat

GIB = 1024**3


def disk_usage(path):
    """Free and total bytes of the file system holding path (nearest existing ancestor)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    stats = os.statvfs(probe)
    free = stats.f_bavail * stats.f_frsize
    total = stats.f_blocks * stats.f_frsize
    return {
        "path": path,
        "measured_at": probe,
        "free_bytes": free,
        "free_gib": round(free / GIB, 2),
        "total_bytes": total,
        "total_gib": round(total / GIB, 2),
    }


def read_meminfo(meminfo_path):
    """MemAvailable and MemTotal in bytes (meminfo states kB)."""
    values = {}
    with open(meminfo_path, encoding="ascii") as handle:
        for line in handle:
            key, _colon, rest = line.partition(":")
            fields = rest.split()
            if fields:
                values[key] = int(fields[0]) * 1024
    if "MemAvailable" not in values:
        raise ValueError(f"{meminfo_path} has no MemAvailable line (kernel older than 3.14?)")
    return {
        "available_bytes": values["MemAvailable"],
        "available_gib": round(values["MemAvailable"] / GIB, 2),
        "total_bytes": values.get("MemTotal", 0),
        "total_gib": round(values.get("MemTotal", 0) / GIB, 2),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/"},
            "meminfo": {"type": "path", "default": "/proc/meminfo"},
            "heartbeat": {"type": "path", "default": flight_heartbeat.PATH},
        },
        supports_check_mode=True,
    )
    flight_heartbeat.beat(module.params["heartbeat"])
    try:
        disk = disk_usage(module.params["path"])
        memory = read_meminfo(module.params["meminfo"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, disk=disk, memory=memory)


if __name__ == "__main__":
    main()
