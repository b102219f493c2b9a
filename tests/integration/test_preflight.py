"""preflight refuses a wrong architecture, low disk and a held lock, each with its message."""

import json

import pytest

PLAYBOOK = "tests/integration/playbooks/preflight.yml"
X86 = {"preflight_allowed_architectures": ["x86_64"], "preflight_min_free_disk_gib": 1}
LOCK = "/var/lib/voxtral-deploy/flight.lock"


@pytest.fixture(autouse=True)
def no_lock(host_shell):
    host_shell(f"rm -f {LOCK}")
    yield
    host_shell(f"rm -f {LOCK}")


def test_passes_and_releases_the_lock(run_playbook, host_shell):
    run = run_playbook(PLAYBOOK, hostvars=X86)
    assert run.status == "successful", run.stdout
    assert run.changed_count() == 0
    assert host_shell(f"test -e {LOCK}").returncode == 1


def test_wrong_architecture_is_refused_before_the_lock(run_playbook, host_shell):
    run = run_playbook(PLAYBOOK, hostvars={"preflight_min_free_disk_gib": 1})  # default [aarch64]
    assert run.status == "failed"
    assert run.failure_messages() == [
        "titan: architecture x86_64 is not in preflight_allowed_architectures ['aarch64']; a DGX Spark is aarch64."
    ]
    assert host_shell(f"test -e {LOCK}").returncode == 1


def test_low_disk_is_refused_with_numbers(run_playbook):
    run = run_playbook(PLAYBOOK, hostvars={**X86, "preflight_min_free_disk_gib": 1000000})
    assert run.status == "failed"
    [message] = run.failure_messages()
    assert message.startswith("titan: ")
    assert "GiB free on the file system holding /opt (measured at /opt), need 1000000" in message


def test_held_lock_refuses_a_second_run_and_is_left_alone(run_playbook, host_shell):
    first = run_playbook(
        PLAYBOOK, hostvars=X86, extravars={"keep_lock": True, "preflight_lock_purpose": "deploy-voxtral"}
    )
    assert first.status == "successful"
    held = json.loads(host_shell(f"cat {LOCK}").stdout)
    second = run_playbook(PLAYBOOK, hostvars=X86)
    assert second.status == "failed"
    [message] = second.failure_messages()
    assert message.startswith(
        f"flight lock {LOCK} is held by {held['owner']} for deploy-voxtral (run {held['run_id']})"
    )
    assert "another flight is running on this host" in message
    assert json.loads(host_shell(f"cat {LOCK}").stdout) == held


def test_stale_lock_is_taken_over_and_released(run_playbook, host_shell):
    stale = {
        "run_id": "old-run",
        "owner": "bob@gone",
        "purpose": "deploy-voxtral",
        "acquired_at": "2026-01-01T00:00:00Z",
        "acquired_epoch": 1767225600,
    }
    host_shell(f"mkdir -p /var/lib/voxtral-deploy && echo '{json.dumps(stale)}' > {LOCK}")
    run = run_playbook(PLAYBOOK, hostvars={**X86, "preflight_lock_stale_after_minutes": 60})
    assert run.status == "successful", run.stdout
    [said] = [r["msg"] for r in run.ok_results("Say that a stale lock was taken over")]
    assert said.startswith(f"flight lock {LOCK} taken over: it was held by bob@gone for deploy-voxtral (run old-run)")
    assert host_shell(f"test -e {LOCK}").returncode == 1


def test_check_mode_changes_nothing(run_playbook, host_shell):
    run = run_playbook(PLAYBOOK, hostvars=X86, check=True)
    assert run.status == "successful", run.stdout
    assert host_shell(f"test -e {LOCK}").returncode == 1
