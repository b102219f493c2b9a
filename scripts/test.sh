#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, pytest (unit + integration through ansible-runner),
# the gate's tests again on Debian 12's httpx, and every molecule scenario (real systemd in podman).
# Every part runs even when an earlier one fails; the last line sums them up.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
reports="$VOXTRAL_CACHE/test-reports"
rm -rf "$reports" && mkdir -p "$reports"
passed=0
failed=0
failed_parts=()
part() {  # part NAME COMMAND...: run one part, count it
  local name="$1"; shift
  printf '\n==== %s\n' "$name"
  local start=$SECONDS
  if "$@"; then
    printf '==== %s: ok (%ss)\n' "$name" $((SECONDS - start))
  else
    printf '==== %s: FAILED (%ss)\n' "$name" $((SECONDS - start))
    failed_parts+=("$name")
  fi
}
count_junit() {  # adds a junit report's test counts to the totals
  local counts
  counts="$(python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
tests = failures = 0
for suite in ET.parse(sys.argv[1]).getroot().iter("testsuite"):
    tests += int(suite.get("tests", 0)) - int(suite.get("skipped", 0))
    failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
print(tests - failures, failures)
PY
)" || return 0
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
}

part lint scripts/lint.sh
part pytest pytest -q -p no:cacheprovider --junitxml="$reports/pytest.xml" tests/unit tests/integration
[ -f "$reports/pytest.xml" ] && count_junit "$reports/pytest.xml"
if [ -x .cache/venv-compat/bin/pytest ] && ls tests/unit/test_latency_gate*.py >/dev/null 2>&1; then
  part "gate on Debian 12 httpx" .cache/venv-compat/bin/pytest -q -p no:cacheprovider \
    --junitxml="$reports/compat.xml" tests/unit/test_latency_gate.py tests/unit/test_latency_stats.py
  [ -f "$reports/compat.xml" ] && count_junit "$reports/compat.xml"
fi
for scenario_dir in molecule/*/; do
  scenario="$(basename "$scenario_dir")"
  if part "molecule $scenario" molecule test -s "$scenario"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done

printf '\n'
[ ${#failed_parts[@]} -eq 0 ] || printf 'failed parts: %s\n' "${failed_parts[*]}"
printf 'summary: %d passed, %d failed\n' "$passed" "$failed"
[ ${#failed_parts[@]} -eq 0 ]
