"""chatterbox-voice.yml on a simulated Spark serving the fake Chatterbox (tests/fixtures/fake_chatterbox.py).

One instance for the module; each case starts from the fixture as installed (Chatterbox serving an older
reference) and checks what the role did through the fake's own answers: /health names the SHA-256 of the
reference it loaded at start, so a restart with the new reference shows there.
"""

import hashlib
import json
import shlex
import subprocess
import sys

import pytest
from playbook_runner import ROOT, run_on
from sim_spark import simulated_spark, ssh

sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "voices"))
from make_voices import write_tone

APP = "/opt/chatterbox-tts-api"
ENV_FILE = f"{APP}/.env"
OLD_REFERENCE = f"{APP}/voice-sample.wav"
NEW_REFERENCE = f"{APP}/voice-samples/samantha_movie_primary.wav"
UNIT = f"""[Unit]
Description=Fake Chatterbox (test double of chatterbox-tts-api)

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/fake-chatterbox/fake_chatterbox.py --env-file {ENV_FILE}

[Install]
WantedBy=multi-user.target
"""


def put(hostvars, data: bytes, remote: str, mode: str = "0644"):
    """Write bytes to a file on the instance (over the test's own SSH, not through the role)."""
    folder = shlex.quote(remote.rsplit("/", 1)[0])
    command = f"mkdir -p {folder} && cat > {shlex.quote(remote)} && chmod {mode} {shlex.quote(remote)}"
    subprocess.run(
        ["ssh", "-i", hostvars["ansible_ssh_private_key_file"], "-p", str(hostvars["ansible_port"]),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "root@127.0.0.1", command],
        input=data, check=True, capture_output=True,
    )  # fmt: skip


class Chatterbox:
    def __init__(self, hostvars, workdir):
        self.hostvars = hostvars
        self.workdir = workdir
        self.samantha = workdir / "samantha_movie_primary.wav"
        write_tone(self.samantha, 183.2, 0.5)
        self.old = workdir / "voice-sample.wav"
        write_tone(self.old, 120.0, 0.5)

    def sh(self, command):
        return ssh(self.hostvars, command)

    def run(self, extravars=None, check=False):
        settings = {
            "chatterbox_voice_reference_src": str(self.samantha),
            "chatterbox_voice_health_timeout": 20,
            "chatterbox_voice_poll_interval": 1,
            **(extravars or {}),
        }
        return run_on(self.hostvars, "chatterbox-voice.yml", self.workdir, settings, check)

    def health(self):
        result = self.sh("curl -s http://127.0.0.1:4123/health")
        return json.loads(result.stdout) if result.returncode == 0 and result.stdout else {}

    def main_pid(self):
        return self.sh("systemctl show -p MainPID --value chatterbox.service").stdout.strip()

    def install(self):
        """The fixture as a Spark has it today: Chatterbox serving an older reference."""
        self.sh(f"systemctl stop chatterbox.service; rm -rf {APP}")
        put(self.hostvars, (ROOT / "tests/fixtures/fake_chatterbox.py").read_bytes(),
            "/usr/local/lib/fake-chatterbox/fake_chatterbox.py", "0755")  # fmt: skip
        put(self.hostvars, self.old.read_bytes(), OLD_REFERENCE)
        put(
            self.hostvars,
            f"# chatterbox-tts-api settings\nPORT=4123\nVOICE_SAMPLE_PATH={OLD_REFERENCE}\n".encode(),
            ENV_FILE,
        )
        put(self.hostvars, UNIT.encode(), "/etc/systemd/system/chatterbox.service")
        self.sh(
            "systemctl daemon-reload && systemctl reset-failed chatterbox.service;"
            " systemctl enable --now chatterbox.service;"
            " for i in $(seq 30); do curl -sf http://127.0.0.1:4123/health && break; sleep 0.5; done"
        )
        assert self.health()["voice_sample"] == OLD_REFERENCE


@pytest.fixture(scope="module")
def chatterbox(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chatterbox")
    with simulated_spark("voxtral-chatterbox-voice") as hostvars:
        yield Chatterbox(hostvars, workdir)


@pytest.fixture
def fresh(chatterbox):
    chatterbox.install()
    return chatterbox


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_swap_installs_the_reference_restarts_chatterbox_proves_it_and_is_idempotent(fresh):
    run = fresh.run()
    assert run.status == "successful", run.stdout[-3000:]
    assert fresh.sh(f"sha256sum {NEW_REFERENCE}").stdout.split()[0] == sha256(fresh.samantha)
    assert fresh.sh(f"grep '^VOICE_SAMPLE_PATH=' {ENV_FILE}").stdout.strip() == f"VOICE_SAMPLE_PATH={NEW_REFERENCE}"
    # The restarted Chatterbox loaded the new reference; the other settings and a backup are kept.
    health = fresh.health()
    assert (health["voice_sample"], health["voice_sample_sha256"]) == (NEW_REFERENCE, sha256(fresh.samantha))
    assert fresh.sh(f"grep -c '^PORT=4123' {ENV_FILE}").stdout.strip() == "1"
    assert fresh.sh(f"ls {APP}/.env.*~").returncode == 0
    [proof] = run.ok_results("Note the proof")
    assert proof["ansible_facts"]["chatterbox_voice_proof"]["content_type"] == "audio/wav"
    assert int(proof["ansible_facts"]["chatterbox_voice_proof"]["bytes"]) > 44
    assert fresh.sh("ls /tmp/chatterbox-voice.* 2>/dev/null").stdout == ""
    # Again: nothing changes, Chatterbox is not restarted, and the proof runs again.
    pid = fresh.main_pid()
    again = fresh.run()
    assert again.status == "successful", again.stdout[-3000:]
    assert again.changed_count() == 0
    assert fresh.main_pid() == pid
    assert len(again.ok_results("Note the proof")) == 1


def test_check_mode_reports_the_swap_and_changes_nothing(fresh):
    pid = fresh.main_pid()
    run = fresh.run(check=True)
    assert run.status == "successful", run.stdout[-3000:]
    assert run.changed_count() >= 2  # the reference and the config line
    assert fresh.sh(f"test -e {NEW_REFERENCE}").returncode == 1
    assert fresh.health()["voice_sample"] == OLD_REFERENCE
    assert fresh.main_pid() == pid


def test_a_reference_chatterbox_cannot_load_fails_with_its_journal(fresh):
    broken = fresh.workdir / "broken.wav"
    broken.write_bytes(b"not a wav at all")
    run = fresh.run({"chatterbox_voice_reference_src": str(broken), "chatterbox_voice_health_timeout": 6})
    assert run.status == "failed"
    message = run.failure_messages()[-1]  # the health wait failed first, inside the block the role rescues
    assert message.startswith(f"Chatterbox (chatterbox.service) did not prove the reference {NEW_REFERENCE}")
    assert "cannot load the voice sample" in message


def test_a_missing_config_file_is_refused_before_anything_changes(fresh):
    run = fresh.run({"chatterbox_voice_config_file": f"{APP}/missing.env"})
    assert run.status == "failed"
    [message] = run.failure_messages()
    assert f"Chatterbox's config file {APP}/missing.env does not exist" in message
    assert fresh.sh(f"test -e {NEW_REFERENCE}").returncode == 1
