#!/usr/bin/env bash
# The main job on a simulated Spark: a systemd instance with the test doubles (fake Gemma unit, local
# upstream, small weight files) → deploy-voxtral.yml → rollback-voxtral.yml, printing the gate
# results. KEEP=1 leaves the instance running afterwards (then: python3 tests/sim_spark.py down NAME).
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
printf '\n==== rollback-voxtral.yml\n'
ansible-playbook -i "$inventory" rollback-voxtral.yml

printf '\n==== gate results (artifacts/titan/, newest run last)\n'
python - <<'PY'
import json, pathlib
for state_file in sorted(pathlib.Path("artifacts/titan").glob("*/state.json"), key=lambda p: p.stat().st_mtime)[-2:]:
    state = json.loads(state_file.read_text())
    gemma, voxtral = state.get("gemma", {}), state.get("voxtral", {})
    print(f"{state_file.parent.name}:")
    print(f"  Gemma baseline p50     {gemma.get('baseline_p50_ms')} ms")
    print(f"  Gemma post-flight p50  {gemma.get('post_flight_p50_ms')} ms (drift {gemma.get('drift_ratio')}x,"
          f" gate passed: {gemma.get('post_flight_gate_passed')})")
    print(f"  Gemma outage           {gemma.get('outage_seconds')} s")
    print(f"  Voxtral                deployed={voxtral.get('deployed')} release={voxtral.get('release', {}).get('version')}"
          f" ttfa p50={voxtral.get('ttfa_p50_ms')} ms rtf p50={voxtral.get('rtf_p50')}")
PY
