"""status-voxtral.yml and deploy-voxtral.yml --check --diff on a fleet of two simulated Sparks in different
states: one fresh (nothing deployed), one deployed (Voxtral serving). Both are read-only (the hosts' files
and units unchanged); the status as text and as JSON, the dry run saying what a real deploy would do."""

from __future__ import annotations

import json
import re

import pytest
from playbook_runner import run_on_fleet
from sim_spark import prepared_sparks, ssh

# What a status must not change: the units' start times and the flight's files.
FINGERPRINT = (
    "systemctl show -p ActiveEnterTimestampMonotonic gemma.service voxtral-tts.service; "
    "md5sum /var/lib/voxtral-deploy/* 2>/dev/null; ls -l --time-style=+%s /var/lib/voxtral-deploy 2>/dev/null; "
    "ls -l --time-style=+%s /opt/vllm-omni /opt/vllm-omni/releases /etc/systemd/system 2>/dev/null; "
    "md5sum /etc/systemd/system/voxtral-tts.service /var/lib/voxtral-tts/* 2>/dev/null; getent passwd voxtral"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("status")
    # fresh: a Spark that never built (the bare test image); deployed: from the built image, as after a build.
    instances = {"fresh": "voxtral-status-fresh", "deployed": "voxtral-status-deployed"}
    with prepared_sparks(instances, workdir, unbuilt={"fresh"}) as hosts:
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


def host_events(run, host, event):
    return [e["event_data"] for e in run.events if e.get("event") == event and e["event_data"].get("host") == host]


def host_message(run, host, task):
    [message] = [data["res"]["msg"] for data in host_events(run, host, "runner_on_ok") if data.get("task") == task]
    return message


def test_check_mode_says_what_a_deploy_would_do_and_changes_nothing(fleet):
    hosts, workdir = fleet
    before = {name: ssh(hostvars, FINGERPRINT).stdout for name, hostvars in hosts.items()}
    serving = json.loads(ssh(hosts["deployed"], "cat /opt/vllm-omni/current/release.json").stdout)["release"]
    run = run_on_fleet(hosts, "deploy-voxtral.yml", workdir, check=True)
    assert run.status == "successful", run.stdout[-4000:]

    # Fresh: the release a real run would build, named from the same inputs as the one the deployed host
    # built (same fixture upstream, same profile), the PRs, the unit as a diff, and Gemma kept serving.
    release = host_message(run, "fresh", "Say which release serves")
    assert release.startswith(f"vllm-omni would build {serving} (v0.30.0 at "), release
    assert "current would point at it" in release
    prs = [
        item["msg"]
        for data in host_events(run, "fresh", "runner_on_ok")
        if data.get("task") == "Report the PRs"
        for item in data["res"].get("results", [])
        if item.get("msg", "").startswith("#2405")
    ]
    assert prs and prs[0].startswith("#2405 superseded"), prs
    pending = host_message(run, "fresh", "Say what a pending release leaves unchecked")
    assert pending.startswith(f"Check mode: release {serving} is not built yet"), pending
    mode = host_message(run, "fresh", "Say how Gemma fares, and why")
    assert mode.startswith("Gemma mode coexist (auto: memory plan)"), mode
    unit_diffs = [
        data["res"]["diff"]
        for data in host_events(run, "fresh", "runner_on_ok")
        if data.get("task") == "Render the unit" and data["res"].get("diff")
    ]
    [diff] = unit_diffs[0] if isinstance(unit_diffs[0], list) else unit_diffs
    assert f"/opt/vllm-omni/releases/{serving}/venv/bin/vllm-omni serve" in diff["after"]
    assert "--deploy-config" in diff["after"]

    # Deployed: the serving release is reused and nothing would change.
    assert host_message(run, "deployed", "Say which release serves").startswith(f"vllm-omni reused {serving} ")
    changed = [data["task"] for data in host_events(run, "deployed", "runner_on_ok") if data["res"].get("changed")]
    assert changed == []
    assert "None" not in host_message(run, "deployed", "Say how Gemma fares, and why")

    # The flight summary says it was a dry run, for both.
    summary = run.stdout.split("FLIGHT SUMMARY")[-1]
    assert summary.count(": dry run (check mode), nothing changed") == 2, summary
    assert "would FAIL" not in summary

    # Nothing written, no unit started or restarted, on either host.
    assert {name: ssh(hostvars, FINGERPRINT).stdout for name, hostvars in hosts.items()} == before
