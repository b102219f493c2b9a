#!/usr/bin/python
"""Report a running async job's progress from its log, its unit's journal or the folder it fills; fail on a stall."""

DOCUMENTATION = r"""
---
module: async_progress
short_description: Report a running async job's progress from its log, and fail when the log stalls
description:
  - Reads an async job's status file (the C(results_file) an C(async) task with C(poll=0) registers) and the
    job's own log, and returns one progress line with the latest step line of the log, the time since the job
    started and since the log last grew, and the log's path.
  - Instead of a log file, the job's log can be a systemd unit's journal (O(unit), for a C(systemctl start)
    run as the job); its latest line since the job started is the step.
  - With O(watch), the job's progress is the folder it fills (a download); its bytes and files are in the
    progress line, and the folder's newest write, not the log, is what counts as the job moving.
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
    description:
      - The job's log file (it may not exist yet when the job has just started).
      - One of O(log) and O(unit) is required.
    type: path
  unit:
    description:
      - A systemd unit whose journal (its lines since the job started) is the job's log.
      - The step is the latest journal line (O(step_pattern) applies too); the tail comes from the journal.
    type: str
  watch:
    description:
      - A folder the job fills (a download's cache). The progress line gives its size and its number of
        files, and the job counts as moving while any file in it is written (O(stall_timeout) applies to that).
    type: path
  step_pattern:
    description: Regular expression of the log lines that name a step; the latest one is reported.
    type: str
    default: "^== "
  stall_timeout:
    description:
      - Seconds the log (with O(watch), the folder) may stay unchanged while the job runs before the job is
        stopped and the module fails.
      - C(0) never fails on a stall (the job's own limits end it).
    type: int
    default: 0
  pid_file:
    description:
      - File holding the PID of a process of the job; its process group is stopped on a stall.
      - Without it, a stall still fails the module, but the job runs on until its async timeout.
    type: path
  tail_lines:
    description:
      - Lines of the log returned (and put in the message) when the job failed or stalled.
      - C(0) leaves them out (a caller that shows the journal itself).
    type: int
    default: 40
  label:
    description: What the job is, for the progress line and the messages.
    type: str
    default: job
  heartbeat:
    description:
      - The flight's heartbeat, refreshed by every poll while a flight guard is armed (the controller is alive
        while it polls; the job itself never beats); never created here (module_utils/flight_heartbeat.py).
    type: path
    default: /run/voxtral-deploy/flight-heartbeat
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

- name: Start the server in the background (the unit's start ends when it serves)
  ansible.builtin.command: systemctl start voxtral-tts.service
  async: 900
  poll: 0
  register: start_job

- name: Wait for the start, showing the unit's latest journal line
  async_progress:
    job_file: "{{ start_job.results_file }}"
    unit: voxtral-tts.service
    step_pattern: ""
    label: voxtral-tts.service start
  register: start_progress
  until: start_progress.finished
  retries: 90
  delay: 10

- name: Wait for a download, showing the bytes in its cache folder; fail when none arrive for 10 minutes
  async_progress:
    job_file: "{{ download_job.results_file }}"
    log: /var/lib/voxtral-tts/hf-download.log
    pid_file: /var/lib/voxtral-tts/hf-download.pid
    watch: /var/lib/voxtral-tts/hf/hub/models--mistralai--Voxtral-4B-TTS-2603
    stall_timeout: 600
    label: download
  register: download_progress
  until: download_progress.finished
  retries: 720
  delay: 10
"""

