"""Run the repository's playbooks through ansible-runner and read what happened from its events."""

import tempfile
from pathlib import Path

import ansible_runner

ROOT = Path(__file__).resolve().parents[1]


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


def run_on(hostvars, playbook, workdir, extravars=None, check=False):
    """Run a repository playbook against one host (`titan`, group `sparks`) through ansible-runner."""
    inventory = {"all": {"children": {"sparks": {"hosts": {"titan": hostvars}}}}}
    runner = ansible_runner.run(
        private_data_dir=tempfile.mkdtemp(dir=workdir, prefix="runner-"),
        project_dir=str(ROOT),
        playbook=str(ROOT / playbook),
        inventory=inventory,
        extravars=extravars or {},
        cmdline="--check --diff" if check else None,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        quiet=True,
    )
    return Run(runner)
