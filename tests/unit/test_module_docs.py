"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse as YAML, and its documented options are its
ARGUMENT_SPEC (where the module keeps the spec at module level), as `ansible-doc` and the docs site read them."""

import importlib
from pathlib import Path

import pytest
import yaml

MODULES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py"))


def spec_of(doc_options: dict) -> dict:
    """DOCUMENTATION's options in argument_spec's shape (type, elements, required, default, choices, suboptions)."""
    spec = {}
    for name, option in doc_options.items():
        entry = {k: option[k] for k in ("type", "elements", "required", "default", "choices") if k in option}
        if "suboptions" in option:
            entry["options"] = spec_of(option["suboptions"])
        spec[name] = entry
    return spec


def documented_part(spec: dict) -> dict:
    """An argument_spec without what DOCUMENTATION does not say (no_log)."""
    return {
        name: {k: (documented_part(v) if k == "options" else v) for k, v in option.items() if k != "no_log"}
        for name, option in spec.items()
    }


@pytest.mark.parametrize("name", MODULES)
def test_documentation_parses_and_matches_the_spec(name):
    module = importlib.import_module(f"ansible_collections.voxtral.deploy.plugins.modules.{name}")
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert documentation["module"] == name
    # A bullet with ": " in it parses as a mapping unless quoted; ansible-doc then fails on the whole collection.
    descriptions = [documentation["description"]] + [
        o["description"] for o in documentation.get("options", {}).values()
    ]
    for description in descriptions:
        lines = description if isinstance(description, list) else [description]
        assert all(isinstance(line, str) for line in lines), lines
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)
    if hasattr(module, "ARGUMENT_SPEC"):
        assert spec_of(documentation.get("options", {})) == documented_part(module.ARGUMENT_SPEC)
