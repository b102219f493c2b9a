"""Every variable a role reads is documented: an argument-spec option of the role whose prefix it carries, or a
fact that role publishes itself (set_fact / register). Scans each role's tasks, templates, handlers and vars for
names with a role prefix, so a flight cannot read a setting that nothing validates before the lock.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir())
SCANNED = ("tasks/*.yml", "handlers/*.yml", "vars/*.yml", "templates/*")


def prefix_of(role_dir):
    return role_dir.name + "_"


# Longest prefix first: voxtral_service_x belongs to voxtral_service, voxtral_x to the flight role voxtral.
PREFIXES = sorted(((prefix_of(d), d.name) for d in ROLE_DIRS), key=lambda item: -len(item[0]))


def owner_of(name):
    return next((role for prefix, role in PREFIXES if name.startswith(prefix)), None)


def load(path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def spec_options(role_dir):
    path = role_dir / "meta" / "argument_specs.yml"
    options = set()
    if path.exists():
        for entry in (load(path) or {}).get("argument_specs", {}).values():
            options |= set(entry.get("options") or {})
    return options


def published(role_dir):
    """Names the role sets itself: set_fact keys, registered results, loop variables, task and block vars."""
    names = set()

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("ansible.builtin.set_fact", "set_fact") and isinstance(value, dict):
                    names.update(value)
                elif key in ("register", "loop_var") and isinstance(value, str):
                    names.add(value)
                elif key == "vars" and isinstance(value, dict):
                    names.update(value)
                walk(value)

    for path in sorted((role_dir / "tasks").glob("*.yml")) + sorted((role_dir / "handlers").glob("*.yml")):
        walk(load(path))
    return names


# Keys whose string values are bare Jinja expressions (no braces).
BARE_EXPRESSIONS = {"when", "that", "until", "failed_when", "changed_when"}
JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# A name after a dot is an attribute, after | a filter, after `is` a test; before ( a call.
NAME = re.compile(r"(?<![A-Za-z0-9_.])(?<!\|)(?<!\|\s)(?<!is\s)(?<!not\s)([a-z][a-z0-9_]*)(?!\s*\()")


def expressions(text, bare=False):
    """The Jinja expressions in a string (the whole string for when:, that:, ...), string literals removed."""
    parts = [text] if bare else [a or b for a, b in JINJA.findall(text)]
    return [STRINGS.sub("''", part) for part in parts]


def yaml_expressions(node, bare=False):
    if isinstance(node, list):
        for item in node:
            yield from yaml_expressions(item, bare)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from yaml_expressions(value, key in BARE_EXPRESSIONS)
    elif isinstance(node, str):
        yield from expressions(node, bare)


def read_names(role_dir):
    """{name: first file} of every variable with a role's prefix in the role's Jinja expressions."""
    found = {}
    for glob in SCANNED:
        for path in sorted(role_dir.glob(glob)):
            text = path.read_text(encoding="utf-8", errors="replace")
            parts = yaml_expressions(yaml.safe_load(text)) if path.suffix == ".yml" else expressions(text)
            for part in parts:
                for name in NAME.findall(part):
                    if owner_of(name):
                        found.setdefault(name, path.relative_to(ROOT))
    return found


KNOWN = {d.name: spec_options(d) | published(d) for d in ROLE_DIRS}


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=[p.name for p in ROLE_DIRS])
def test_every_variable_a_role_reads_has_an_argument_spec(role_dir):
    missing = []
    own_spec = spec_options(role_dir) | published(role_dir)
    for name, path in read_names(role_dir).items():
        owner = owner_of(name)
        if owner == role_dir.name:
            if name not in own_spec:
                missing.append(f"{name} ({path})")
        elif name not in KNOWN[owner]:
            missing.append(f"{name} ({path}; {owner} neither documents nor publishes it)")
    assert not missing, f"{role_dir.name} reads variables without an argument spec: {sorted(missing)}"


def test_the_scan_sees_the_flight_settings():
    """The scan is not vacuous: the flight's gate settings are found where the flight reads them."""
    names = read_names(ROLES / "voxtral")
    assert {"voxtral_gate_requests", "voxtral_gemma_mode", "voxtral_state_path"} <= set(names)
    assert "voxtral_gate_requests" in spec_options(ROLES / "voxtral")


@pytest.mark.parametrize("role_dir", ROLE_DIRS, ids=[p.name for p in ROLE_DIRS])
def test_a_role_documents_only_variables_of_its_own_prefix(role_dir):
    """voxtral_* belongs to the flight role voxtral, except what a longer prefix (voxtral_service_) claims."""
    foreign = sorted(name for name in spec_options(role_dir) if owner_of(name) != role_dir.name)
    assert not foreign, f"{role_dir.name} documents variables another role's prefix claims: {foreign}"
