#!/usr/bin/env bash
# The main job on a simulated Spark: a systemd instance with the test doubles (fake Gemma unit, local
# upstream, small weight files) → deploy-voxtral.yml → benchmark-voxtral.yml (its verdict.json and report.md,
# with what the gate heard of the fake's espeak-ng speech) → rollback-voxtral.yml, each ending with its flight
# summary. KEEP=1 leaves the instance running afterwards (then: python3 tests/sim_spark.py down NAME).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
name=voxtral-demo-titan
inventory="$VOXTRAL_CACHE/demo/inventory.yml"
trap '[ "${KEEP:-0}" = 1 ] || python3 tests/sim_spark.py down "$name"' EXIT

python tests/sim_spark.py up "$name" --inventory "$inventory" --vars tests/simulated/spark-vars.yml
ansible-playbook -i "$inventory" tests/simulated/prepare-spark.yml

printf '\n==== deploy-voxtral.yml\n'
ansible-playbook -i "$inventory" deploy-voxtral.yml
printf '\n==== benchmark-voxtral.yml\n'
ansible-playbook -i "$inventory" benchmark-voxtral.yml
run_dir="$(ls -td artifacts/titan/*/ | head -1)"
printf '\n==== %sreport.md, what the gate heard (every figure in verdict.json beside it; ab.html has the pictures)\n' "$run_dir"
awk '/^## /{shown = /^## Audio heard/} shown' "${run_dir}report.md"
printf '\n==== rollback-voxtral.yml\n'
ansible-playbook -i "$inventory" rollback-voxtral.yml

# Each playbook ends with its FLIGHT SUMMARY (plugins/callback/voxtral_summary.py): outcome, Gemma's
# outage, the gates against their limits, and the run's folder in artifacts/titan/.
