"""status-voxtral.yml on a fleet of two simulated Sparks in different states: one fresh (nothing deployed),
one deployed (Voxtral serving); read-only (the hosts' files and units unchanged), as text and as JSON."""

from __future__ import annotations

import json
import re

import pytest
from playbook_runner import run_on_fleet
from sim_spark import prepared_sparks, ssh

# What a status must not change: the units' start times and the flight's files.
FINGERPRINT = (
    "systemctl show -p ActiveEnterTimestampMonotonic gemma.service voxtral-tts.service; "
    "md5sum /var/lib/voxtral-deploy/* 2>/dev/null; ls -l --time-style=+%s /var/lib/voxtral-deploy 2>/dev/null"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("status")
    with prepared_sparks({"fresh": "voxtral-status-fresh", "deployed": "voxtral-status-deployed"}, workdir) as hosts:
        deployed = run_on_fleet(hosts, "deploy-voxtral.yml", workdir, {"voxtral_hosts": "deployed"})
        assert deployed.status == "successful", deployed.stdout[-4000:]
        yield hosts, workdir


def status_messages(run) -> dict:
    """{host: the 'Say the status' task's message}."""
    messages = {}
    for event in run.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task") == "Say the status":
            messages[data["host"]] = data["res"]["msg"]
    return messages


def test_status_text_names_each_hosts_state(fleet):
    hosts, workdir = fleet
    before = {name: ssh(hostvars, FINGERPRINT).stdout for name, hostvars in hosts.items()}
    run = run_on_fleet(hosts, "status-voxtral.yml", workdir)
    assert run.status == "successful", run.stdout[-4000:]
    messages = status_messages(run)
    assert set(messages) == {"fresh", "deployed"}

    fresh = messages["fresh"]
    assert "release  none at /opt/vllm-omni/current" in fresh
    assert "voxtral  not installed" in fresh
    assert re.search(r"gemma    active \(running\)", fresh)
    assert "guard    not armed" in fresh
    assert "lock     free" in fresh
    assert "None" not in fresh

    deployed = messages["deployed"]
    assert re.search(r"release  0\.30\.0-[0-9a-f]+-[0-9a-f]+ \(vllm-omni 0\.30\.0", deployed), deployed
    assert re.search(r"voxtral  active \(running\), enabled, since ", deployed), deployed
    assert re.search(r"last flight \S+: deployed", deployed), deployed
    assert "lock     free" in deployed
    assert "None" not in deployed
    # Read-only: nothing on either host changed (units not restarted, no file written).
    assert {name: ssh(hostvars, FINGERPRINT).stdout for name, hostvars in hosts.items()} == before


def test_status_as_json_for_scripts(fleet):
    hosts, workdir = fleet
    run = run_on_fleet(hosts, "status-voxtral.yml", workdir, {"voxtral_status_format": "json"})
    assert run.status == "successful", run.stdout[-4000:]
    statuses = {host: json.loads(message) for host, message in status_messages(run).items()}
    assert statuses["fresh"]["release"]["name"] is None
    assert statuses["fresh"]["voxtral"]["record"] == {}
    assert statuses["deployed"]["release"]["manifest"]["vllm_omni_version"] == "0.30.0"
    assert statuses["deployed"]["voxtral"]["record"]["deployed"] is True
    assert statuses["deployed"]["voxtral"]["unit"]["ActiveState"] == "active"
    assert statuses["deployed"]["lock"]["held"] is False
