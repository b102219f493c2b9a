"""What a Spark says about itself, read without changing anything: a JSON file (the flight state, the flight
lock, a release's release.json), systemd units' properties, and where a release link points.

Pure standard library; runs on the host inside the voxtral_status module.
"""

import json
import os

# The properties `systemctl show` gives for each unit (one block per unit, blank-line separated).
UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "ActiveEnterTimestamp",
    "ActiveEnterTimestampMonotonic",
    "NextElapseUSecRealtime",  # timers: when the dead-man's switch fires
)


def read_json(path):
    """(data, problem): the file's JSON object, or None and why not ("missing" when there is no file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


def parse_systemctl_show(text):
    """{unit id: {property: value}} from `systemctl show --property=... UNIT...` output."""
    units = {}
    for block in text.strip().split("\n\n"):
        properties = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if properties.get("Id"):
            units[properties["Id"]] = properties
    return units


def release_at(link):
    """Where the release link points and that release's release.json (None where there is none)."""
    if not os.path.lexists(link):
        return {"link": link, "path": None, "name": None, "manifest": None, "problem": "missing"}
    target = os.path.realpath(link)
    manifest, problem = read_json(os.path.join(target, "release.json"))
    return {"link": link, "path": target, "name": os.path.basename(target), "manifest": manifest, "problem": problem}
