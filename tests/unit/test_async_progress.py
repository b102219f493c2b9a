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
        self.params = {
            "step_pattern": "^== ", "pid_file": None, "tail_lines": 3, "label": "build", "unit": None, "watch": None,
            **params,
        }  # fmt: skip
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
    assert result["finished"] is False and "rc" not in result  # no rc until the job has one
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


def test_a_finished_modules_own_result_is_handed_back(job):
    # A module run as an async job (service_swap): its return values, without the async wrapper's keys.
    own = {"changed": True, "phases": [{"phase": "stop", "seconds": 0.2}], "start": {"started": True}}
    job[0].write_text(json.dumps({**own, "ansible_job_id": "j1", "finished": 1, "results_file": "/x"}))
    assert progress(job)["job_result"] == own
    job[0].write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "j1"}))
    assert "job_result" not in progress(job)


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


def test_stall_timeout_zero_never_stalls(job):
    old = time.time() - 3600
    os.utime(job[1], (old, old))
    job_file, log = job
    assert AsyncProgress(FakeModule(job_file=str(job_file), log=str(log), stall_timeout=0)).run()["finished"] is False


def test_files_older_than_the_job_do_not_stall_it(job, download):
    old = time.time() - 3600
    for blob in (download / "blobs").iterdir():
        os.utime(blob, (old, old))  # an earlier, partial download's
    assert progress(job, watch=str(download))["finished"] is False


def test_failure_message_prefers_the_jobs_stderr(job):
    job[0].write_text(json.dumps({"rc": 1, "failed": True, "msg": "non-zero return code", "stderr": "Job failed."}))
    with pytest.raises(Failed) as failure:
        progress(job)
    assert "': Job failed.\nlast lines of " in failure.value.args[0]["msg"]


@pytest.fixture
def download(job, tmp_path):
    """A download's cache folder: a finished blob, a growing .incomplete one, a snapshot symlink."""
    cache = tmp_path / "models--org--name"
    (cache / "blobs").mkdir(parents=True)
    (cache / "snapshots" / "abc").mkdir(parents=True)
    (cache / "blobs" / "1111").write_bytes(b"x" * 1500)
    (cache / "blobs" / "2222.incomplete").write_bytes(b"y" * 2_400_000)
    (cache / "snapshots" / "abc" / "config.json").symlink_to(cache / "blobs" / "1111")
    old = time.time() - 120
    os.utime(job[1], (old, old))  # the log is silent: only the folder grows
    return cache


def test_watched_folder_gives_bytes_files_and_the_activity(job, download):
    result = progress(job, watch=str(download))
    assert result["bytes"] == 2_401_500 and result["files"] == 2  # symlinks not followed
    assert " · 2.4 MB in 2 files · " in result["progress"]
    assert result["finished"] is False and result["log_idle_s"] < 60  # the folder moves, the log does not


def test_watched_folder_that_stops_growing_stalls(job, download):
    poller = AsyncProgress(FakeModule(job_file=str(job[0]), log=str(job[1]), stall_timeout=60, watch=str(download)))
    poller.now += 120  # two minutes on: the job, its log and its folder all unchanged since
    with pytest.raises(Failed) as failure:
        poller.run()
    message = failure.value.args[0]["msg"]
    assert message.startswith(f"build stalled: {download} (2.4 MB in 2 files) has not grown for 2m0")
    assert message.endswith(
        f"last lines of {job[1]}:\n== build of r1\n== 2026-12-02T03:00:00Z  uv venv\nwhatever uv prints"
    )


def test_missing_watched_folder_is_empty_and_idle_since_the_start(job, tmp_path):
    result = progress(job, watch=str(tmp_path / "not-yet"))
    assert result["bytes"] == 0 and result["files"] == 0
    assert " · 0 B in 0 files · " in result["progress"]


