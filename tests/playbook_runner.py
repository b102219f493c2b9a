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
        # ansible-runner's own record of the run (stdout, job_events/, command, ...).
        self.artifact_dir = Path(runner.config.artifact_dir)

    def failures(self):
        """(host, task, message) of every task failure that was not ignored, in order."""
        return [
            (e["event_data"]["host"], e["event_data"].get("task", ""), e["event_data"]["res"].get("msg", ""))
            for e in self.events
            if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")
        ]

    def failure_messages(self):
        return [msg for _, _, msg in self.failures()]

    def host_errors(self):
        """Each failed host's last failure message: the error the run ends with for that host."""
        return {host: msg for host, _, msg in self.failures()}

    def hosts_that_ran(self):
        """Hosts that ran at least one task (ok, changed, skipped, failed or unreachable)."""
        return {e["event_data"]["host"] for e in self.events if e.get("event", "").startswith("runner_on_")}

    def ok_results(self, task_name):
        return [
            e["event_data"]["res"]
            for e in self.events
            if e.get("event") == "runner_on_ok" and e["event_data"].get("task") == task_name
        ]

    def changed_count(self):
        return sum(1 for e in self.events if e.get("event") == "runner_on_ok" and e["event_data"]["res"].get("changed"))


def run_on(hostvars, playbook, workdir, extravars=None, check=False, verbosity=0):
    """Run a repository playbook against one host (`titan`, group `sparks`) through ansible-runner."""
    return run_on_fleet({"titan": hostvars}, playbook, workdir, extravars, check, verbosity)


def run_on_fleet(hosts, playbook, workdir, extravars=None, check=False, verbosity=0):
    """Run a repository playbook against the hosts {name: hostvars} (group `sparks`, in that order)."""
    inventory = {"all": {"children": {"sparks": {"hosts": hosts}}}}
    runner = ansible_runner.run(
        private_data_dir=tempfile.mkdtemp(dir=workdir, prefix="runner-"),
        project_dir=str(ROOT),
        playbook=str(ROOT / playbook),
        inventory=inventory,
        extravars=extravars or {},
        cmdline="--check --diff" if check else None,
        # The progress callback is the collection's (voxtral.deploy.voxtral_progress, ansible.cfg), so
        # runner's own ANSIBLE_CALLBACK_PLUGINS does not hide it.
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        quiet=True,
        verbosity=verbosity or None,
    )
    return Run(runner)
