#!/usr/bin/python
"""Ansible module: write a run's verdict (verdict.json), its report (report.md) and the A/B sheet."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flight_verdict
short_description: Write the verdict of a flight or benchmark run, its report and the A/B sheet
description:
  - Builds the verdict of one run on one host in the spirit of the seed's verdict JSON (shared/seed/) from
    what the playbooks recorded, and writes it to O(dest) as C(verdict.json), with C(report.md) (the verdict
    line, a table of the figures, the phases, per-utterance figures and a text histogram of the time to
    first audio) and, when the benchmark had a second TTS endpoint, C(ab.html) and C(ab.md).
  - "The verdict is V(go) when every phase of the run passed (a phase may be skipped, the A/B when no second
    endpoint is configured), V(no-go) when a phase failed or Gemma's post-flight gate failed (naming the first
    failed phase and its error), and V(deferred) when the run was clean but partial (a benchmark run leaves
    out deploy and rollback)."
  - O(provisional=true) writes a V(no-go) verdict that says the run did not finish; a flight writes it first
    so that a controller that dies or loses the host still leaves a verdict behind.
  - Figures come from the C(latency_stats) module_utils (the latency gate's statistics), the decision from
    the C(verdict) module_utils and the pages from C(verdict_pages). The format is described by
    C(schemas/verdict.schema.json).
  - The verdict's C(audio) section holds, per system and utterance, what the latency gate heard in each
    answer (speech ratio, leading and trailing silence, clipping, BS.1770 loudness, duration against the text,
    each check against its limit) and, when the A/B reference voice was fetched into O(dest) and resemblyzer
    is importable on the controller, each kept WAV's speaker similarity to it (C(speaker_similarity));
    otherwise it says why it was not measured.
  - C(ab.html) draws each kept WAV's waveform (inline SVG) and spectrogram (inline PNG) beside its player, and
    a chart of the time to first audio and the real-time factor per system and concurrency (C(audio_pictures)).
  - "Runs where the artifacts live, normally on the controller (C(delegate_to: localhost))."
author:
  - voxtral-deploy maintainers (!UNKNOWN)
options:
  dest:
    description: The run's artifacts folder (C(artifacts/<host>/<run-id>)); created when missing.
    type: path
    required: true
  kind:
    description: V(flight) (deploy, benchmark, A/B, rollback) or V(benchmark) (benchmark and A/B only).
    type: str
    choices: [flight, benchmark]
    default: flight
  host:
    description: Inventory name of the host the run was for.
    type: str
    required: true
  run_id:
    description: The run's id (C(preflight_run_id)).
    type: str
    required: true
  phases:
    description:
      - "What the playbook recorded per phase: C({deploy: {status, error, started_at, finished_at}, benchmark: ...,
        ab: ..., rollback: ...}). Status is one of V(passed), V(failed), V(skipped), V(not_run); a phase left out
        is V(not_run). Without an C(ab) entry, the A/B phase is derived from O(benchmark)."
    type: dict
    default: {}
  state_before:
    description: The host's flight state (state.json) read when the run started.
    type: dict
    default: {}
  state_after:
    description: The host's flight state read when the run ended (default O(state_before)).
    type: dict
  gemma_mode:
    description: C(voxtral_gemma_mode) of the run (V(pause) or V(coexist)).
    type: str
  gemma_written:
    description:
      - The gemma section's timestamps this run wrote, as the gemma role registered them (C(gemma_run_stamps)
        with C(baseline_at), C(paused_at), C(restored_at), C(post_flight_at)). What the run did is read from it;
        without it, a timestamp that differs between O(state_before) and O(state_after) counts as this run's.
    type: dict
  release:
    description: The vllm-omni release (release.json) this run built and configured; null when the build did not finish.
    type: raw
  requested_build:
    description: What was asked for (version, profile), shown when nothing was built.
    type: dict
    default: {}
  benchmark:
    description: The C(tts_benchmark) role's result (C(tts_benchmark_result)), or null when it did not run.
    type: raw
  provisional:
    description: Write the "run did not finish" verdict (replaced by the final one).
    type: bool
    default: false
notes:
  - Check mode builds the verdict and returns it, and writes nothing.
  - The task reports C(changed) when a file's content changed (the timestamp changes every run).
"""

EXAMPLES = r"""
- name: Write the verdict on the controller
  flight_verdict:
    dest: "{{ voxtral_artifacts_dir }}/{{ inventory_hostname }}/{{ preflight_run_id }}"
    kind: flight
    host: "{{ inventory_hostname }}"
    run_id: "{{ preflight_run_id }}"
    phases: "{{ __flight_phases }}"
    state_before: "{{ __flight_state_before.state_data }}"
    state_after: "{{ __flight_state_after.state_data }}"
    gemma_mode: "{{ voxtral_gemma_mode }}"
    release: "{{ voxtral_service_release | default(none) }}"
    benchmark: "{{ tts_benchmark_result | default(none) }}"
  delegate_to: localhost
  become: false
"""

