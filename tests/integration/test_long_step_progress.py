"""The weights download and Voxtral's start show their progress on the controller while they run.

A stand-in huggingface_hub (tests/fixtures/fake_huggingface_hub, installed by path into the role's download
venv) writes the fixture snapshot into the HF cache at a pace its behaviour file sets, or stops writing (a
dead connection); the fake vllm-omni's start_delay_s with start_log_every_s is a model load that logs.
"""

import re
import sys
from pathlib import Path

import pytest
from playbook_runner import run_on
from sim_spark import prepared_sparks, put, ssh, write_behaviour

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from make_fake_hf_hub import WHEEL_NAME
from make_fake_hf_hub import build as build_fake_hf_hub

ANSI = re.compile(r"\x1b\[[0-9;]*m")
HF_HUB_BEHAVIOUR = "/etc/fake-huggingface-hub/behaviour.json"  # read by tests/fixtures/fake_huggingface_hub
VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
FIXTURES_ON_HOST = "/usr/local/lib/voxtral-fixtures"
MODEL = "mistralai/Voxtral-4B-TTS-2603"
TOKEN = "hf_fixtureTokenNeverShown"
DOWNLOAD_LOG = "/var/lib/voxtral-tts/hf-download.log"
DOWNLOAD = re.compile(
    rf"^\s*\[titan\] download of {MODEL}@main: (== .+) · (\d+(?:\.\d)? [kMG]?B) in (\d+) files? · (\d+m\d\ds|\d+s) "
    rf"· log {DOWNLOAD_LOG}$"
)
START = re.compile(
    r"^\s*\[titan\] voxtral-tts\.service start: (.+) · (\d+m\d\ds|\d+s) · journalctl -u voxtral-tts\.service$"
)

SERVICE_VARS = {
    "voxtral_service_progress_interval": 1,
    "voxtral_service_stage0_gpu_memory_utilization": 0.1,
    "voxtral_service_stage1_gpu_memory_utilization": 0.05,
}


def progress_lines(run, pattern):
    return [m for m in map(pattern.match, ANSI.sub("", run.stdout).splitlines()) if m]


def download_vars(wheel, hf_home, **more):
    return {
        "voxtral_service_download_weights": True,
        "voxtral_service_download_requirement": wheel,
        "voxtral_service_hf_home": hf_home,
        "voxtral_service_progress_interval": 1,
        **more,
    }


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One prepared simulated Spark for the module, the stand-in huggingface_hub's wheel on it."""
    workdir = tmp_path_factory.mktemp("long-progress")
    wheel = build_fake_hf_hub(workdir / "wheel")
    with prepared_sparks({"titan": "voxtral-long-progress"}, workdir) as hosts:
        put(hosts["titan"], wheel.read_bytes(), f"{FIXTURES_ON_HOST}/{wheel.name}")
        yield hosts["titan"]


