"""The build's progress reaches the controller while it runs, and a build whose log stalls fails with its tail.

A fixture knob makes the fixture vllm-omni's own build (`uv pip install -e ./src`) sit silent for a while,
as a slow or hung download of a several-GB wheel does on a real Spark.
"""

import re

from playbook_runner import run_on
from sim_spark import prepared_sparks, ssh, write_behaviour

PLAYBOOK = "tests/integration/playbooks/build.yml"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BUILD_KNOB = "/etc/fake-vllm-omni/build.json"  # read by tests/fixtures/upstream/common/setup.py
PROGRESS = re.compile(
    r"^\s*\[titan\] build of (\S+): (== .+) · (\d+m\d\ds|\d+s) · log (/opt/vllm-omni/releases/\S+/build\.log)$"
)


def test_progress_lines_then_a_stall_fails_with_the_log_tail(tmp_path):
    # The bare test image: this test is about a build that runs (the built image has the release already).
    with prepared_sparks({"titan": "voxtral-build-progress"}, tmp_path, unbuilt={"titan"}) as hosts:
        spark = hosts["titan"]
        write_behaviour(spark, BUILD_KNOB, {"sleep_s": 9})
        run = run_on(spark, PLAYBOOK, tmp_path)
        assert run.status == "successful", run.stdout[-3000:]
        lines = [m for m in map(PROGRESS.match, ANSI.sub("", run.stdout).splitlines()) if m]
        assert len(lines) >= 3, run.stdout[-3000:]  # one per 2 s poll during the 9 s silent step
        release, log = lines[-1].group(1), lines[-1].group(4)
        assert log == f"/opt/vllm-omni/releases/{release}/build.log"
        assert "pip install" in lines[-1].group(2) and "./src" in lines[-1].group(2)
        assert ssh(spark, f"test -f /opt/vllm-omni/releases/{release}/stamp.json").returncode == 0

        # Another release (v0.18.0, no PRs: the fixture's PR heads are not the real pinned ones); its
        # vllm-omni build hangs far past the stall limit.
        write_behaviour(spark, BUILD_KNOB, {"sleep_s": 300})
        stalled = run_on(
            spark,
            PLAYBOOK,
            tmp_path,
            extravars={
                "vllm_omni_build_profile": "seed-0.18",
                "vllm_omni_build_patches": [],
                "vllm_omni_build_stall_timeout": 8,
            },
        )
        assert stalled.status == "failed"
        [message] = stalled.failure_messages()
        match = re.match(
            r"build of (\S+) stalled: (\S+) has not grown for (\d+)s \(stall_timeout 8 s\) at step '(== .+)'; "
            r"stopped \(process group \d+\)\.\nlast lines of \2:\n",
            message,
        )
        assert match, message
        assert match.group(2) == f"/opt/vllm-omni/releases/{match.group(1)}/build.log"
        assert "./src" in match.group(4)
        assert "== build of " in message  # the tail is the log's
        # Nothing of the stalled build runs on, it is not stamped, and current still serves the first release.
        assert ssh(spark, "pgrep -f '[b]uild[.]sh|[s]etup[.]py' || true").stdout.strip() == ""
        assert ssh(spark, f"test -e /opt/vllm-omni/releases/{match.group(1)}/stamp.json").returncode == 1
        assert ssh(spark, "readlink /opt/vllm-omni/current").stdout.strip().endswith(release)
