"""What preflight leaves on a host: a lock directory, no lock (released), systemd running."""


def test_systemd_is_pid1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_lock_released_and_directory_kept(host):
    state_dir = host.file("/var/lib/voxtral-deploy")
    assert state_dir.is_directory
    assert state_dir.mode == 0o755
    assert not host.file("/var/lib/voxtral-deploy/flight.lock").exists


def test_sshd_serves_the_controller(host):
    assert host.service("ssh").is_running
