#!/usr/bin/python
"""Report a running async job's progress from its log; fail on a stall instead of at the timeout."""

DOCUMENTATION = r"""
---
module: async_progress
short_description: Report a running async job's progress from its log, and fail when the log stalls
description:
  - Reads an async job's status file (the C(results_file) an C(async) task with C(poll=0) registers) and the
    job's own log, and returns one progress line with the latest step line of the log, the time since the job
    started and since the log last grew, and the log's path.
  - Meant as the body of an C(until) loop (C(until=result.finished)), one call per poll; the project's
    callback plugin C(voxtral_progress) prints the C(progress) line of every poll.
  - When the log has not grown for O(stall_timeout) seconds the job is stopped (its process group gets
    SIGTERM, then SIGKILL) and the module fails with the log's last lines, instead of waiting for the
    async timeout. When the job ends with an error, the module fails with the log's last lines too.
version_added: "1.0.0"
options:
  job_file:
    description: The async job's status file (C(results_file) of the registered async task).
    type: path
    required: true
  log:
    description: The job's log file (it may not exist yet when the job has just started).
    type: path
    required: true
  step_pattern:
    description: Regular expression of the log lines that name a step; the latest one is reported.
    type: str
    default: "^== "
  stall_timeout:
    description: Seconds the log may stay unchanged while the job runs before the job is stopped and the module fails.
    type: int
    required: true
  pid_file:
    description:
      - File holding the PID of a process of the job; its process group is stopped on a stall.
      - Without it, a stall still fails the module, but the job runs on until its async timeout.
    type: path
  tail_lines:
    description: Lines of the log returned (and put in the message) when the job failed or stalled.
    type: int
    default: 40
  label:
    description: What the job is, for the progress line and the messages.
    type: str
    default: job
notes:
  - Read-only unless a stall stops the job; in check mode a stall is reported but nothing is stopped.
author:
  - voxtral-deploy maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Start the build
  ansible.builtin.command: /opt/build.sh
  async: 3600
  poll: 0
  register: build_job

- name: Wait for the build, showing its current step
  async_progress:
    job_file: "{{ build_job.results_file }}"
    log: /opt/build.log
    pid_file: /opt/build.pid
    stall_timeout: 600
    label: build
  register: build_progress
  until: build_progress.finished
  retries: 720
  delay: 5
"""

RETURN = r"""
finished:
  description: Whether the job has ended (also true on a stall, which ends it).
  returned: always
  type: bool
rc:
  description: The job's return code (null while it runs).
  returned: always
  type: int
step:
  description: The latest step line of the log (empty before the first one).
  returned: always
  type: str
elapsed_s:
  description: Seconds since the job started (from its status file's age).
  returned: always
  type: float
log_idle_s:
  description: Seconds since the log last grew.
  returned: always
  type: float
progress:
  description: "One line for people, e.g. C(build: == uv pip install vllm==0.30.0 · 4m12s · log /opt/build.log)."
  returned: always
  type: str
tail:
  description: The log's last O(tail_lines) lines.
  returned: when the job failed or stalled
  type: list
  elements: str
"""

import json
import os
import re
import signal
import time

from ansible.module_utils.basic import AnsibleModule


def duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def read_tail(path, lines, chunk=65536):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - chunk))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


class AsyncProgress:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.now = time.time()

    def job_status(self):
        """(finished, rc, failed, message) from the async status file, as async_status reads it."""
        try:
            with open(self.params["job_file"]) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            self.module.fail_json(msg=f"no async job status at {self.params['job_file']}", finished=True)
        except ValueError:
            return False, None, False, ""  # being written: the job runs
        if "started" in data and not data.get("finished"):
            return False, None, False, ""
        failed = bool(data.get("failed")) or data.get("rc", 0) != 0
        return True, data.get("rc"), failed, data.get("msg") or data.get("stderr") or ""

    def latest_step(self):
        pattern = re.compile(self.params["step_pattern"])
        steps = [line for line in read_tail(self.params["log"], 400) if pattern.search(line)]
        return steps[-1].strip() if steps else ""

    def stop_job(self):
        path = self.params["pid_file"]
        if not path or self.module.check_mode:
            return "not stopped (no pid_file)" if not path else "not stopped (check mode)"
        try:
            with open(path) as handle:
                group = os.getpgid(int(handle.read().strip()))
        except (OSError, ValueError) as exc:
            return f"not stopped ({path}: {exc})"
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return f"stopped (process group {group})"
            deadline = time.time() + wait
            while time.time() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return f"stopped (process group {group})"
                time.sleep(0.2)
        return f"stopped (process group {group}, SIGKILL)"

    def run(self):
        label, log = self.params["label"], self.params["log"]
        finished, rc, failed, message = self.job_status()
        elapsed = self.now - os.stat(self.params["job_file"]).st_ctime
        try:
            idle = self.now - os.stat(log).st_mtime
        except FileNotFoundError:
            idle = elapsed  # no log yet: idle since the start
        step = self.latest_step()
        progress = f"{label}: {step or 'starting'} · {duration(elapsed)} · log {log}"
        result = {
            "changed": False,
            "finished": finished,
            "rc": rc,
            "step": step,
            "elapsed_s": round(elapsed, 1),
            "log_idle_s": round(idle, 1),
            "progress": progress,
        }
        tail_lines = self.params["tail_lines"]
        if finished and failed:
            tail = read_tail(log, tail_lines)
            self.module.fail_json(
                msg=f"{label} failed (rc={rc}) after {duration(elapsed)} at step '{step}': {message.strip()}"
                f"\nlast lines of {log}:\n" + "\n".join(tail),
                tail=tail,
                **result,
            )
        if not finished and idle >= self.params["stall_timeout"]:
            stopped = self.stop_job()
            tail = read_tail(log, tail_lines)
            result.update(finished=True)
            self.module.fail_json(
                msg=f"{label} stalled: {log} has not grown for {duration(idle)} (stall_timeout "
                f"{self.params['stall_timeout']} s) at step '{step}'; {stopped}.\nlast lines of {log}:\n"
                + "\n".join(tail),
                tail=tail,
                **result,
            )
        return result


ARGUMENT_SPEC = {
    "job_file": {"type": "path", "required": True},
    "log": {"type": "path", "required": True},
    "step_pattern": {"type": "str", "default": "^== "},
    "stall_timeout": {"type": "int", "required": True},
    "pid_file": {"type": "path"},
    "tail_lines": {"type": "int", "default": 40},
    "label": {"type": "str", "default": "job"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["stall_timeout"] < 1:
        module.fail_json(msg=f"stall_timeout must be at least 1 second, got {module.params['stall_timeout']}")
    module.exit_json(**AsyncProgress(module).run())


if __name__ == "__main__":
    main()
