"""The collection as users install it: `ansible-galaxy collection build` → install into a clean collections
path → `make demo`'s deploy and rollback run from the installed copy (playbooks voxtral.deploy.deploy and
voxtral.deploy.rollback), outside the checkout, with nothing of the checkout on Ansible's paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sim_spark import SIMULATED_SPARK_VARS, prepared_sparks, ssh, write_inventory

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The built tarball installed into a collections path of its own; returns (collections path, tarball)."""
    work = tmp_path_factory.mktemp("collection")
    collections = work / "collections"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    built = subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", "--output-path", work, ROOT],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    tarball = next(work.glob("voxtral-deploy-*.tar.gz"))
    done = subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", collections, tarball],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return collections, tarball


def test_tarball_ships_the_collection_and_no_test_double(installed):
    _collections, tarball = installed
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for shipped in (
        "MANIFEST.json",  # the built form of galaxy.yml
        "meta/runtime.yml",
        "playbooks/deploy.yml",
        "roles/voxtral/tasks/deploy.yml",
        "plugins/modules/latency_gate.py",
        "plugins/filter/tts_benchmark.py",
        "plugins/callback/voxtral_progress.py",
        "plugins/action/while_controller_lives.py",  # meta/runtime.yml routes the beating modules through it
        "tests/sanity/ignore-2.19.txt",
    ):
        assert shipped in names, shipped
    # The doubles (fake Gemma, fake vllm-omni, the local upstream) and the dev tooling stay in the checkout.
    for left_out in ("tests/fixtures", "tests/integration", "tests/unit", "molecule", "scripts", "benchmarks"):
        assert not any(name == left_out or name.startswith(left_out + "/") for name in names), left_out


def test_deploy_and_rollback_run_from_the_installed_copy(installed, tmp_path):
    collections, _tarball = installed
    copy = collections / "ansible_collections" / "voxtral" / "deploy"
    listed = subprocess.run(
        [BIN / "ansible-galaxy", "collection", "list", "voxtral.deploy", "--format", "json"],
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert list(json.loads(listed.stdout)) == [str(collections / "ansible_collections")], listed.stdout

    # The bare test image: the installed collection's own build (its build script, its smoke test's files) runs.
    with prepared_sparks({"titan": "voxtral-collection"}, tmp_path, unbuilt={"titan"}) as hosts:
        inventory = tmp_path / "inventory.yml"
        write_inventory(inventory, hosts, SIMULATED_SPARK_VARS)
        # Only the installed copy is on Ansible's paths: its own ansible.cfg, no checkout, no ANSIBLE_* from
        # `make test` (which point at the checkout's link in .cache/collections).
        env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        env |= {"ANSIBLE_CONFIG": str(copy / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(collections)}
        artifacts = tmp_path / "artifacts"
        for playbook in ("voxtral.deploy.deploy", "voxtral.deploy.rollback"):
            run = subprocess.run(
                [BIN / "ansible-playbook", "-i", inventory, playbook, "-e", f"voxtral_artifacts_dir={artifacts}"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=1500,
            )
            assert run.returncode == 0, f"{playbook}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
            assert "voxtral.deploy.voxtral : " in run.stdout  # the collection's role, by FQCN
            # The collection's callback (its ansible.cfg) ends the run with the flight summary.
            assert "FLIGHT SUMMARY" in run.stdout and "titan  " in run.stdout.split("FLIGHT SUMMARY")[-1]
            if playbook.endswith("deploy"):
                assert ssh(hosts["titan"], "systemctl is-active voxtral-tts").stdout.strip() == "active"
        assert ssh(hosts["titan"], "systemctl is-active voxtral-tts").stdout.strip() != "active"
        assert ssh(hosts["titan"], "systemctl is-active gemma").stdout.strip() == "active"
        assert list(artifacts.glob("titan/*/state.json")), "the run's results are in the artifacts folder asked for"
