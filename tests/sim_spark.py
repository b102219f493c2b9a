"""A simulated Spark for tests: the systemd test image in podman, reached over SSH on a loopback port.

Used by the integration tests and the demo; the roles cannot tell it from a real host.
"""

import os
import socket
import subprocess
import time
from contextlib import contextmanager


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def podman(*args, check=True):
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def wait_for_ssh(port, key, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(
            [
                "ssh",
                "-i",
                key,
                "-p",
                str(port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=3",
                "-o",
                "BatchMode=yes",
                "root@127.0.0.1",
                "systemctl is-system-running --wait",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() in ("running", "degraded"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulated Spark on port {port} not up: {probe.stdout} {probe.stderr}")
        time.sleep(1)


@contextmanager
def simulated_spark(name, image=None, port=None):
    """Start a fresh instance; yield its Ansible host variables; remove it afterwards."""
    image = image or os.environ["VOXTRAL_IMAGE_X86_64"]
    key = os.environ["VOXTRAL_SSH_KEY"]
    port = port or free_port()
    podman("rm", "-f", name, check=False)
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        name,
        "--systemd",
        "always",
        "--network",
        "slirp4netns",
        "-p",
        f"127.0.0.1:{port}:22",
        "--cap-add",
        "SYS_ADMIN",
        image,
        "/lib/systemd/systemd",
    )
    try:
        wait_for_ssh(port, key)
        yield {
            "ansible_host": "127.0.0.1",
            "ansible_port": port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            "ansible_python_interpreter": "/usr/bin/python3",
        }
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


def ssh(hostvars, command):
    """Run a shell command on the instance; return the CompletedProcess."""
    return subprocess.run(
        [
            "ssh",
            "-i",
            hostvars["ansible_ssh_private_key_file"],
            "-p",
            str(hostvars["ansible_port"]),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
