"""Hunting for keys: a flight with an API key for Gemma, Voxtral and the A/B endpoint, at -vvv, leaves none behind.

One simulated Spark (container voxtral-secrets). The fake Gemma and the fake Chatterbox (the A/B endpoint)
refuse requests without their key, each read from a 0600 file the test lays down; Voxtral gets its key
from the role (voxtral_service_api_key). In order, at verbosity 3: deploy-voxtral.yml (pause: Gemma's
baseline, pause and the one-step swap), benchmark-voxtral.yml (with the A/B), rollback-voxtral.yml (Gemma's
health poll and post-flight gate), flight.yml (auto, coexist here: Gemma gated under load; the verdict,
report and A/B pages), and a flight.yml whose deploy gate fails (rolled back, a no-go verdict). Then every
place a key could end up is searched for each key, raw or base64-encoded: the controller's output, every
file of the project's artifacts and of ansible-runner's, every regular file on the host (with its mode),
the host's journal and its command lines. A key may only be in ALLOWED, with a mode only root and the
service's user can read.
"""

import base64
import json
import secrets
import shlex
import sys

import pytest
from playbook_runner import ROOT
from sim_spark import CHATTERBOX_REFERENCE as REFERENCE
from sim_spark import Spark, install_fake_chatterbox, put, write_behaviour

sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "voices"))
from make_voices import make_voices

KEYS = {
    "gemma": f"gemma-key-{secrets.token_hex(12)}",
    "voxtral": f"voxtral-key-{secrets.token_hex(12)}",
    "ab": f"ab-key-{secrets.token_hex(12)}",
}
GEMMA_KEY_FILE = "/etc/fake-gemma/api-key"
CHATTERBOX_KEY_FILE = "/etc/fake-chatterbox/api-key"
VOXTRAL_ENV_FILE = "/var/lib/voxtral-tts/voxtral-tts.env"
# Where each key may be on the host: {path: (key, modes allowed)}. Only root and the service user read them.
ALLOWED = {
    VOXTRAL_ENV_FILE: ("voxtral", {"600", "640"}),
    GEMMA_KEY_FILE: ("gemma", {"600"}),
    CHATTERBOX_KEY_FILE: ("ab", {"600"}),
}
OWNERS = {"root", "voxtral"}
GEMMA_BEHAVIOUR = "/etc/fake-gemma/behaviour.json"
SETTINGS = {
    "gemma_api_key": KEYS["gemma"],
    "voxtral_service_api_key": KEYS["voxtral"],
    "tts_benchmark_ab_api_key": KEYS["ab"],
    "tts_benchmark_ab_url": "http://127.0.0.1:4123",
    "tts_benchmark_ab_reference_path": REFERENCE,
    # One answer per utterance is enough to carry the keys; the figures are test_verdict_flight's.
    "tts_benchmark_repetitions": 1,
    "tts_benchmark_warmup": 0,
    "tts_benchmark_concurrency": [1],
}
# (label, playbook, extra vars, the run's expected status), flown in this order.
FLIGHTS = [
    ("deploy", "deploy-voxtral.yml", {"voxtral_gemma_mode": "pause"}, "successful"),
    ("benchmark", "benchmark-voxtral.yml", {}, "successful"),
    ("rollback", "rollback-voxtral.yml", {}, "successful"),
    ("flight", "flight.yml", {}, "successful"),
    # A failed gate: its rescue, rollback and no-go verdict must not echo a key either.
    ("failed flight", "flight.yml", {"voxtral_gate_max_ttfa_p50_ms": 1}, "failed"),
]