class FakeJournal(FakeModule):
    """journalctl as run_command gives it: JSON for the latest entry, short-iso for the tail."""

    def __init__(self, entries, **params):
        super().__init__(**params)
        self.entries, self.commands = entries, []

    def run_command(self, argv):
        self.commands.append(argv)
        assert argv[0] == "journalctl" and "--unit=voxtral-tts.service" in argv and "--reverse" in argv
        lines = int(next(a for a in argv if a.startswith("--lines="))[8:])
        entries = list(reversed(self.entries))[:lines]  # newest first, as --reverse gives them
        if "--output=json" in argv:
            return (
                0,
                "".join(
                    json.dumps({"MESSAGE": m, "__REALTIME_TIMESTAMP": str(int(t * 1e6))}) + "\n" for m, t in entries
                ),
                "",
            )
        return 0, "".join(f"2026-12-02T15:00:00+0000 titan vllm-omni[7]: {m}\n" for m, _ in entries), ""


def journal_progress(job, entries, **params):
    params = {"step_pattern": "", "label": "voxtral-tts.service start", **params}
    module = FakeJournal(entries, job_file=str(job[0]), log=None, unit="voxtral-tts.service", stall_timeout=0, **params)
    return module, AsyncProgress(module)


def test_unit_journal_latest_line_is_the_step(job):
    now = time.time()
    module, poller = journal_progress(
        job, [("Loading weights took 41.2 s", now - 30), ("Capturing CUDA graphs 12/67", now - 1)]
    )
    result = poller.run()
    assert result["step"] == "Capturing CUDA graphs 12/67"
    assert result["progress"].startswith("voxtral-tts.service start: Capturing CUDA graphs 12/67 · ")
    assert result["progress"].endswith(" · journalctl -u voxtral-tts.service")
    assert result["log_idle_s"] < 10
    since = next(a for a in module.commands[0] if a.startswith("--since=@"))
    assert abs(int(since[9:]) - os.stat(job[0]).st_ctime) < 2  # only this start's lines


def test_unit_journal_of_bytes_and_long_lines(job):
    long_line = "x" * 300
    _, poller = journal_progress(job, [(list(b"caf\xc3\xa9 \xff"), time.time()), (long_line, time.time())])
    step = poller.run()["step"]
    assert len(step) == 200 and step.endswith("…")
    poller.module.entries = poller.module.entries[:1]
    assert poller.run()["step"] == "café \ufffd"


def test_unit_with_no_journal_yet_says_starting(job):
    _, poller = journal_progress(job, [])
    assert poller.run()["progress"].startswith("voxtral-tts.service start: starting · ")


def test_failed_start_without_tail_leaves_the_journal_to_the_caller(job):
    job[0].write_text(
        json.dumps(
            {"rc": 1, "failed": True, "msg": "non-zero return code", "stderr": "Job for voxtral-tts.service failed."}
        )
    )
    _, poller = journal_progress(job, [("RuntimeError: CUDA error: out of memory", time.time())], tail_lines=0)
    with pytest.raises(Failed) as failure:
        poller.run()
    result = failure.value.args[0]
    assert result["msg"].startswith("voxtral-tts.service start failed (rc=1) after ")
    assert result["msg"].endswith(
        "at step 'RuntimeError: CUDA error: out of memory': Job for voxtral-tts.service failed."
    )
    assert result["tail"] == []


def test_failed_start_with_tail_from_the_journal(job):
    job[0].write_text(json.dumps({"rc": 1, "failed": True, "msg": "non-zero return code"}))
    _, poller = journal_progress(job, [("a", time.time()), ("b", time.time())], tail_lines=2)
    with pytest.raises(Failed) as failure:
        poller.run()
    result = failure.value.args[0]
    assert result["tail"] == [
        "2026-12-02T15:00:00+0000 titan vllm-omni[7]: a",
        "2026-12-02T15:00:00+0000 titan vllm-omni[7]: b",
    ]
    assert "\nlast lines of the journal of voxtral-tts.service:\n" in result["msg"]


def test_a_finished_command_is_timed_from_its_start(job):
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 125))
    job[0].write_text(json.dumps({"rc": 1, "failed": True, "msg": "non-zero return code", "start": f"{start}.123456"}))
    with pytest.raises(Failed) as failure:
        progress(job)
    assert failure.value.args[0]["msg"].startswith("build failed (rc=1) after 2m0")  # not the rewritten file's age
