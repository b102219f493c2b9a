"""A simulated Spark for tests: the systemd test image in podman, reached over SSH on a loopback port.

Used by the integration tests and the demo; the roles cannot tell it from a real host.
"""

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

SIMULATED_SPARK_VARS = Path(__file__).resolve().parent / "simulated" / "spark-vars.yml"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def podman(*args, check=True):
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


# How the tests reach an instance: the test key, no host-key bookkeeping (instances are throw-away).
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def run_ssh(key, port, command, *options, stdin=None):
    """Run a shell command as root on the instance behind 127.0.0.1:port; return the CompletedProcess.

    `stdin` (str or bytes) is fed to the command; the output is text unless `stdin` is bytes.
    """
    return subprocess.run(
        ["ssh", "-i", key, "-p", str(port), *SSH_OPTIONS, *options, "root@127.0.0.1", command],
        input=stdin,
        capture_output=True,
        text=not isinstance(stdin, bytes),
        check=False,
    )


def wait_for_ssh(port, key, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        probe = run_ssh(
            key, port, "systemctl is-system-running --wait", "-o", "ConnectTimeout=3", "-o", "BatchMode=yes"
        )
        if probe.stdout.strip() in ("running", "degraded"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulated Spark on port {port} not up: {probe.stdout} {probe.stderr}")
        time.sleep(1)


def start(name, image=None, port=None, volumes=()):
    """Start a fresh instance (replacing one of the same name); return its Ansible host variables.

    `volumes`: podman -v specs (HOST:GUEST[:OPTIONS]) besides the test key."""
    image = image or os.environ["VOXTRAL_IMAGE_X86_64"]
    key = os.environ["VOXTRAL_SSH_KEY"]
    port = port or free_port()
    stop(name)
    podman(
        "run", "-d", "--name", name, "--hostname", name, "--systemd", "always", "--network", "slirp4netns",
        "-p", f"127.0.0.1:{port}:22", "--cap-add", "SYS_ADMIN",
        "-v", f"{key}.pub:/root/.ssh/authorized_keys:ro", *(f"-v{volume}" for volume in volumes),
        image, "/lib/systemd/systemd",
    )  # fmt: skip
    try:
        wait_for_ssh(port, key)
    except BaseException:
        stop(name)
        raise
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def stop(name):
    podman("rm", "-f", "-t", "2", name, check=False)


def reboot(name, hostvars):
    """Reboot an instance: its systemd shuts down (podman's stop signal, SIGRTMIN+3) and boots again in the same
    container; the disk is kept, /run (with every transient unit) is not. Returns its host variables with the
    SSH port as podman publishes it after the restart, once systemd has finished booting.
    """
    podman("restart", "-t", "30", name)
    published = podman("port", name, "22/tcp").stdout.split()[0]  # 127.0.0.1:PORT
    port = int(published.rsplit(":", 1)[1])
    wait_for_ssh(port, hostvars["ansible_ssh_private_key_file"])
    return {**hostvars, "ansible_port": port}


@contextmanager
def simulated_spark(name, image=None, port=None):
    """A fresh instance for the length of a with-block."""
    hostvars = start(name, image, port)
    try:
        yield hostvars
    finally:
        stop(name)


ROOT = Path(__file__).resolve().parent.parent
# What the built image holds (the doubles and the default profile's release): any change here rebuilds it.
BUILT_IMAGE_INPUTS = (
    "tests/simulated",
    "tests/fixtures",
    "tests/integration/playbooks/build.yml",
    "roles/vllm_omni_build",
    "plugins",
    "ansible.cfg",
)
BUILT_IMAGE = "localhost/voxtral-spark-built"


def _inputs_digest(base_image):
    digest = hashlib.sha256(base_image.encode())
    for entry in BUILT_IMAGE_INPUTS:
        path = ROOT / entry
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def built_image(workdir):
    """The simulated Spark image with the test doubles laid and the default profile's vllm-omni release built
    (tests/integration/playbooks/build.yml), so that a flight reuses it instead of building for about 90 s.

    Built once per change of its inputs (BUILT_IMAGE_INPUTS, the base image), one builder at a time: the lanes
    start together. The instance is stopped (systemd shuts down cleanly) and committed without its machine-id,
    journal or logs, so each instance made from it boots as a machine of its own."""
    import sys

    from playbook_runner import run_on

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from cache_lock import one_builder

    base = os.environ["VOXTRAL_IMAGE_X86_64"]
    tag = f"{BUILT_IMAGE}:{_inputs_digest(base)}"
    with one_builder(ROOT / ".cache" / "built-image"):
        if podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        name = "voxtral-image-builder"
        with prepared_sparks({"titan": name}, workdir, unbuilt={"titan"}) as hosts:
            built = run_on(hosts["titan"], "tests/integration/playbooks/build.yml", workdir)
            if built.status != "successful":
                raise RuntimeError(f"building the simulated Spark image failed:\n{built.stdout[-3000:]}")
            ssh(hosts["titan"], "systemctl stop gemma.service; : > /etc/machine-id; rm -rf /var/log/journal/* /tmp/*")
            podman("stop", "-t", "30", name)
            podman("commit", "--quiet", name, tag)
        # Earlier builds' images (other inputs) go; one still in use by a running instance stays.
        for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
            if old.startswith(f"{BUILT_IMAGE}:") and old != tag:
                podman("rmi", old, check=False)
        return tag


@contextmanager
def prepared_sparks(instances, workdir, unbuilt=()):
    """Simulated Sparks for a with-block, ready for a flight: {inventory name: podman name} → {name: hostvars}.

    The instances start side by side from the built image (built_image: the default profile's release is
    there, as after a first deploy's build) — those named in `unbuilt` from the bare test image, for a test of
    the build itself or of a host that never built —, then tests/simulated/prepare-spark.yml lays the test
    doubles on all of them in one run; each one's host variables carry tests/simulated/spark-vars.yml.
    """
    import yaml
    from playbook_runner import run_on_fleet

    settings = yaml.safe_load(SIMULATED_SPARK_VARS.read_text(encoding="utf-8"))
    built = built_image(workdir) if set(instances) - set(unbuilt) else None
    images = {name: None if name in unbuilt else built for name in instances}
    with ExitStack() as stack, ThreadPoolExecutor(len(instances)) as pool:
        started = {
            name: pool.submit(stack.enter_context, simulated_spark(podman_name, images[name]))
            for name, podman_name in instances.items()
        }
        hosts = {name: {**settings, **future.result()} for name, future in started.items()}
        prepared = run_on_fleet(hosts, "tests/simulated/prepare-spark.yml", workdir)
        if prepared.status != "successful":
            raise RuntimeError(f"preparing the simulated Sparks failed:\n{prepared.stdout[-3000:]}")
        yield hosts


def ssh(hostvars, command):
    """Run a shell command on the instance described by its Ansible host variables."""
    return run_ssh(hostvars["ansible_ssh_private_key_file"], hostvars["ansible_port"], command)


def gemma_answers(hostvars):
    """Whether the Gemma on the instance (127.0.0.1:8000) answers a chat completion with 200."""
    request = json.dumps({"model": "gemma-3-27b-it", "messages": [{"role": "user", "content": "hi"}]})
    result = ssh(
        hostvars,
        "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "
        f"-d '{request}' http://127.0.0.1:8000/v1/chat/completions",
    )
    return result.stdout.strip() == "200"


STATE_FILE = "/var/lib/voxtral-deploy/state.json"
LOCK_FILE = "/var/lib/voxtral-deploy/flight.lock"


class Spark:
    """One simulated Spark a test module flies: its host variables (fresh after a reboot), the playbooks run
    against it with the run's artifacts kept under the test's folder, and what the host says."""

    def __init__(self, name, hostvars, workdir):
        self.name = name
        self.hostvars = hostvars
        self.workdir = workdir
        self.artifacts = Path(workdir) / "artifacts"

    @classmethod
    @contextmanager
    def prepared(cls, name, workdir, unbuilt=False):
        """One prepared simulated Spark (inventory name titan, podman name `name`) for a with-block."""
        with prepared_sparks({"titan": name}, workdir, unbuilt={"titan"} if unbuilt else ()) as hosts:
            yield cls(name, hosts["titan"], workdir)

    def run(self, playbook, extravars=None, check=False, verbosity=0):
        from playbook_runner import run_on

        extravars = {"voxtral_artifacts_dir": str(self.artifacts), **(extravars or {})}
        return run_on(self.hostvars, playbook, self.workdir, extravars, check, verbosity)

    def sh(self, command):
        return ssh(self.hostvars, command)

    def state(self):
        """The host's flight state file ({} when there is none)."""
        result = self.sh(f"cat {STATE_FILE}")
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def is_active(self, unit):
        return self.sh(f"systemctl is-active {unit}").stdout.strip() == "active"

    def is_enabled(self, unit):
        return self.sh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"

    def reboot(self):
        self.hostvars = reboot(self.name, self.hostvars)

    def started_at(self, unit):
        """The unit's last start (monotonic µs): unchanged means it was never stopped or restarted."""
        return self.sh(f"systemctl show {unit} -p ActiveEnterTimestampMonotonic --value").stdout.strip()

    def reset_units(self):
        """Voxtral and the guard stopped (failed states cleared), Gemma enabled and running, no flight lock."""
        self.sh(
            "systemctl stop voxtral-tts.service voxtral-flight-guard.timer voxtral-flight-guard.service; "
            "systemctl reset-failed voxtral-tts.service voxtral-flight-guard.service voxtral-flight-guard.timer; "
            f"systemctl enable --now gemma.service; rm -f {LOCK_FILE}"
        )


def write_behaviour(hostvars, path, behaviour):
    """Tell a test double how to behave: its JSON behaviour file on the instance (read when it starts)."""
    put(hostvars, json.dumps(behaviour).encode(), path)


def put(hostvars, data: bytes, remote: str, mode: str = "0644"):
    """Write bytes to a file on the instance (its folder made), with the given mode."""
    quoted = shlex.quote(remote)
    command = f"mkdir -p {shlex.quote(os.path.dirname(remote))} && cat > {quoted} && chmod {mode} {quoted}"
    result = run_ssh(hostvars["ansible_ssh_private_key_file"], hostvars["ansible_port"], command, stdin=data)
    if result.returncode != 0:
        raise RuntimeError(f"writing {remote} failed: {result.stderr.decode(errors='replace')}")


CHATTERBOX_REFERENCE = "/opt/chatterbox-tts-api/voice-samples/samantha_movie_primary.wav"
CHATTERBOX_UNIT = """[Unit]
Description=Fake Chatterbox (test double of chatterbox-tts-api)

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/fake-chatterbox/fake_chatterbox.py --env-file /opt/chatterbox-tts-api/.env

[Install]
WantedBy=multi-user.target
"""


def install_fake_chatterbox(hostvars, reference: bytes, behaviour):
    """The TTS that serves today: the fake Chatterbox as chatterbox.service on 127.0.0.1:4123, cloning the WAV
    `reference` (installed at CHATTERBOX_REFERENCE), with its behaviour knobs; returns once it is healthy."""
    fake = Path(__file__).resolve().parent / "fixtures" / "fake_chatterbox.py"
    put(hostvars, fake.read_bytes(), "/usr/local/lib/fake-chatterbox/fake_chatterbox.py", "0755")
    put(hostvars, reference, CHATTERBOX_REFERENCE)
    put(hostvars, f"PORT=4123\nVOICE_SAMPLE_PATH={CHATTERBOX_REFERENCE}\n".encode(), "/opt/chatterbox-tts-api/.env")
    write_behaviour(hostvars, "/etc/fake-chatterbox/behaviour.json", behaviour)
    put(hostvars, CHATTERBOX_UNIT.encode(), "/etc/systemd/system/chatterbox.service")
    started = ssh(
        hostvars,
        "systemctl daemon-reload && systemctl enable --now chatterbox.service &&"
        " for i in $(seq 30); do curl -sf http://127.0.0.1:4123/health && exit 0; sleep 0.5; done; exit 1",
    )
    if started.returncode != 0:
        raise RuntimeError(f"the fake Chatterbox did not start: {started.stdout}{started.stderr}")


def kill_deploy_during_voxtrals_start(hostvars, workdir, extravars, timeout=600, coexisting=False):
    """Run deploy-voxtral.yml (ansible-playbook, in its own process group) and SIGKILL it during Voxtral's start
    (Gemma paused and stopped, or with `coexisting` still serving beside it; voxtral-tts.service activating);
    returns time.monotonic() at the kill.

    The fake Voxtral's start must take long enough to be caught (its behaviour's start_delay_s)."""
    from playbook_runner import ROOT

    workdir = Path(workdir)
    inventory = workdir / "inventory.yml"
    write_inventory(str(inventory), {"titan": hostvars})
    options = [arg for key, value in extravars.items() for arg in ("-e", f"{key}={value}")]
    with open(workdir / "deploy.log", "w", encoding="utf-8") as log:
        deploy = subprocess.Popen(
            ["ansible-playbook", "-i", str(inventory), "deploy-voxtral.yml", *options],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            units = ssh(hostvars, "systemctl is-active gemma.service voxtral-tts.service").stdout.split()
            if units == ["active" if coexisting else "inactive", "activating"]:
                state = json.loads(ssh(hostvars, f"cat {STATE_FILE}").stdout or "{}")
                if coexisting or state.get("gemma", {}).get("paused"):
                    break
            if deploy.poll() is not None:
                raise RuntimeError(f"the deploy ended first:\n{(workdir / 'deploy.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("Voxtral's start was never reached")
            time.sleep(1)
    finally:
        os.killpg(deploy.pid, signal.SIGKILL)
        deploy.wait()
    return time.monotonic()


def write_inventory(path, hostvars_by_host, extra_vars_file=None):
    """An inventory with the simulated Sparks in group `sparks`, their settings merged into host vars."""
    import yaml

    settings = {}
    if extra_vars_file:
        with open(extra_vars_file, encoding="utf-8") as handle:
            settings = yaml.safe_load(handle) or {}
    inventory = {"sparks": {"hosts": {host: {**settings, **hv} for host, hv in hostvars_by_host.items()}}}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)


def main(argv=None):
    """`up NAME --inventory FILE [--vars FILE]` starts an instance and leaves it running; `down NAME` removes it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("name")
    parser.add_argument("--host", default="titan", help="inventory name of the instance")
    parser.add_argument("--inventory", help="inventory file to write (up)")
    parser.add_argument("--vars", help="YAML file of host settings to merge into the inventory")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.action == "down":
        stop(args.name)
        return 0
    hostvars = start(args.name, port=args.port)
    if args.inventory:
        write_inventory(args.inventory, {args.host: hostvars}, args.vars)
    print(f"{args.name} is up on 127.0.0.1:{hostvars['ansible_port']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
