"""A fleet: deploy-voxtral.yml on two simulated Sparks, where the second one's Voxtral is too slow.

The inventory lists spark-1, spark-2 and spark-3. spark-3 is never started (its port is closed): a
rollout that stops where it should never contacts it, and one that goes on shows it unreachable.
The tests run in order and build on each other:
1. serial 1: spark-1 serves Voxtral, spark-2 fails its gate and is back on Gemma, the rollout stops
   there (spark-3 untouched) and the play fails naming spark-2 and why; per-host artifacts;
2. both Sparks in one batch, max_fail_percentage 0: both fly at once, spark-1's flight is not cut short
   by spark-2's failure, spark-2 is rolled back, and the batch's failure stops the rollout;
3. the same batch with max_fail_percentage 50: one failed host of two is not more than 50 %, so the
   rollout goes on to the next batch (spark-3, unreachable).
"""

import json

import pytest
from playbook_runner import run_on_fleet
from sim_spark import free_port, gemma_answers, prepared_sparks, ssh, write_behaviour

SPARKS = ("spark-1", "spark-2")
NEVER_STARTED = "spark-3"
STATE = "/var/lib/voxtral-deploy/state.json"
LOCK = "/var/lib/voxtral-deploy/flight.lock"
VOXTRAL_BEHAVIOUR = "/etc/fake-vllm-omni/behaviour.json"
TOO_SLOW = {"first_audio_ms": 2500}  # the gate allows a p50 of 1500 ms
GATE_FAILED = "time to first byte p50"


class Fleet:
    def __init__(self, hosts, workdir):
        self.hosts = hosts
        self.workdir = workdir
        self.artifacts = workdir / "artifacts"
        self.inventory = {
            **hosts,
            NEVER_STARTED: {**hosts[SPARKS[0]], "ansible_port": free_port()},
        }

    def run(self, playbook, extravars=None, hosts=None):
        inventory = {name: self.inventory[name] for name in (hosts or self.inventory)}
        # The pause path: two Sparks on one machine read the same MemAvailable, so two auto plans would both
        # count the same free memory (auto itself is test_coexist.py's).
        extravars = {"voxtral_artifacts_dir": str(self.artifacts), "voxtral_gemma_mode": "pause", **(extravars or {})}
        return run_on_fleet(inventory, playbook, self.workdir, extravars)

    def sh(self, host, command):
        return ssh(self.hosts[host], command)

    def is_active(self, host, unit):
        return self.sh(host, f"systemctl is-active {unit}").stdout.strip() == "active"

    def state(self, host):
        return json.loads(self.sh(host, f"cat {STATE}").stdout)

    def serves_voxtral(self, host):
        return (
            self.is_active(host, "voxtral-tts.service")
            and not self.is_active(host, "gemma.service")
            and self.state(host)["voxtral"]["deployed"] is True
        )

    def serves_gemma(self, host):
        return (
            self.is_active(host, "gemma.service")
            and gemma_answers(self.hosts[host])
            and not self.is_active(host, "voxtral-tts.service")
            and not self.is_active(host, "voxtral-flight-guard.timer")
        )

    def lock_released(self, host):
        return self.sh(host, f"test -e {LOCK}").returncode == 1

    def run_artifacts(self, host, run_id):
        folder = self.artifacts / host / run_id
        return {path.name: json.loads(path.read_text()) for path in folder.glob("*.json")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleet")
    with prepared_sparks({name: f"voxtral-fleet-{name}" for name in SPARKS}, workdir) as hosts:
        write_behaviour(hosts["spark-2"], VOXTRAL_BEHAVIOUR, TOO_SLOW)
        yield Fleet(hosts, workdir)


def assert_spark_2_rolled_back(fleet, run):
    """spark-2's gate failed: the play's error for it says so and names it, and it serves Gemma again."""
    assert run.status == "failed", run.stdout[-3000:]
    errors = run.host_errors()
    assert list(errors) == ["spark-2"], (errors, run.stdout[-5000:])
    assert errors["spark-2"].startswith("Voxtral deploy on spark-2 failed and was rolled back, Gemma is serving again.")
    assert GATE_FAILED in errors["spark-2"]
    assert fleet.serves_gemma("spark-2")
    assert fleet.lock_released("spark-2")
    voxtral = fleet.state("spark-2")["voxtral"]
    assert voxtral["deployed"] is False and voxtral["failed"] is True
    assert GATE_FAILED in voxtral["error"]


def test_serial_rollout_stops_at_the_host_whose_gate_fails(fleet):
    run = fleet.run("deploy-voxtral.yml")
    assert_spark_2_rolled_back(fleet, run)
    assert fleet.serves_voxtral("spark-1")
    assert fleet.lock_released("spark-1")
    assert NEVER_STARTED not in run.hosts_that_ran()

    # Each host's results in the controller's artifacts, under its own run id.
    spark_1 = fleet.run_artifacts("spark-1", fleet.state("spark-1")["voxtral"]["run_id"])
    assert spark_1["state.json"]["voxtral"]["deployed"] is True
    assert spark_1["voxtral-gate.json"]["passed"] is True
    spark_2 = fleet.run_artifacts("spark-2", fleet.state("spark-2")["voxtral"]["run_id"])
    assert GATE_FAILED in spark_2["state.json"]["voxtral"]["error"]
    assert spark_2["state.json"]["gemma"]["post_flight_gate_passed"] is True
    assert not (fleet.artifacts / NEVER_STARTED).exists()


def test_one_batch_flies_both_and_max_fail_percentage_0_stops_the_rollout(fleet):
    rolled_back = fleet.run("rollback-voxtral.yml", hosts=["spark-1"])
    assert rolled_back.status == "successful", rolled_back.stdout[-3000:]
    assert fleet.serves_gemma("spark-1")

    run = fleet.run("deploy-voxtral.yml", {"voxtral_serial": 2})
    assert_spark_2_rolled_back(fleet, run)
    # spark-1 flew in the same batch and finished its flight whole: Voxtral gated and serving, lock released.
    assert fleet.serves_voxtral("spark-1")
    assert fleet.lock_released("spark-1")
    # One failed host of two is more than 0 %: the next batch never starts.
    assert NEVER_STARTED not in run.hosts_that_ran()


def test_max_fail_percentage_50_lets_the_rollout_go_on_past_one_failure_in_two(fleet):
    run = fleet.run("deploy-voxtral.yml", {"voxtral_serial": 2, "voxtral_max_fail_percentage": 50})
    assert run.status == "failed", run.stdout[-3000:]
    assert fleet.serves_voxtral("spark-1")  # deployed already: the re-run keeps it
    assert fleet.serves_gemma("spark-2")
    assert GATE_FAILED in run.host_errors()["spark-2"]
    # 1 of 2 is not more than 50 %: the rollout went on to the next batch, where spark-3 is unreachable.
    assert NEVER_STARTED in run.hosts_that_ran()
    unreachable = [e for e in run.events if e.get("event") == "runner_on_unreachable"]
    assert [e["event_data"]["host"] for e in unreachable] == [NEVER_STARTED]
