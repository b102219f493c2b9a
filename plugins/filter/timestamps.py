"""Filters that write and read the project's timestamps in the roles, in the one format the modules use.

The format is ``ISO`` of plugins/module_utils/state_file.py (UTC to the second, ``2026-04-14T17:30:00Z``):
the state file, the flight lock and the verdict write it from Python, the roles through these filters.

- ``{{ now(utc=true) | voxtral.deploy.utc_iso }}``: a datetime (a naive one is UTC) as a timestamp.
- ``{{ record.paused_at | voxtral.deploy.from_utc_iso }}``: a timestamp as a naive UTC datetime, to subtract
  from another one or from ``now(utc=true)``.
- ``{{ 'iso' | voxtral.deploy.time_format }}``: the strftime format itself, for a task that still formats or
  parses with Ansible's own ``strftime``/``to_datetime``.
- ``{{ '1h 30min' | voxtral.deploy.timespan_seconds }}``: a systemd time span (the settings handed to systemd)
  in seconds; ``timespan_seconds(default=none)`` gives ``default`` for text that is not one (a preflight's test).
"""

from __future__ import annotations

import datetime
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import ISO, utc_iso

TIME_FORMATS = {"iso": ISO}

# systemd time span units in seconds (systemd.time(7), "PARSING TIME SPANS"; a month is 30.44 days, a year
# 365.25 days); a number without a unit is seconds, components add up ("1h 30min", "1h30min").
TIMESPAN_UNITS = {
    **dict.fromkeys(("usec", "us", "μs"), 1e-6),
    **dict.fromkeys(("msec", "ms"), 1e-3),
    **dict.fromkeys(("seconds", "second", "sec", "s", ""), 1.0),
    **dict.fromkeys(("minutes", "minute", "min", "m"), 60.0),
    **dict.fromkeys(("hours", "hour", "hr", "h"), 3600.0),
    **dict.fromkeys(("days", "day", "d"), 86400.0),
    **dict.fromkeys(("weeks", "week", "w"), 604800.0),
    **dict.fromkeys(("months", "month", "M"), 2629800.0),
    **dict.fromkeys(("years", "year", "y"), 31557600.0),
}
_TIMESPAN_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Zμ]*)")
_NO_DEFAULT = object()


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


def timespan_seconds(text, default=_NO_DEFAULT):
    """A systemd time span (``20min``, ``1h 30min``, ``90``) in seconds; ``default`` (when given) for anything else."""
    value, position, source = 0.0, 0, str(text) if isinstance(text, (str, int, float)) else ""
    while source.strip() and position < len(source.rstrip()):
        part = _TIMESPAN_PART.match(source, position)
        if part is None or part.group(2) not in TIMESPAN_UNITS:
            value = None
            break
        value += float(part.group(1)) * TIMESPAN_UNITS[part.group(2)]
        position = part.end()
    if value is None or not source.strip() or isinstance(text, bool):
        if default is not _NO_DEFAULT:
            return default
        raise AnsibleFilterError(f"timespan_seconds: {text!r} is not a systemd time span such as 20min or 1h 30min")
    return value


class FilterModule:
    def filters(self):
        return {
            "utc_iso": utc_iso_filter,
            "from_utc_iso": from_utc_iso,
            "time_format": time_format,
            "timespan_seconds": timespan_seconds,
        }
