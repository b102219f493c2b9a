"""Filters that apply per-stage settings to a vllm-omni Voxtral stage config, in either of its shapes.

vllm-omni <= 0.18 reads a stage config (`--stage-configs-path`): `stage_args: [{stage_id, engine_args: {...}}]`.
From 0.20 it reads a deploy config (`--deploy-config`): `stages: [{stage_id, <engine settings>}]`
(UPSTREAM.md, "How the stage config flag changed"). The flag the release expects says which shape it is.
"""

from __future__ import annotations

import copy

from ansible.errors import AnsibleFilterError

SHAPES = {
    # flag: (top-level list key, key holding the engine settings inside a stage or None for the stage itself)
    "--stage-configs-path": ("stage_args", "engine_args"),
    "--deploy-config": ("stages", None),
}


def _shape(flag):
    try:
        return SHAPES[flag]
    except KeyError:
        raise AnsibleFilterError(
            f"unknown stage config flag {flag!r}: expected one of {', '.join(sorted(SHAPES))}"
        ) from None


def _stages(config, flag):
    list_key, settings_key = _shape(flag)
    if not isinstance(config, dict) or not isinstance(config.get(list_key), list):
        raise AnsibleFilterError(
            f"the stage config has no '{list_key}' list, which {flag} expects"
            f" (top-level keys: {', '.join(map(str, config)) if isinstance(config, dict) else type(config)})"
        )
    out = {}
    for stage in config[list_key]:
        if not isinstance(stage, dict) or "stage_id" not in stage:
            raise AnsibleFilterError(f"a '{list_key}' entry has no stage_id: {stage!r}")
        if settings_key is None:
            settings = stage
        else:
            settings = stage.setdefault(settings_key, {})
            if not isinstance(settings, dict):
                raise AnsibleFilterError(f"stage {stage['stage_id']}: '{settings_key}' is not a mapping")
        out[str(stage["stage_id"])] = settings
    return out


def voxtral_stage_config(config, flag, overrides=None):
    """Return a copy of `config` with per-stage `overrides` applied.

    `overrides` is {stage_id: {key: value}} or a list of such mappings, applied in order. Stage ids may be
    strings or integers; null values are skipped (they keep the file's value).
    """
    result = copy.deepcopy(config)
    stages = _stages(result, flag)
    layers = overrides if isinstance(overrides, list) else [overrides]
    for layer in layers:
        if not isinstance(layer, dict) and layer is not None:
            raise AnsibleFilterError(f"stage overrides must be a mapping of stage id to settings, not {layer!r}")
        for stage_id, values in (layer or {}).items():
            if not isinstance(values, dict) and values is not None:
                raise AnsibleFilterError(f"stage {stage_id}: overrides must be a mapping, not {values!r}")
            values = {k: v for k, v in (values or {}).items() if v is not None}
            if not values:
                continue
            if str(stage_id) not in stages:
                raise AnsibleFilterError(
                    f"stage {stage_id} is not in the stage config (stages: {', '.join(sorted(stages))})"
                )
            stages[str(stage_id)].update(values)
    return result


def voxtral_stage_values(config, flag, key):
    """{stage_id: value of `key`} for every stage (null where the stage does not set it)."""
    return {stage_id: settings.get(key) for stage_id, settings in _stages(copy.deepcopy(config), flag).items()}


class FilterModule:
    def filters(self):
        return {"voxtral_stage_config": voxtral_stage_config, "voxtral_stage_values": voxtral_stage_values}
