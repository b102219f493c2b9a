"""Action plugin: run a module that refreshes the flight's heartbeat only while ansible-playbook lives.

The flight guard on the host restores Gemma once the heartbeat is older than its timeout, so the heartbeat must
stop when the controller dies. A worker of ansible-playbook runs in a session of its own (ansible-core 2.19,
executor/process/worker.py: WorkerProcess._detach calls os.setsid), so a SIGKILL of ansible-playbook's process
group leaves the worker alive, and a worker in an `until:` loop went on polling the host, each poll a beat: the
guard fired 14 s late on the simulated Spark (benchmarks/flight_bench.py). The worker is a multiprocessing child
of ansible-playbook, so its parent's sentinel says when the parent is gone; an orphaned worker then fails the
task instead of sending the module, and the heartbeat goes stale from the controller's death on.

meta/runtime.yml routes every module that beats through this plugin (a unit test keeps that list whole);
otherwise it is the generic action (ansible.builtin.normal).
"""

from __future__ import annotations

import multiprocessing

from ansible.plugins.action.normal import ActionModule as NormalAction

CONTROLLER_GONE = (
    "ansible-playbook is gone (this worker outlived it): {module} was not run, so the flight's heartbeat is not "
    "refreshed and the flight guard restores Gemma at its heartbeat timeout"
)


def controller_alive() -> bool:
    """False when this process is a multiprocessing child whose parent (ansible-playbook) has ended."""
    parent = multiprocessing.parent_process()
    try:
        return parent is None or parent.is_alive()
    except (OSError, ValueError):  # a sentinel that cannot be read says nothing: run the module as before
        return True


class ActionModule(NormalAction):
    def run(self, tmp=None, task_vars=None):
        if not controller_alive():
            return {"failed": True, "msg": CONTROLLER_GONE.format(module=self._task.resolved_action)}
        return super().run(tmp, task_vars)
