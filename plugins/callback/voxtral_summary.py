"""Print the flight summary at the end of every flight playbook, from what each run handed over (set_stats)."""

DOCUMENTATION = r"""
---
name: voxtral_summary
type: aggregate
short_description: A per-host summary at the end of a deploy, rollback, benchmark or flight
description:
  - The voxtral role's runs end (roles/voxtral/tasks/finish.yml) by handing their figures over with
    C(ansible.builtin.set_stats) under C(voxtral_summary) (one entry per host). At the end of the playbook
    this callback prints, per host, the outcome, Gemma's outage, the gates' figures against their limits,
    and where the run's artifacts (state, verdict, report) are. Figures a run does not have are left out.
requirements:
  - enabled in ansible.cfg (callbacks_enabled)
"""

import os

from ansible.plugins.callback import CallbackBase


def _number(value, unit="", digits=3):
    """A figure with `digits` significant digits (194.879 → 195, 0.9848 → 0.985), or as it came."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value}{unit}"
    return f"{float(f'{value:.{digits}g}'):g}{unit}"


def summary_lines(host, run):
    """The lines for one host's run; only what the run has (no 'None')."""
    voxtral, gemma, limits = run.get("voxtral") or {}, run.get("gemma") or {}, run.get("limits") or {}
    error = voxtral.get("error") if voxtral.get("failed") else None
    error = error or run.get("error")
    if run.get("check_mode"):
        outcome = "dry run (check mode), nothing changed" + ("; the real run would FAIL" if error else "")
    elif voxtral.get("failed"):
        outcome = "FAILED and rolled back, Gemma serving again" if not gemma.get("paused") else "FAILED"
    elif run.get("run") == "rollback-voxtral":
        outcome = "rolled back: Voxtral stopped, Gemma serving" if not gemma.get("paused") else "Gemma still paused"
    elif voxtral.get("deployed"):
        outcome = "Voxtral serving" + (", Gemma paused" if gemma.get("paused") else ", Gemma serving beside it")
    elif error:
        outcome = "FAILED"
    else:
        outcome = "done"
    release = (voxtral.get("release") or {}).get("release")
    head = f"{host}  {run.get('run', 'run')} {run.get('run_id', '')}: {outcome}"
    lines = [head + (f" (release {release})" if release and voxtral.get("deployed") else "")]
    if error:
        lines.append(f"  error     {str(error)[:300]}")
    figures = []
    if voxtral.get("mode") == "coexist" and not voxtral.get("failed"):
        figures.append("never stopped (coexist)")
    elif gemma.get("outage_seconds") is not None:
        figures.append(f"outage {_number(gemma['outage_seconds'], ' s')}")
    if gemma.get("baseline_p50_ms") is not None:
        figures.append(f"baseline p50 {_number(gemma['baseline_p50_ms'], ' ms')}")
    if run.get("run") == "rollback-voxtral" and gemma.get("post_flight_p50_ms") is not None:
        gate = f"post-flight p50 {_number(gemma['post_flight_p50_ms'], ' ms')}"
        if gemma.get("drift_ratio") is not None:
            gate += f" = {_number(gemma['drift_ratio'], 'x')} baseline"
        if gemma.get("post_flight_max_ratio") is not None:
            gate += f" (limit {_number(gemma['post_flight_max_ratio'], 'x')})"
        if gemma.get("post_flight_gate_passed") is not None:
            gate += ": passed" if gemma["post_flight_gate_passed"] else ": FAILED"
        figures.append(gate)
    if figures:
        lines.append("  gemma     " + "; ".join(figures))
    gate = []
    if voxtral.get("deployed") and voxtral.get("ttfa_p50_ms") is not None:
        limit = limits.get("ttfa_p50_ms")
        gate.append(f"TTFA p50 {_number(voxtral['ttfa_p50_ms'], ' ms')}" + (f" (limit {limit} ms)" if limit else ""))
    if voxtral.get("deployed") and voxtral.get("rtf_p50") is not None:
        limit = limits.get("rtf_p50")
        gate.append(f"RTF p50 {_number(voxtral['rtf_p50'])}" + (f" (limit {limit})" if limit else ""))
    if gate:
        lines.append("  voxtral   " + ", ".join(gate))
    if run.get("artifacts"):
        lines.append(f"  artifacts {os.path.normpath(run['artifacts'])}/")
    return lines


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "voxtral_summary"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        runs = (stats.custom.get("_run") or {}).get("voxtral_summary") or {}
        if not runs:
            return
        self._display.banner("FLIGHT SUMMARY")
        for host in sorted(runs):
            for line in summary_lines(host, runs[host]):
                self._display.display(line)