RETURN = r"""
verdict:
  description: The verdict as written to verdict.json.
  returned: always
  type: dict
verdict_line:
  description: "One line for people, for example C(NO-GO: phase deploy failed: ...)."
  returned: always
  type: str
files:
  description: Paths of the files written (or that would be, in check mode).
  returned: always
  type: dict
  sample: {verdict: artifacts/titan/20261125T180757Z-787d6add/verdict.json}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.voxtral.deploy.plugins.module_utils.atomic_file import write_if_changed
from ansible_collections.voxtral.deploy.plugins.module_utils.audio_metrics import samples_from_wav
from ansible_collections.voxtral.deploy.plugins.module_utils.speaker_similarity import measure as similarity_of
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import utc_iso
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict import build_verdict
from ansible_collections.voxtral.deploy.plugins.module_utils.verdict_pages import (
    render_ab_html,
    render_ab_markdown,
    render_report,
    verdict_line,
)

FILE_NAMES = {
    "verdict": "verdict.json",
    "report": "report.md",
    "ab_html": "ab.html",
    "ab_md": "ab.md",
}


def _wav_paths(benchmark: dict) -> dict:
    """{system label: {utterance id: artifact path}} of the WAVs the benchmark kept."""
    ab = benchmark.get("ab") or {}
    paths = {(benchmark.get("endpoint") or {}).get("label") or "voxtral": dict(benchmark.get("wavs") or {})}
    if ab:
        paths[ab.get("label") or "other"] = dict(ab.get("wavs") or {})
    return paths


def _reference_wav(benchmark: dict) -> str | None:
    return ((benchmark.get("ab") or {}).get("reference") or {}).get("wav")


def read_wavs(dest: str, relative_paths) -> dict:
    """{artifact path: (samples, rate)}, or why a WAV could not be read (a missing one is left out)."""
    audio = {}
    for relative in relative_paths:
        path = os.path.join(dest, relative)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as wav:
                audio[relative] = samples_from_wav(wav.read())
        except (OSError, ValueError) as exc:
            audio[relative] = f"{relative} could not be read ({exc})"
    return audio


class FlightVerdict:
    def __init__(self, module: AnsibleModule):
        self.module = module
        self.params = module.params

    def _dict_or_none(self, name: str):
        value = self.params[name]
        if value in (None, "", {}):
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                self.module.fail_json(msg=f"{name} must be a mapping or null, got a string that is not JSON")
        if not isinstance(value, dict):
            self.module.fail_json(msg=f"{name} must be a mapping or null, got {type(value).__name__}")
        return value

    def similarity(self, benchmark: dict) -> dict | None:
        """Each kept WAV's voice against the A/B reference voice (the optional speaker_similarity extra)."""
        if not benchmark.get("ab"):
            return None
        dest = self.params["dest"]
        reference = _reference_wav(benchmark)
        outputs = {
            label: {
                uid: os.path.join(dest, path) for uid, path in files.items() if os.path.isfile(os.path.join(dest, path))
            }
            for label, files in _wav_paths(benchmark).items()
        }
        reference_path = os.path.join(dest, reference) if reference else None
        if reference_path and not os.path.isfile(reference_path):
            reference_path = None
        missing = None
        if ((benchmark["ab"].get("reference") or {}).get("path")) and not reference_path:
            missing = "not measured (the reference voice was not fetched into the run's artifacts)"
        if missing:
            return similarity_of(None, outputs, reference, missing)
        return similarity_of(reference_path, outputs, reference)

    def run(self) -> dict:
        p = self.params
        benchmark = self._dict_or_none("benchmark")
        release = self._dict_or_none("release")
        with_ab = bool(benchmark and benchmark.get("ab")) and not p["provisional"]
        names = {key: name for key, name in FILE_NAMES.items() if with_ab or not key.startswith("ab_")}
        relative = dict(names)
        similarity = None
        if benchmark and not p["provisional"]:
            relative["benchmark"] = "benchmark.json"
            relative["wavs"] = sorted(
                list((benchmark.get("wavs") or {}).values())
                + list(((benchmark.get("ab") or {}).get("wavs") or {}).values())
                + ([_reference_wav(benchmark)] if _reference_wav(benchmark) else [])
            )
            similarity = self.similarity(benchmark)
        try:
            verdict = build_verdict(
                kind=p["kind"],
                host=p["host"],
                run_id=p["run_id"],
                timestamp=utc_iso(),
                phases=p["phases"],
                state_before=p["state_before"],
                state_after=p["state_after"],
                gemma_mode=p["gemma_mode"],
                release=release,
                requested_build=p["requested_build"],
                benchmark=None if p["provisional"] else benchmark,
                provisional=p["provisional"],
                files=relative,
                gemma_written=p["gemma_written"],
                speaker_similarity=similarity,
            )
        except ValueError as exc:
            self.module.fail_json(msg=f"cannot build the verdict: {exc}")
        texts = {
            "verdict": json.dumps(verdict, indent=2, sort_keys=False, ensure_ascii=False) + "\n",
            "report": render_report(verdict, None if p["provisional"] else benchmark),
        }
        if with_ab:
            texts["ab_html"] = render_ab_html(verdict, benchmark, read_wavs(p["dest"], relative["wavs"]))
            texts["ab_md"] = render_ab_markdown(verdict, benchmark)
        dest = p["dest"]
        files = {key: os.path.join(dest, names[key]) for key in texts}
        changed = False
        if not self.module.check_mode:
            try:
                os.makedirs(dest, exist_ok=True)
                for key, text in texts.items():
                    changed = write_if_changed(files[key], text.encode("utf-8"), 0o644) or changed
            except OSError as exc:
                self.module.fail_json(msg=f"cannot write the verdict into {dest}: {exc}", verdict=verdict)
        return {"changed": changed, "verdict": verdict, "verdict_line": verdict_line(verdict), "files": files}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "kind": {"type": "str", "choices": ["flight", "benchmark"], "default": "flight"},
            "host": {"type": "str", "required": True},
            "run_id": {"type": "str", "required": True},
            "phases": {"type": "dict", "default": {}},
            "state_before": {"type": "dict", "default": {}},
            "state_after": {"type": "dict"},
            "gemma_mode": {"type": "str"},
            "gemma_written": {"type": "dict"},
            "release": {"type": "raw"},
            "requested_build": {"type": "dict", "default": {}},
            "benchmark": {"type": "raw"},
            "provisional": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    module.exit_json(**FlightVerdict(module).run())


if __name__ == "__main__":
    main()
