"""Bad input is one clear error before anything changes: a table of (variable, bad value) against deploy-voxtral.yml.

Every row must be refused before the flight lock, with one failure message that names the variable, while
Gemma keeps running (its unit's ActiveEnterTimestampMonotonic unchanged: not even restarted) and nothing on
the host is written. One prepared simulated Spark serves every row, and no row can build anything: another
run's lock is in place throughout, so a value that slipped through validation would stop at the lock (and
fail its row on the message) instead of building or pausing Gemma.
"""

import json
import time

import pytest
from playbook_runner import run_on
from sim_spark import gemma_answers, prepared_sparks, ssh

LOCK = "/var/lib/voxtral-deploy/flight.lock"
# Everything a deploy writes on the host lives below these.
WRITTEN = "/var/lib/voxtral-deploy /var/lib/voxtral-tts /opt/vllm-omni /etc/systemd/system /usr/local/libexec"
MARKER = "/run/bad-input-marker"
HELD = {
    "run_id": "bad-input-table",
    "owner": "table@controller",
    "purpose": "deploy-voxtral",
    "acquired_at": "2026-12-01T00:00:00Z",
}

# (variable, bad value, what the one message must also say). Strings stand for what `-e name=value` passes.
BAD_VALUES = [
    # the flight's own settings (roles/voxtral)
    ("voxtral_gate_requests", "0", "allowed: a count of at least 1"),
    ("voxtral_gate_requests", "many", "int"),
    ("voxtral_gate_warmup", -1, "allowed: a count of 0 or more"),
    ("voxtral_gate_timeout", 0, "allowed: seconds above 0"),
    ("voxtral_gate_max_ttfa_p50_ms", 0, "allowed: milliseconds above 0"),
    ("voxtral_gate_max_rtf_p50", -1, "allowed: a real-time factor above 0"),
    ("voxtral_gate_text", " ", "is empty"),
    # unbounded settings, bounded (issue 26): paused, the gate's every request is Gemma's outage
    ("voxtral_gate_requests", 100000, "allowed: at most 100"),
    ("voxtral_gate_text", "x" * 20000, "20000 characters; allowed: at most 1000"),
    ("voxtral_gemma_mode", "bogus", "must be one of: pause, coexist"),
    ("voxtral_state_path", "state.json", "allowed: an absolute path"),
    # Voxtral (roles/voxtral_service): settings, and what only the host can tell
    ("voxtral_service_voice", "nobody_male", "allowed: a preset voice of mistralai/Voxtral-4B-TTS-2603"),
    ("voxtral_service_port", 70000, "allowed: a TCP port"),
    # the key's characters, judged with the other settings (the unit's EnvironmentFile= quoting)
    ("voxtral_service_api_key", 'k3y"quoted', "contains a double quote, a backslash or a newline"),
    ("voxtral_service_api_key", "k3y\nsecond line", "contains a double quote, a backslash or a newline"),
    ("voxtral_service_init_timeout", 0, "allowed: seconds above 0"),
    ("voxtral_service_hf_home", "/srv/no-such-cache", "Voxtral weights missing"),
    # beyond loopback without a key: open to anyone who reaches the port, unless voxtral_service_allow_open_bind
    ("voxtral_service_host", "0.0.0.0", "voxtral_service_api_key is empty"),
    # opted in to an open bind, the unit must still name who may connect (IPAddressAllow=)
    ("voxtral_service_host", "0.0.0.0", "only lets localhost in", {"voxtral_service_allow_open_bind": True}),
    # Gemma (roles/gemma): settings, and that its unit exists on the host
    ("gemma_unit", "gemma-typo.service", "has no such unit"),
    ("gemma_mode", "kubernetes", "must be one of: systemd, container"),
    ("gemma_gate_requests", 0, "allowed: a count of at least 1"),
    ("gemma_post_flight_max_ratio", 0.5, "allowed: a ratio of at least 1"),
    ("gemma_url", "gemma.lan:8000", "allowed: an http(s) base URL"),
    # the dead-man's switch, the host, the build
    ("gemma_post_flight_max_ratio_override", 0.9, "allowed: null or a ratio of at least 1"),
    ("flight_guard_deadline", "soon", "systemd time spans"),
    ("flight_guard_unit_name", "guard.timer", "allowed: a unit name without .service or .timer"),
    # a heartbeat timeout the guard's looks cannot judge (two looks per timeout at least)
    ("flight_guard_heartbeat_timeout", 15, "at least twice flight_guard_heartbeat_poll (20 s)"),
    ("flight_guard_heartbeat_poll", 0, "flight_guard_heartbeat_poll is 0; allowed: seconds, at least 1"),
    ("preflight_min_free_disk_gib", 100000, "need 100000 GiB"),
    ("vllm_omni_build_profile", "gb10-9.99", "gb10-9.99"),
]


def short(value):
    """A value as a test id shows it: one line, at most 24 characters."""
    text = repr(value) if isinstance(value, str) and "\n" in value else str(value)
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} chars)"


# A row may name other settings it is bad with (a fourth column of extra vars, set beside the bad value).
ROWS = [(*row, {}) if len(row) == 3 else row for row in BAD_VALUES]


@pytest.fixture(scope="module")
def table_spark(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bad-input")
    with prepared_sparks({"titan": "voxtral-bad-input"}, workdir) as hosts:
        hostvars = hosts["titan"]
        lock = json.dumps({**HELD, "acquired_epoch": int(time.time())})
        ssh(hostvars, f"mkdir -p /var/lib/voxtral-deploy && echo '{lock}' > {LOCK}")
        yield hostvars, workdir


def gemma_started_at(hostvars):
    return ssh(hostvars, "systemctl show gemma.service -p ActiveEnterTimestampMonotonic --value").stdout.strip()


@pytest.mark.parametrize(
    ("variable", "value", "expected", "others"),
    ROWS,
    ids=[f"{v}={short(x)}" + "".join(f",{name}={other}" for name, other in o.items()) for v, x, _, o in ROWS],
)
def test_bad_value_is_refused_before_the_lock_with_gemma_untouched(table_spark, variable, value, expected, others):
    hostvars, workdir = table_spark
    lock_before = ssh(hostvars, f"cat {LOCK}").stdout
    started_at = gemma_started_at(hostvars)
    assert started_at not in ("", "0"), "Gemma must be running before the row"
    ssh(hostvars, f"touch {MARKER}")

    run = run_on(hostvars, "deploy-voxtral.yml", workdir, {**others, variable: value})

    assert run.status == "failed", run.stdout[-3000:]
    [message] = run.failure_messages()
    assert variable in message and expected in message, message
    assert "flight lock" not in message, f"{variable} was not refused before the lock: {message}"
    assert gemma_started_at(hostvars) == started_at, "Gemma was stopped or restarted"
    assert gemma_answers(hostvars)
    written = ssh(hostvars, f"find {WRITTEN} -newer {MARKER} 2>/dev/null").stdout.split()
    assert written == [], f"written on the host: {written}"
    assert ssh(hostvars, f"cat {LOCK}").stdout == lock_before
    assert run.changed_count() == 0
