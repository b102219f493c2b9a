"""Filters that write and read the project's timestamps in the roles, in the one format the modules use.

The format is ``ISO`` of plugins/module_utils/state_file.py (UTC to the second, ``2026-04-14T17:30:00Z``):
the state file, the flight lock and the verdict write it from Python, the roles through these filters.

- ``{{ now(utc=true) | voxtral.deploy.utc_iso }}``: a datetime (a naive one is UTC) as a timestamp.
- ``{{ record.paused_at | voxtral.deploy.from_utc_iso }}``: a timestamp as a naive UTC datetime, to subtract
  from another one or from ``now(utc=true)``.
- ``{{ 'iso' | voxtral.deploy.time_format }}``: the strftime format itself, for a task that still formats or
  parses with Ansible's own ``strftime``/``to_datetime``.
"""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleFilterError
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import ISO, utc_iso

TIME_FORMATS = {"iso": ISO}


def utc_iso_filter(moment):
    """A datetime (naive ones are UTC, as ``now(utc=true)`` gives) or epoch seconds, as a timestamp."""
    try:
        return utc_iso(moment)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise AnsibleFilterError(f"utc_iso: {exc}") from None


def from_utc_iso(text):
    """A timestamp (``2026-04-14T17:30:00Z``) as a naive UTC datetime."""
    try:
        return datetime.datetime.strptime(str(text), ISO)
    except ValueError:
        raise AnsibleFilterError(f"from_utc_iso: {text!r} is not a timestamp like 2026-04-14T17:30:00Z") from None


def time_format(name):
    """The strftime format called ``name`` (``iso``)."""
    try:
        return TIME_FORMATS[name]
    except (KeyError, TypeError):
        raise AnsibleFilterError(
            f"time_format: unknown format {name!r}: expected one of {', '.join(sorted(TIME_FORMATS))}"
        ) from None


class FilterModule:
    def filters(self):
        return {
            "utc_iso": utc_iso_filter,
            "from_utc_iso": from_utc_iso,
            "time_format": time_format,
        }
