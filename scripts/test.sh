#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, pytest (unit + integration through ansible-runner), the
# gate's tests again on Debian 12's httpx, ansible-test sanity on the built collection, and every molecule
# scenario (real systemd in podman).
# Four lanes run side by side — pytest; ansible-test sanity then the molecule scenarios one after another; two lanes
# of the flights that mostly wait (coexisting beside Gemma, a reboot mid-flight, a Voxtral start of minutes,
# a fleet of three, the verdict's and the status's flights, the secrets hunt) — because all of them mostly
# wait on simulated hosts (SSH round trips, service start-ups, a fake start of minutes), not on the 2 CPUs;
# the other lanes' output is printed whole when they end. Every part runs even when an earlier one fails; the last line sums them up.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
reports="$VOXTRAL_CACHE/test-reports"
rm -rf "$reports" && mkdir -p "$reports"

part() {  # part NAME COMMAND...: run one part, say how it went; returns its status
  local name="$1" start=$SECONDS status=0
  shift
  printf '\n==== %s\n' "$name"
  "$@" || status=$?
  printf '==== %s: %s (%ss)\n' "$name" "$([ $status -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - start))
  printf '%6ss  %-6s %s\n' $((SECONDS - start)) "$([ $status -eq 0 ] && echo ok || echo FAILED)" "$name" >> "$reports/parts.txt"
  return $status
}

# The waiting flights, split in two lanes of about the same length (CI of 2026-12-03, in s: fleet 582, coexist +
# reboot 768, verdict flight 295, long-step progress 144; secrets 353, status 187, build progress 153; heartbeat
# about 600).
WAITING_LANES=(
  "tests/integration/test_fleet.py tests/integration/test_coexist.py tests/integration/test_reboot.py
   tests/integration/test_verdict_flight.py"
  "tests/integration/test_heartbeat.py tests/integration/test_secrets.py tests/integration/test_status.py
   tests/integration/test_build_progress.py tests/integration/test_long_step_progress.py"
)

second_lane() {  # sanity, then one line per scenario in $reports/molecule.results: "<scenario> <status>"
  status=0
  # The arm64 image only the aarch64 scenarios use (scripts/setup.sh builds the x86_64 one): seconds when cached.
  part "arm64 test image" scripts/build-image.sh arm64 || status=$?
  echo "arm64-image $status" >> "$reports/molecule.results"
  status=0
  VOXTRAL_IMAGE_ARM64="$(cat "$VOXTRAL_CACHE/image-arm64.tag" 2>/dev/null || true)"
  export VOXTRAL_IMAGE_ARM64
  part "ansible-test sanity" scripts/sanity.sh || status=$?
  echo "$status" > "$reports/sanity.status"
  for scenario_dir in molecule/*/; do
    scenario="$(basename "$scenario_dir")"
    status=0
    part "molecule $scenario" molecule test -s "$scenario" || status=$?
    echo "$scenario $status" >> "$reports/molecule.results"
  done
  # The build once more on the target architecture: aarch64 under qemu, with the real aarch64 uv (7.5 min).
  status=0
  part "molecule build on arm64" env VOXTRAL_BUILD_IMAGE="$VOXTRAL_IMAGE_ARM64" molecule test -s build || status=$?
  echo "build-arm64 $status" >> "$reports/molecule.results"
}

failed_parts=()
part lint scripts/lint.sh || failed_parts+=(lint)

waiting_lane() {  # waiting_lane N: the Nth of WAITING_LANES; its status in $reports/waiting-N.status
  status=0
  # shellcheck disable=SC2086  # the lane's files, one word each
  part "pytest waiting flights $1" pytest -q -p no:cacheprovider --junitxml="$reports/waiting-$1.xml" \
    ${WAITING_LANES[$1]} || status=$?
  echo "$status" > "$reports/waiting-$1.status"
}

second_lane > "$reports/second-lane.log" 2>&1 &
second_lane_pid=$!
waiting_pids=()
for lane in "${!WAITING_LANES[@]}"; do
  waiting_lane "$lane" > "$reports/waiting-$lane.log" 2>&1 &
  waiting_pids+=($!)
done

ignored=()
for test_file in ${WAITING_LANES[*]}; do ignored+=(--ignore="$test_file"); done
part pytest pytest -q -p no:cacheprovider --junitxml="$reports/pytest.xml" "${ignored[@]}" \
  tests/unit tests/integration || failed_parts+=(pytest)
if [ -x .cache/venv-compat/bin/pytest ]; then
  part "gate on Debian 12 httpx" .cache/venv-compat/bin/pytest -q -p no:cacheprovider \
    --junitxml="$reports/compat.xml" tests/unit/test_latency_gate.py tests/unit/test_latency_gate_wire.py tests/unit/test_latency_gate_judge.py \
    tests/unit/test_latency_stats.py \
    || failed_parts+=("gate on Debian 12 httpx")
fi

for lane in "${!WAITING_LANES[@]}"; do
  wait "${waiting_pids[$lane]}"
  cat "$reports/waiting-$lane.log"
  [ "$(cat "$reports/waiting-$lane.status")" = 0 ] || failed_parts+=("pytest waiting flights $lane")
done
wait "$second_lane_pid"
cat "$reports/second-lane.log"
[ "$(cat "$reports/sanity.status")" = 0 ] || failed_parts+=("ansible-test sanity")
while read -r scenario status; do
  [ "$status" = 0 ] || failed_parts+=("molecule $scenario")
done < "$reports/molecule.results"

printf '\nwall time of each part (the lanes run side by side; the whole run: %ss):\n' "$SECONDS"
cat "$reports/parts.txt"

# Totals: pytest's test cases from its junit reports, plus one per molecule scenario.
[ ${#failed_parts[@]} -eq 0 ] || printf '\nfailed parts: %s\n' "${failed_parts[*]}"
# A failed part with no failed test case in it (lint, a crashed run) still counts as one failure.
python3 - "$reports" "${#failed_parts[@]}" <<'PY'
import pathlib, sys, xml.etree.ElementTree as ET
reports, failed_parts = pathlib.Path(sys.argv[1]), int(sys.argv[2])
passed = failed = 0
for report in reports.glob("*.xml"):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed += int(suite.get("tests", 0)) - int(suite.get("skipped", 0)) - bad
        failed += bad
cases = [
    (float(case.get("time", 0)), f"{case.get('classname', '')}::{case.get('name', '')}")
    for report in reports.glob("*.xml")
    for case in ET.parse(report).getroot().iter("testcase")
]
print("\nslowest ten tests (s, every lane; the molecule scenarios' times are their parts' above):")
for seconds, name in sorted(cases, reverse=True)[:10]:
    print(f"  {seconds:7.1f}  {name}")
for line in (reports / "molecule.results").read_text().splitlines():
    ok = line.split()[1] == "0"
    passed, failed = passed + ok, failed + (not ok)
if failed_parts and not failed:
    failed = failed_parts
print(f"\nsummary: {passed} passed, {failed} failed")
PY
[ ${#failed_parts[@]} -eq 0 ]
