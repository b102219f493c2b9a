"""What voxtral_service leaves on a simulated Spark: a hardened voxtral-tts.service that really serves."""

import base64
import io
import json
import re
import wave

import pytest

UNIT = "voxtral-tts.service"
URL = "http://127.0.0.1:8091"
SERVED = "mistralai/Voxtral-4B-TTS-2603"


def props(host, *names):
    """Unit properties; a property systemd prints on several lines (DeviceAllow=) joined with ", "."""
    out = host.check_output(f"systemctl show {UNIT} " + " ".join(f"--property={n}" for n in names))
    values = {}
    for line in out.splitlines():
        name, value = line.split("=", 1)
        values[name] = f"{values[name]}, {value}" if name in values else value
    return values


def main_pid(host):
    pid = int(props(host, "MainPID")["MainPID"])
    assert pid > 0
    return pid


def test_unit_active_and_enabled(host):
    service = host.service(UNIT)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("User", "voxtral"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "tmpfs"),  # the weights are in root's HF cache: bound back read-only
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "no"),
        ("DevicePolicy", "closed"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("UMask", "0077"),
        ("MemoryDenyWriteExecute", "no"),
        ("KillMode", "mixed"),
        ("OOMScoreAdjust", "1000"),
        ("OOMPolicy", "kill"),
    ],
)
def test_hardening_property(host, name, value):
    assert props(host, name)[name] == value


def test_address_families(host):
    assert set(props(host, "RestrictAddressFamilies")["RestrictAddressFamilies"].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
    }


def test_devices_filesystem_and_syscalls(host):
    p = props(host, "DeviceAllow", "BindReadOnlyPaths", "SystemCallFilter", "IPAddressDeny", "IPAddressAllow")
    for device in ("/dev/nvidiactl rw", "/dev/nvidia0 rw", "/dev/nvidia-uvm rw", "char-nvidia-caps r"):
        assert device in p["DeviceAllow"]
    assert "/root/.cache/huggingface/hub/models--mistralai--Voxtral-4B-TTS-2603" in p["BindReadOnlyPaths"]
    assert p["SystemCallFilter"]  # an allow list (systemd expands @system-service)
    assert set(p["IPAddressDeny"].split()) == {"::/0", "0.0.0.0/0"}
    assert set(p["IPAddressAllow"].split()) == {"::1/128", "127.0.0.0/8"}


def test_timeouts_above_the_server_timeouts(host):
    p = props(host, "TimeoutStartUSec", "TimeoutStopUSec", "StartLimitBurst")
    assert p["TimeoutStartUSec"] == "45s"  # init timeout 30 s + 15 s margin
    assert p["TimeoutStopUSec"] == "20s"  # shutdown timeout 5 s + 15 s margin
    assert p["StartLimitBurst"] == "3"


def test_exposure_at_most_2(host):
    out = host.run(f"systemd-analyze security --no-pager {UNIT}").stdout
    score = float(re.search(r"Overall exposure level for voxtral-tts\.service: (\d+\.\d+)", out).group(1))
    print(f"\nvoxtral-tts.service exposure (live, in the instance): {score}")
    assert score <= 2.0, out
    rendered = host.run(f"systemd-analyze security --offline=true --no-pager /etc/systemd/system/{UNIT}").stdout
    offline = float(re.search(r"Overall exposure level for voxtral-tts\.service: (\d+\.\d+)", rendered).group(1))
    print(f"voxtral-tts.service exposure (offline, rendered file): {offline}")
    assert offline <= 2.0, rendered


def test_process_sandbox(host):
    pid = main_pid(host)
    status = host.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert re.search(r"^CapBnd:\s+0+$", status, re.M)
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "voxtral"
    environ = host.file(f"/proc/{pid}/environ").content.split(b"\0")
    assert b"HF_HUB_OFFLINE=1" in environ
    assert b"HOME=/var/cache/voxtral-tts" in environ


def test_serve_command(host):
    exec_start = props(host, "ExecStart")["ExecStart"]
    assert "/opt/vllm-omni/releases/0.30.0-fake00000030-00000000/venv/bin/vllm-omni" in exec_start
    assert "/root/.cache/huggingface/hub/models--mistralai--Voxtral-4B-TTS-2603/snapshots/" in exec_start
    for arg in ("--omni", "--tokenizer-mode mistral", "--deploy-config /var/lib/voxtral-tts/voxtral_tts.yaml",
                "--host 127.0.0.1", "--port 8091"):  # fmt: skip
        assert arg in exec_start


def test_listens_on_loopback_only(host):
    listeners = host.check_output("ss -Hltn 'sport = :8091'")
    assert "127.0.0.1:8091" in listeners
    assert "0.0.0.0:8091" not in listeners and "*:8091" not in listeners


def test_files_and_modes(host):
    expected = {
        "/var/lib/voxtral-tts": ("root", "voxtral", 0o750),
        "/var/lib/voxtral-tts/voxtral_tts.yaml": ("root", "voxtral", 0o640),
        "/var/lib/voxtral-tts/voxtral-tts.env": ("root", "root", 0o600),
        "/var/lib/voxtral-tts/voices/samantha_movie_primary.wav": ("root", "voxtral", 0o640),
        "/var/cache/voxtral-tts": ("voxtral", "voxtral", 0o700),
    }
    for path, (user, group, mode) in expected.items():
        f = host.file(path)
        assert (f.user, f.group, f.mode) == (user, group, mode), path
    assert len(host.file("/var/lib/voxtral-tts/voices").listdir()) == 3


def test_rendered_config_has_the_settings(host):
    config = host.file("/var/lib/voxtral-tts/voxtral_tts.yaml").content_string
    assert config.startswith("#")
    assert re.search(r"^stages:", config, re.M)
    assert "gpu_memory_utilization: 0.1" in config and "gpu_memory_utilization: 0.05" in config
    assert "max_model_len: 2048" in config


def test_health_and_models(host):
    assert host.check_output(f"curl -s {URL}/health") == '{"status": "healthy"}'
    models = json.loads(host.check_output(f"curl -s {URL}/v1/models"))
    assert [m["id"] for m in models["data"]] == [SERVED]


def test_speech_returns_a_valid_wav(host):
    body = json.dumps({"model": SERVED, "input": "Hello from the simulated Spark.", "voice": "neutral_female"})
    out = host.check_output(
        f"curl -sf -X POST -H 'Content-Type: application/json' -d '{body}' {URL}/v1/audio/speech | base64 -w0"
    )
    with wave.open(io.BytesIO(base64.b64decode(out))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() > 24000  # more than a second for 31 characters


def test_start_up_synthesis_was_recorded(host):
    result = json.loads(host.file("/var/lib/voxtral-tts/smoke.json").content_string)
    assert result["passed"] is True
    assert result["ttfb_ms"]["p50"] >= 80  # the fake's first-audio delay
    assert result["rtf"]["p50"] < 1.0