def patterns(key):
    """The key as text and as it reads inside base64 at each of the three byte alignments (a slurp's content)."""
    found = [key]
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + key.encode()).decode()
        # The first characters also carry the padding's bits, the last four the bytes after the key.
        first = -(-8 * offset // 6)
        found.append(encoded[first:-4])
    return found


PATTERNS = {name: patterns(key) for name, key in KEYS.items()}


def sightings(text):
    """[(key name, offset, a short excerpt around it with every key masked)]: each key's first sighting in `text`."""
    found = []
    for name, forms in PATTERNS.items():
        at = min((i for i in (text.find(form) for form in forms) if i >= 0), default=-1)
        if at >= 0:
            found.append((name, at, " ".join(masked(text[max(0, at - 160) : at + 100]).split())))
    return found


def keys_in(text):
    """{key name: an excerpt around its first sighting (the keys masked)} of what `text` holds."""
    return {name: excerpt for name, _, excerpt in sightings(text)}


def masked(text):
    """`text` with every form of every key replaced by <NAME KEY>: a failing test's report leaks none either."""
    for name, forms in PATTERNS.items():
        for form in forms:
            text = text.replace(form, f"<{name.upper()} KEY>")
    return text


def task_at(stdout, offset):
    """The task whose output holds `offset` in a run's stdout (its last TASK [...] heading before it)."""
    heading = stdout.rfind("TASK [", 0, offset)
    return stdout[heading : stdout.find("]", heading) + 1] if heading >= 0 else "(before the first task)"


def report(leaks, shown=12):
    """The first leaks, one a line, and how many more (a leaking task leaves one in each of its events)."""
    more = f"\n... and {len(leaks) - shown} more" if len(leaks) > shown else ""
    return "\n".join(leaks[:shown]) + more


def grep_arguments():
    return " ".join(f"-e {shlex.quote(form)}" for forms in PATTERNS.values() for form in forms)


class Hunt(Spark):
    def install_keyed_doubles(self, workdir):
        """The fake Gemma and the fake Chatterbox each wanting its key, read from a 0600 file."""
        put(self.hostvars, KEYS["gemma"].encode(), GEMMA_KEY_FILE, "0600")
        behaviour = json.loads(self.sh(f"cat {GEMMA_BEHAVIOUR}").stdout)
        write_behaviour(self.hostvars, GEMMA_BEHAVIOUR, {**behaviour, "api_key_file": GEMMA_KEY_FILE})
        [samantha, *_] = make_voices(workdir / "voices")
        put(self.hostvars, KEYS["ab"].encode(), CHATTERBOX_KEY_FILE, "0600")
        chatterbox = {"first_byte_ms": 50, "rtf": 0.05, "api_key_file": CHATTERBOX_KEY_FILE}
        install_fake_chatterbox(self.hostvars, samantha.read_bytes(), chatterbox)
        # Without its key, each double refuses: a green flight proves every key was sent.
        refused = "curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' "
        assert self.sh(refused + "http://127.0.0.1:8000/v1/chat/completions").stdout == "401"
        assert self.sh(refused + "http://127.0.0.1:4123/v1/audio/speech").stdout == "401"

    def files_holding_keys(self):
        """{path: (mode, owner, {key names})} of every regular file on the host holding a key (not /proc, /sys)."""
        listed = self.sh(
            "find / /run /tmp /dev/shm -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -print0"
            f" | xargs -0 grep -lF {grep_arguments()} 2>/dev/null | sort -u"
        ).stdout.split("\n")
        found = {}
        for path in filter(None, listed):
            mode, owner = self.sh(f"stat -c '%a %U' {shlex.quote(path)}").stdout.split()
            held = {
                name
                for name, forms in PATTERNS.items()
                if self.sh(f"grep -qF {' '.join('-e ' + shlex.quote(f) for f in forms)} {shlex.quote(path)}").returncode
                == 0
            }
            found[path] = (mode, owner, held)
        return found


@pytest.fixture(scope="module")
def hunt(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("secrets")
    with Hunt.prepared("voxtral-secrets", workdir) as spark:
        spark.install_keyed_doubles(workdir)
        runs = {}
        for label, playbook, extravars, _ in FLIGHTS:
            runs[label] = spark.run(playbook, {**SETTINGS, **extravars}, verbosity=3)
            if label == "deploy":
                # Voxtral serving: every process's command line, as `ps` shows them to any user.
                spark.command_lines = spark.sh("ps -eo user=,args=").stdout
        spark.runs = runs
        spark.host_files = spark.files_holding_keys()
        spark.journal = spark.sh(f"journalctl --no-pager -o export | grep -aF {grep_arguments()} | cut -c1-400").stdout
        yield spark


def test_the_flights_ran_with_every_key(hunt):
    for label, playbook, _, expected in FLIGHTS:
        run = hunt.runs[label]
        assert run.status == expected, f"{label} ({playbook}): {masked(run.stdout[-3000:])}"
    # The failing flight failed where it was told to: its deploy gate, with a message that says so.
    failed = hunt.runs["failed flight"].failure_messages()
    assert failed and failed[-1].startswith("NO-GO: phase deploy failed: "), failed


def test_no_key_in_the_controller_output(hunt):
    leaks = [
        f"{label}: {name} key in {task_at(run.stdout, at)}: {excerpt}"
        for label, run in hunt.runs.items()
        for name, at, excerpt in sightings(run.stdout)
    ]
    assert not leaks, report(leaks)


def test_no_key_in_a_failure_message(hunt):
    leaks = [
        f"{label}: {name} key in the failure of {task!r}: {excerpt}"
        for label, run in hunt.runs.items()
        for _, task, message in run.failures()
        for name, excerpt in keys_in(str(message)).items()
    ]
    assert not leaks, report(leaks)


def artifact_files(hunt):
    """Every file of the project's artifacts and of ansible-runner's artifact folders (its inputs, env/ and
    inventory/, are the test's own)."""
    yield from (path for path in hunt.artifacts.rglob("*") if path.is_file())
    for run in hunt.runs.values():
        yield from (path for path in run.artifact_dir.rglob("*") if path.is_file())


def test_no_key_in_an_artifact(hunt):
    assert (hunt.artifacts / "titan").is_dir()
    written = {path.name for path in hunt.artifacts.rglob("*")}
    # The flight's records are among them: the state, the verdict, the report, the A/B pages.
    assert {"state.json", "verdict.json", "report.md", "ab.html", "ab.md"} <= written, sorted(written)
    leaks = [
        f"{path}: {name} key: {excerpt}"
        for path in artifact_files(hunt)
        for name, excerpt in keys_in(path.read_bytes().decode("utf-8", errors="replace")).items()
    ]
    assert not leaks, report(leaks)


def test_on_the_host_a_key_is_only_in_its_own_file_readable_by_root_or_the_service(hunt):
    leaks = [
        f"{path} (mode {mode}, owner {owner}) holds the {', '.join(sorted(held))} key"
        for path, (mode, owner, held) in sorted(hunt.host_files.items())
        if path not in ALLOWED or held != {ALLOWED[path][0]} or mode not in ALLOWED[path][1] or owner not in OWNERS
    ]
    assert not leaks, report(leaks)
    # The Voxtral key is where the service reads it (else the green flight above would not have been let in).
    assert VOXTRAL_ENV_FILE in hunt.host_files


def test_no_key_in_the_journal(hunt):
    assert hunt.journal == "", masked(hunt.journal)


def test_no_key_on_a_command_line(hunt):
    assert "vllm-omni serve" in hunt.command_lines, masked(hunt.command_lines)
    leaks = keys_in(hunt.command_lines)
    assert not leaks, leaks


def test_the_keys_are_not_in_the_units(hunt):
    shown = hunt.sh("systemctl cat voxtral-tts.service gemma.service; systemctl show voxtral-tts.service").stdout
    assert "EnvironmentFile=" in shown
    assert not keys_in(shown), keys_in(shown)
