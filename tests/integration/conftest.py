"""Integration fixtures: one simulated Spark per session, playbooks run through ansible-runner."""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from playbook_runner import run_on  # noqa: E402
from sim_spark import simulated_spark, ssh  # noqa: E402


@pytest.fixture(scope="session")
def spark():
    if not os.environ.get("VOXTRAL_IMAGE_X86_64") or not shutil.which("podman"):
        pytest.fail("run through `make test` (scripts/env.sh must be sourced and the test image built)")
    with simulated_spark("voxtral-integration") as hostvars:
        yield hostvars


@pytest.fixture
def run_playbook(tmp_path, spark):
    """Run a playbook from the repository against the plain simulated Spark."""

    def run(playbook, extravars=None, hostvars=None, check=False):
        return run_on({**spark, **(hostvars or {})}, playbook, tmp_path, extravars, check)

    return run


@pytest.fixture
def host_shell(spark):
    return lambda command: ssh(spark, command)
