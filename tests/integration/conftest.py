"""Integration fixtures: one simulated Spark per session, playbooks run through ansible-runner."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import ansible_runner
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from sim_spark import simulated_spark, ssh  # noqa: E402


@pytest.fixture(scope="session")
def spark():
    if not os.environ.get("VOXTRAL_IMAGE_X86_64") or not shutil.which("podman"):
        pytest.fail("run through `make test` (scripts/env.sh must be sourced and the test image built)")
    with simulated_spark("voxtral-integration") as hostvars:
        yield hostvars


class Run:
    """The outcome of one playbook run: status, events, and the failure messages per task."""

    def __init__(self, runner):
        self.status = runner.status
        self.rc = runner.rc
        self.events = list(runner.events)
        self.stdout = runner.stdout.read()

    def failures(self):
        return [
            (e["event_data"].get("task", ""), e["event_data"]["res"].get("msg", ""))
            for e in self.events
            if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")
        ]

    def failure_messages(self):
        return [msg for _, msg in self.failures()]

    def ok_results(self, task_name):
        return [
            e["event_data"]["res"]
            for e in self.events
            if e.get("event") == "runner_on_ok" and e["event_data"].get("task") == task_name
        ]

    def changed_count(self):
        return sum(1 for e in self.events if e.get("event") == "runner_on_ok" and e["event_data"]["res"].get("changed"))


@pytest.fixture
def run_playbook(tmp_path, spark):
    """Run a playbook from the repository against the simulated Spark (host `titan`, group `sparks`)."""

    def run(playbook, extravars=None, hostvars=None, check=False):
        inventory = {"all": {"children": {"sparks": {"hosts": {"titan": {**spark, **(hostvars or {})}}}}}}
        cmdline = "--check --diff" if check else None
        runner = ansible_runner.run(
            private_data_dir=tempfile.mkdtemp(dir=tmp_path, prefix="runner-"),
            project_dir=str(ROOT),
            playbook=str(ROOT / playbook),
            inventory=inventory,
            extravars=extravars or {},
            cmdline=cmdline,
            envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
            quiet=True,
        )
        return Run(runner)

    return run


@pytest.fixture
def host_shell(spark):
    return lambda command: ssh(spark, command)