RETURN = r"""
finished:
  description: Whether the job has ended (also true on a stall, which ends it).
  returned: always
  type: bool
rc:
  description: The job's return code.
  returned: when the job has finished and returned one (a command; a module's job may not)
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
  description: Seconds since the log (with O(watch), the folder) last grew.
  returned: always
  type: float
bytes:
  description: Bytes in the O(watch) folder's files (symbolic links not followed).
  returned: when O(watch) is set
  type: int
files:
  description: Files in the O(watch) folder.
  returned: when O(watch) is set
  type: int
progress:
  description:
    - "One line for people, e.g. C(build: == uv pip install vllm==0.30.0 · 4m12s · log /opt/build.log);"
    - "with O(watch) the folder's size after the step (C(· 2.1 GB in 3 files ·)); with O(unit) the log is
      C(journalctl -u <unit>)."
  returned: always
  type: str
job_result:
  description: The finished job's own result (what its module returned, without the async wrapper's keys).
  returned: when the job has finished
  type: dict
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
from ansible_collections.voxtral.deploy.plugins.module_utils import flight_heartbeat


def duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def human_bytes(count):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def folder_usage(path):
    """(bytes, files, newest mtime) of the regular files under path, symbolic links not followed."""
    total = files = 0
    newest = None
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    total, files = total + stat.st_size, files + 1
                    newest = stat.st_mtime if newest is None else max(newest, stat.st_mtime)
            except OSError:
                continue  # gone meanwhile (a finished .incomplete renamed)
    return total, files, newest


def command_start(result):
    """When a finished command job started (its result's local "start" time), or None.

    The status file's own time is the end once the job has finished (it is written again then).
    """
    try:
        return time.mktime(time.strptime(str(result["start"]).split(".", maxsplit=1)[0], "%Y-%m-%d %H:%M:%S"))
    except (KeyError, ValueError, OverflowError):
        return None


def read_tail(path, lines, chunk=65536):
    if lines < 1:
        return []
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
        self.started = None
        self.job_result = {}

    def journal(self, lines, output):
        """The unit's last journal lines since the job started, oldest first (journalctl's own text)."""
        # --reverse: with --since, --lines would count from the start of the range, not from its end.
        rc, out, _err = self.module.run_command(
            ["journalctl", f"--unit={self.params['unit']}", f"--since=@{int(self.started)}", "--reverse",
             f"--lines={lines}", f"--output={output}", "--no-pager", "--quiet"]
        )  # fmt: skip
        return list(reversed(out.splitlines())) if rc == 0 else []

    def last_journal_entry(self):
        """(message, epoch seconds) of the unit's latest journal entry since the job started, or ("", None)."""
        for line in reversed(self.journal(1, "json")):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("MESSAGE", "")
            if isinstance(message, list):  # not UTF-8: journalctl gives the bytes
                message = bytes(message).decode("utf-8", "replace")
            return str(message), int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6 or None
        return "", None

    def tail(self):
        lines = self.params["tail_lines"]
        if lines < 1:
            return []
        if self.params["unit"]:
            return self.journal(lines, "short-iso")[-lines:]
        return read_tail(self.params["log"], lines)

    def source(self):
        return f"journalctl -u {self.params['unit']}" if self.params["unit"] else f"log {self.params['log']}"

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
        self.started = command_start(data)
        self.job_result = {key: value for key, value in data.items() if key not in ASYNC_KEYS}
        return True, data.get("rc"), failed, data.get("stderr") or data.get("msg") or ""

    def latest_step(self):
        """(the latest step line, when the log last grew, or None before it exists)."""
        pattern = re.compile(self.params["step_pattern"])
        if self.params["unit"]:
            message, at = self.last_journal_entry()
            lines = [message] if message else []
        else:
            lines = read_tail(self.params["log"], 400)
            try:
                at = os.stat(self.params["log"]).st_mtime
            except FileNotFoundError:
                at = None
        steps = [line for line in lines if pattern.search(line)]
        step = steps[-1].strip() if steps else ""
        return (step if len(step) <= 200 else step[:199] + "…"), at

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
        label, source = self.params["label"], self.source()
        finished, rc, failed, message = self.job_status()
        if self.started is None:  # running: the status file, written once at the start, dates it
            self.started = os.stat(self.params["job_file"]).st_ctime
        elapsed = self.now - self.started
        step, grown_at = self.latest_step()
        usage = ""
        if self.params["watch"]:
            size, files, newest = folder_usage(self.params["watch"])
            usage = f" · {human_bytes(size)} in {files} file{'' if files == 1 else 's'}"
            # Files older than the job (an earlier, partial download) do not make it idle from the start.
            grown_at = None if newest is None else max(newest, self.started)
        idle = elapsed if grown_at is None else self.now - grown_at  # nothing yet: idle since the start
        progress = f"{label}: {step or 'starting'}{usage} · {duration(elapsed)} · {source}"
        result = {
            "changed": False,
            "finished": finished,
            "step": step,
            "elapsed_s": round(elapsed, 1),
            "log_idle_s": round(idle, 1),
            "progress": progress,
        }
        if self.params["watch"]:
            result.update(bytes=size, files=files)
        # Only a known rc: Ansible takes any other rc than 0 in a result, null included, as a failure
        # (ansible-core 2.19 executor/task_executor.py, "rc is here for backwards compatibility").
        if rc is not None:
            result.update(rc=rc)
        if finished:
            result.update(job_result=self.job_result)
        if finished and failed:
            tail = self.tail()
            self.module.fail_json(
                msg=f"{label} failed (rc={rc}) after {duration(elapsed)} at step '{step}': {message.strip()}"
                + self.tail_text(tail),
                tail=tail,
                **result,
            )
        stall_timeout = self.params["stall_timeout"]
        if not finished and stall_timeout and idle >= stall_timeout:
            stopped = self.stop_job()
            tail = self.tail()
            what = self.params["watch"] or self.params["log"] or f"the journal of {self.params['unit']}"
            held = f" ({usage[3:]})" if usage else ""
            result.update(finished=True)
            self.module.fail_json(
                msg=f"{label} stalled: {what}{held} has not grown for {duration(idle)} (stall_timeout "
                f"{stall_timeout} s) at step '{step}'; {stopped}." + self.tail_text(tail),
                tail=tail,
                **result,
            )
        return result

    def tail_text(self, tail):
        if self.params["tail_lines"] < 1:
            return ""
        where = f"the journal of {self.params['unit']}" if self.params["unit"] else self.params["log"]
        return f"\nlast lines of {where}:\n" + "\n".join(tail)


# What the async wrapper adds to a job's own result (ansible-core 2.19 modules/async_wrapper.py).
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "_ansible_suppress_tmpdir_delete")

ARGUMENT_SPEC = {
    "job_file": {"type": "path", "required": True},
    "log": {"type": "path"},
    "unit": {"type": "str"},
    "watch": {"type": "path"},
    "step_pattern": {"type": "str", "default": "^== "},
    "stall_timeout": {"type": "int", "default": 0},
    "pid_file": {"type": "path"},
    "tail_lines": {"type": "int", "default": 40},
    "label": {"type": "str", "default": "job"},
    "heartbeat": {"type": "path", "default": flight_heartbeat.PATH},
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("log", "unit")],
        required_one_of=[("log", "unit")],
        supports_check_mode=True,
    )
    if module.params["stall_timeout"] < 0:
        module.fail_json(msg=f"stall_timeout must be 0 (off) or seconds, got {module.params['stall_timeout']}")
    flight_heartbeat.beat(module.params["heartbeat"])
    module.exit_json(**AsyncProgress(module).run())


if __name__ == "__main__":
    main()
