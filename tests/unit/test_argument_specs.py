"""Every role's meta/argument_specs.yml stays in step with its defaults/main.yml (node_exporter style)."""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir())


def load(path):
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def documented_options(role_dir):
    specs = load(role_dir / "meta" / "argument_specs.yml").get("argument_specs", {})
    options = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return specs, options


def is_template(value):
    return isinstance(value, str) and "{{" in value


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=[p.name for p in ROLE_DIRS])
def test_role_has_argument_specs_for_every_entry_point(role_dir):
    specs, _ = documented_options(role_dir)
    assert specs, f"{role_dir.name}: meta/argument_specs.yml is missing or empty"
    entry_points = {p.stem for p in (role_dir / "tasks").glob("*.yml")}
    assert set(specs) <= entry_points, f"{role_dir.name}: specs for missing task files {set(specs) - entry_points}"
    assert "main" in specs or len(specs) > 0


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=[p.name for p in ROLE_DIRS])
def test_every_default_is_documented_with_the_same_value(role_dir):
    defaults = load(role_dir / "defaults" / "main.yml")
    _, options = documented_options(role_dir)
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"{role_dir.name}: defaults without argument spec: {undocumented}"
    for name, value in defaults.items():
        spec = options[name]
        if is_template(value) or "default" not in spec:
            continue
        documented = spec["default"]
        if spec.get("type") == "float" and value is not None:
            value, documented = float(value), float(documented)
        assert documented == value, f"{role_dir.name}: {name} defaults to {value!r} but its spec says {documented!r}"


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=[p.name for p in ROLE_DIRS])
def test_public_variables_carry_the_role_prefix(role_dir):
    defaults = load(role_dir / "defaults" / "main.yml")
    _, options = documented_options(role_dir)
    prefix = role_dir.name + "_"
    foreign = sorted(n for n in set(defaults) | set(options) if not n.startswith(prefix))
    assert not foreign, f"{role_dir.name}: variables without the {prefix} prefix: {foreign}"
