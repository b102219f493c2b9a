"""async_progress: the progress line of a running job, its end, its failure and a stalled log (stopped)."""

import json
import os
import subprocess
import time

import pytest
from ansible_collections.voxtral.deploy.plugins.modules.async_progress import AsyncProgress


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = {"step_pattern": "^== ", "pid_file": None, "tail_lines": 3, "label": "build", **params}
        self.check_mode = check_mode

    def fail_json(self, **result):
        raise Failed(result)


@pytest.fixture
def job(tmp_path):
    job_file, log = tmp_path / "job", tmp_path / "build.log"
    job_file.write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "j1"}))
    log.write_text("== build of r1\n== 2026-12-02T03:00:00Z  uv venv\nwhatever uv prints\n")
    return job_file, log


def progress(job, **params):
    job_file, log = job
    return AsyncProgress(FakeModule(job_file=str(job_file), log=str(log), stall_timeout=60, **params)).run()


def test_running_job_reports_its_latest_step_and_log(job):
    result = progress(job)
    assert result["finished"] is False and result["rc"] is None
    assert result["step"] == "== 2026-12-02T03:00:00Z  uv venv"
    assert result["progress"].startswith("build: == 2026-12-02T03:00:00Z  uv venv · ")
    assert result["progress"].endswith(f" · log {job[1]}")


def test_no_log_yet_says_starting(job):
    job[1].unlink()
    assert progress(job)["progress"].startswith("build: starting · ")


def test_finished_job(job):
    job[0].write_text(json.dumps({"rc": 0, "changed": True}))
    result = progress(job)
    assert result["finished"] is True and result["rc"] == 0


def test_failed_job_fails_with_the_log_tail(job):
    job[0].write_text(json.dumps({"rc": 1, "failed": True, "msg": "non-zero return code"}))
    with pytest.raises(Failed) as failure:
        progress(job)
    result = failure.value.args[0]
    assert result["msg"].startswith("build failed (rc=1) after ")
    assert "at step '== 2026-12-02T03:00:00Z  uv venv': non-zero return code" in result["msg"]
    assert result["tail"] == ["== build of r1", "== 2026-12-02T03:00:00Z  uv venv", "whatever uv prints"]


def test_stalled_log_stops_the_job_and_fails(job, tmp_path):
    old = time.time() - 120
    os.utime(job[1], (old, old))
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pid_file = tmp_path / "build.pid"
    pid_file.write_text(f"{sleeper.pid}\n")
    try:
        with pytest.raises(Failed) as failure:
            progress(job, pid_file=str(pid_file))
        assert sleeper.wait(timeout=10) != 0  # the job's process group was stopped
    finally:
        sleeper.kill()
    result = failure.value.args[0]
    assert result["finished"] is True
    assert result["msg"].startswith(f"build stalled: {job[1]} has not grown for 2m0")
    assert "(stall_timeout 60 s) at step '== 2026-12-02T03:00:00Z  uv venv'; stopped (process group " in result["msg"]
    assert result["msg"].endswith("whatever uv prints")


def test_stall_in_check_mode_stops_nothing(job, tmp_path):
    old = time.time() - 120
    os.utime(job[1], (old, old))
    job_file, log = job
    module = FakeModule(check_mode=True, job_file=str(job_file), log=str(log), stall_timeout=60, pid_file="/x")
    with pytest.raises(Failed) as failure:
        AsyncProgress(module).run()
    assert "; not stopped (check mode)." in failure.value.args[0]["msg"]


def test_missing_job_file(job):
    job[0].unlink()
    with pytest.raises(Failed) as failure:
        progress(job)
    assert failure.value.args[0]["msg"] == f"no async job status at {job[0]}"