def test_download_shows_its_progress_and_a_stall_fails_with_the_log_tail(spark, tmp_path):
    remote_wheel = f"{FIXTURES_ON_HOST}/{WHEEL_NAME}"
    # A slow download: progress lines with the cache folder's bytes and files, then the weights check.
    write_behaviour(spark, HF_HUB_BEHAVIOUR, {"seconds": 8, "chunk_s": 0.5})
    run = run_on(spark, "tests/integration/playbooks/weights.yml", tmp_path,
                 extravars=download_vars(remote_wheel, "/srv/hf-slow"))  # fmt: skip
    assert run.status == "successful", run.stdout[-3000:]
    lines = progress_lines(run, DOWNLOAD)
    assert len(lines) >= 3, run.stdout[-3000:]  # one per 1 s poll during the 8 s download
    assert any(m.group(1).endswith("  7 files, 226.3 kB (commit 0123456789ab)") for m in lines), run.stdout[-3000:]
    assert int(lines[-1].group(3)) >= int(lines[0].group(3))  # files arrive
    snapshot = (
        "/srv/hf-slow/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots/0123456789abcdef0123456789abcdef01234567"
    )
    assert ssh(spark, f"test -f {snapshot}/consolidated.safetensors").returncode == 0
    again = run_on(spark, "tests/integration/playbooks/weights.yml", tmp_path,
                   extravars=download_vars(remote_wheel, "/srv/hf-slow"))  # fmt: skip
    assert again.status == "successful" and again.changed_count() == 0, again.stdout[-3000:]
    assert not progress_lines(again, DOWNLOAD)  # there: nothing downloaded

    # A download that stops delivering: stopped once nothing was written for the stall timeout.
    write_behaviour(spark, HF_HUB_BEHAVIOUR, {"seconds": 60, "chunk_s": 0.5, "stall_after_s": 2})
    stalled = run_on(spark, "tests/integration/playbooks/weights.yml", tmp_path,
                     extravars=download_vars(remote_wheel, "/srv/hf-stall", voxtral_service_hf_token=TOKEN,
                                             voxtral_service_download_stall_timeout=5))  # fmt: skip
    assert stalled.status == "failed"
    [message] = stalled.failure_messages()
    match = re.match(
        rf"download of {MODEL}@main stalled: /srv/hf-stall/hub/models--mistralai--Voxtral-4B-TTS-2603 "
        r"\((\S+ [kMG]?B) in (\d+) files\) has not grown for (\d+)s \(stall_timeout 5 s\) at step '(== .+)'; "
        rf"stopped \(process group \d+\)\.\nlast lines of {DOWNLOAD_LOG}:\n",
        message,
    )
    assert match, message
    assert match.group(4).endswith("  7 files, 226.3 kB (commit 0123456789ab)")
    assert f"Z  download of {MODEL}@main into /srv/hf-stall/hub\n" in message  # the tail is the log's
    assert progress_lines(stalled, DOWNLOAD), stalled.stdout[-3000:]
    assert ssh(spark, "pgrep -f '[s]napshot_download' || true").stdout.strip() == ""
    assert ssh(spark, "test ! -e /var/lib/voxtral-tts/.hf-download.token").returncode == 0  # read and removed
    assert TOKEN not in stalled.stdout and TOKEN not in ssh(spark, "cat /root/.ansible_async/* || true").stdout


def test_start_shows_the_units_latest_journal_line(spark, tmp_path):
    # A slow start that logs as a model load does: its latest journal line at each poll.
    write_behaviour(spark, VOXTRAL_BEHAVIOUR, {"start_delay_s": 8, "start_log_every_s": 1})
    started = run_on(
        spark,
        "tests/integration/playbooks/service.yml",
        tmp_path,
        extravars=SERVICE_VARS,
    )
    assert started.status == "successful", started.stdout[-3000:]
    steps = [m.group(1) for m in progress_lines(started, START)]
    assert len(steps) >= 3, started.stdout[-3000:]
    loading = [
        s
        for s in steps
        if re.search(r"\[fake-vllm-omni\] (Loading safetensors checkpoint shards|Capturing CUDA graphs): \d+/8 s", s)
    ]
    assert len(set(loading)) >= 2, steps  # the latest line, not one line over and over
    assert ssh(spark, "systemctl is-active voxtral-tts.service").stdout.strip() == "active"


def test_a_start_that_crashes_fails_at_once_with_the_journal(spark, tmp_path):
    ssh(spark, "systemctl stop voxtral-tts.service")
    write_behaviour(spark, VOXTRAL_BEHAVIOUR, {"start_delay_s": 3, "start_log_every_s": 1, "crash_at_start": True})
    crashed = run_on(spark, "tests/integration/playbooks/service.yml", tmp_path, extravars=SERVICE_VARS)
    assert crashed.status == "failed"
    message = crashed.host_errors()["titan"]
    assert message.startswith(
        'voxtral-tts.service: "Start voxtral-tts.service - wait until it serves, showing its latest journal line" '
        "failed: voxtral-tts.service start failed (rc=1) after "
    ), message
    assert "Job for voxtral-tts.service failed" in message  # systemctl's own words, not a timeout
    assert re.search(r"Last \d+ journal lines of voxtral-tts.service:\n(.*\n)*.*CUDA error: out of memory", message)
