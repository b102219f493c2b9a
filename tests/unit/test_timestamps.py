"""The project's one timestamp format: state_file.ISO and utc_iso, and the voxtral.deploy timestamp filters.

The filters are rendered with Ansible's own templar, found the way a play finds them (the collection
voxtral.deploy), and the roles' own expressions are rendered from their files.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
from ansible_collections.voxtral.deploy.plugins.module_utils.state_file import ISO, utc_iso

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".cache" / "collections"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# The shell on the host stamps its log lines with date(1); everything else goes through ISO.
# Programs the hosts run that cannot import the collection.
SHELL_ON_THE_HOST = {
    Path("roles/vllm_omni_build/templates/build.sh.j2"),
    Path("roles/voxtral_service/files/hf_download.py"),
}


def _collection_modules():
    return {name: module for name, module in sys.modules.items() if name.split(".")[0] == "ansible_collections"}


@pytest.fixture(scope="module")
def render():
    """Render a template string as a play would: Ansible's templar, the collection's filters found by FQCN.

    Ansible's collection finder loads the collection itself (its metadata is what resolves voxtral.deploy.*),
    so the modules the other tests imported from the plain path are set aside meanwhile, then put back.
    """
    imported = _collection_modules()
    for name in imported:
        del sys.modules[name]
    _AnsibleCollectionFinder(paths=[str(COLLECTIONS)])._install()
    try:

        def _render(text, **variables):
            trusted = {key: trust_as_template(v) if isinstance(v, str) else v for key, v in variables.items()}
            return Templar(loader=DataLoader(), variables=trusted).template(trust_as_template(text))

        yield _render
    finally:
        _AnsibleCollectionFinder._remove()
        for name in _collection_modules():
            del sys.modules[name]
        sys.modules.update(imported)


def test_utc_iso_writes_every_kind_of_moment_in_utc():
    naive = datetime.datetime(2026, 4, 14, 17, 30, 0, 999999)
    assert utc_iso(naive) == "2026-04-14T17:30:00Z"  # naive is UTC, to the second
    paris = datetime.timezone(datetime.timedelta(hours=2))
    assert utc_iso(datetime.datetime(2026, 4, 14, 19, 30, tzinfo=paris)) == "2026-04-14T17:30:00Z"
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_iso(1776187800.7) == "2026-04-14T17:30:00Z"
    assert STAMP.match(utc_iso())
    for wrong in ("2026-04-14T17:30:00Z", True, [1]):
        with pytest.raises(TypeError):
            utc_iso(wrong)


def test_the_filters_write_and_read_the_same_timestamps(render):
    now = render("{{ now(utc=true) | voxtral.deploy.utc_iso }}")
    assert STAMP.match(now)
    assert render("{{ (stamp | voxtral.deploy.from_utc_iso | voxtral.deploy.utc_iso) == stamp }}", stamp=now) is True
    assert render("{{ 'iso' | voxtral.deploy.time_format }}") == ISO
    assert render("{{ now(utc=true).strftime('iso' | voxtral.deploy.time_format) }}")[:10] == now[:10]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{{ 'yesterday' | voxtral.deploy.utc_iso }}", "not str"),
        ("{{ '2026-04-14 17:30:00' | voxtral.deploy.from_utc_iso }}", "is not a timestamp like"),
        ("{{ 'rfc2822' | voxtral.deploy.time_format }}", "unknown format 'rfc2822': expected one of iso"),
    ],
)
def test_the_filters_refuse_what_is_not_a_timestamp(render, expression, message):
    with pytest.raises(AnsibleError, match=message):
        render(expression)


def test_gemmas_outage_is_the_difference_of_its_two_timestamps(render):
    tasks = yaml.safe_load((ROOT / "roles/gemma/tasks/restore.yml").read_text(encoding="utf-8"))
    [task] = [t for t in tasks if t.get("name") == "Record the outage"]
    expression = task["voxtral.deploy.flight_state"]["data"]["outage_seconds"]
    section = {"paused_at": "2026-04-14T23:55:00Z", "restored_at": "2026-04-15T00:05:30Z"}
    assert int(render(expression, __gemma_restored={"section_data": section})) == 630


def test_the_flight_roles_format_variable_is_the_modules_format(render):
    variables = yaml.safe_load((ROOT / "roles/voxtral/vars/main.yml").read_text(encoding="utf-8"))
    assert render(variables["__voxtral_flight_iso_format"]) == ISO


def test_the_timestamp_format_is_written_once():
    """Roles and plugins go through state_file.ISO (or the filters); no second copy of the format."""
    files = [p for p in [*ROOT.glob("roles/**/*"), *ROOT.glob("plugins/**/*.py")] if p.is_file() and not p.is_symlink()]
    copies = sorted(
        str(path.relative_to(ROOT))
        for path in files
        if path.relative_to(ROOT) not in SHELL_ON_THE_HOST and b"%Y-%m-%dT%H:%M:%SZ" in path.read_bytes()
    )
    assert copies == ["plugins/module_utils/state_file.py"]


# systemd time spans: the settings the flight guard hands to systemd-run, in seconds for its own program.
TIMESPANS = ["20min", "1h 30min", "1h30min", "90", "90s", " 3s ", "2.5min", "10ms", "1 h", "2d 3h", "1w", "1M", "1y"]
NOT_TIMESPANS = ["soon", "", "5 x", "1h soon", "min", "-5s"]


@pytest.mark.parametrize("span", TIMESPANS)
def test_timespan_seconds_agrees_with_systemd_analyze(render, span):
    seconds = render("{{ span | voxtral.deploy.timespan_seconds }}", span=span)
    analyze = subprocess.run(["systemd-analyze", "timespan", span], capture_output=True, text=True, check=False)
    if analyze.returncode == 127 or "μs:" not in analyze.stdout:
        pytest.skip(f"systemd-analyze gave no μs line: {analyze.stdout}{analyze.stderr}")
    [micros] = re.findall(r"μs: (\d+)", analyze.stdout)
    assert seconds == pytest.approx(int(micros) / 1e6)


@pytest.mark.parametrize("span", NOT_TIMESPANS)
def test_timespan_seconds_refuses_what_systemd_refuses(render, span):
    analyze = subprocess.run(["systemd-analyze", "timespan", span], capture_output=True, text=True, check=False)
    assert analyze.returncode != 0 or not shutil.which("systemd-analyze")
    with pytest.raises(AnsibleError, match="is not a systemd time span such as 20min"):
        render("{{ span | voxtral.deploy.timespan_seconds }}", span=span)
    assert render("{{ span | voxtral.deploy.timespan_seconds(default=0) }}", span=span) == 0
