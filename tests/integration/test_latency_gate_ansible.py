"""The latency gate run by Ansible itself (ansible-runner, the repository's ansible.cfg), on local servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The threaded test servers live beside the unit tests.
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from http_fixtures import HTTPTestServer, fixed_delay  # noqa: E402

BIN = Path(sys.executable).parent
SECRET = "gate-secret-7f3a9c"


def _playbook(fast_url: str, slow_url: str, out_dir: Path) -> list:
    gate = "voxtral.deploy.latency_gate"  # the collection's, by FQCN
    return [
        {
            "name": "Latency gate through Ansible",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "A gate that passes and saves its result",
                    gate: {
                        "url": fast_url,
                        "method": "POST",
                        "body_json": {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]},
                        "api_key": SECRET,
                        "requests": 5,
                        "warmup": 1,
                        "max_p50_ms": 1000,
                        "save_to": str(out_dir / "pass.json"),
                    },
                    "register": "passing",
                },
                {
                    "name": "A gate that breaks the baseline rule",
                    gate: {
                        "url": slow_url,
                        "requests": 3,
                        "warmup": 0,
                        "baseline_p50_ms": "{{ 20 }}",  # templated numbers arrive as numbers
                        "save_to": str(out_dir / "fail.json"),
                    },
                    "register": "failing",
                    "ignore_errors": True,
                },
                {
                    "name": "A gate in check mode",
                    gate: {"url": fast_url, "requests": 2, "save_to": str(out_dir / "check.json")},
                    "check_mode": True,
                    "register": "checked",
                },
                {
                    "name": "What later tasks read",
                    "ansible.builtin.assert": {
                        "that": [
                            "passing is changed",
                            "passing.passed",
                            "passing.total_ms.p50 < 1000",
                            "failing is failed",
                            "not failing.passed",
                            "failing.threshold_ms == 40.0",
                            "failing.msg is search('× baseline 20.0 ms')",
                            "checked is not changed",
                            "checked.saved_to is none",
                            "checked.ok == 2",
                        ]
                    },
                },
            ],
        }
    ]


@pytest.fixture
def ansible_env(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": "/tmp/.ansible-latency-gate-test",
        "ANSIBLE_NOCOLOR": "1",
    }


def test_gate_runs_through_ansible_playbook(tmp_path, ansible_env):
    ansible_runner = pytest.importorskip("ansible_runner")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "runner").mkdir()
    routes = {"/v1/chat/completions": fixed_delay(5), "/slow": fixed_delay(60)}
    with HTTPTestServer(routes) as server:
        playbook = tmp_path / "gate.yml"
        playbook.write_text(yaml.safe_dump(_playbook(server.url("/v1/chat/completions"), server.url("/slow"), out_dir)))
        inventory = tmp_path / "hosts.ini"
        inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        run = ansible_runner.run(
            private_data_dir=str(tmp_path / "runner"),
            playbook=str(playbook),
            inventory=str(inventory),
            envvars=ansible_env,
            quiet=True,
        )
        sent = server.requests
    stdout = run.stdout.read()
    assert run.rc == 0, stdout

    outcomes, results = {}, {}
    for event in run.events:
        if event["event"] in ("runner_on_ok", "runner_on_failed"):
            outcomes[event["event_data"]["task"]] = event["event"]
            results[event["event_data"]["task"]] = event["event_data"]["res"]
    passing = results["A gate that passes and saves its result"]
    assert outcomes["A gate that passes and saves its result"] == "runner_on_ok"
    assert passing["passed"] is True and passing["requests"] == 5 and passing["ok"] == 5
    assert passing["saved_to"] == str(out_dir / "pass.json")
    saved = json.loads((out_dir / "pass.json").read_text(encoding="utf-8"))
    assert saved["total_ms"] == passing["total_ms"]

    failing = results["A gate that breaks the baseline rule"]
    p50 = failing["total_ms"]["p50"]
    assert outcomes["A gate that breaks the baseline rule"] == "runner_on_failed"
    assert failing["msg"] == f"p50 {p50:.1f} ms > 40.0 ms (2.0 × baseline 20.0 ms)"
    assert failing["baseline_ratio"] == pytest.approx(p50 / 20.0, abs=1e-4)
    assert json.loads((out_dir / "fail.json").read_text(encoding="utf-8"))["passed"] is False
    assert f"p50 {p50:.1f} ms > 40.0 ms" in stdout  # a person reading the play output sees the numbers

    assert not (out_dir / "check.json").exists()

    # The api_key went to the server as a bearer token and nowhere into Ansible's output.
    assert any(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in sent)
    assert SECRET not in stdout
    assert SECRET not in json.dumps(list(run.events))


def test_ansible_doc_renders(ansible_env):
    env = {**os.environ, **ansible_env}
    args = [str(BIN / "ansible-doc")]
    text = subprocess.run(
        [*args, "voxtral.deploy.latency_gate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert text.returncode == 0, text.stderr
    assert "[ERROR]" not in text.stderr and "[WARNING]" not in text.stderr, text.stderr
    for expected in (
        "max_consecutive_errors",
        "baseline_p50_ms",
        "inclusive method",
        "EXAMPLES",
        "RETURN VALUES",
    ):
        assert expected in text.stdout
    as_json = subprocess.run(
        [*args, "--json", "voxtral.deploy.latency_gate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    doc = json.loads(as_json.stdout)["voxtral.deploy.latency_gate"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert "failures" in doc["return"]
