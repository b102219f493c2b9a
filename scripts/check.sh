#!/usr/bin/env bash
# The quick lane before a commit (`make check`, about 5 minutes on 2 cores): lint and the unit tests, ansible-test
# sanity, and one flight (tests/integration/test_flight.py's deploy, re-run and rollback on a simulated Spark made
# from the built image), three lanes side by side. Everything else is `make test`'s (what CI runs).
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
reports="$VOXTRAL_CACHE/check-reports"
rm -rf "$reports" && mkdir -p "$reports"

lane() {  # lane NAME COMMAND...: output in $reports/NAME.log, status and wall time in $reports/NAME.status
  local name="$1" start=$SECONDS status=0
  shift
  "$@" > "$reports/$name.log" 2>&1 || status=$?
  echo "$status $((SECONDS - start))" > "$reports/$name.status"
}
lint_and_unit() { scripts/lint.sh && pytest -q -p no:cacheprovider tests/unit; }
flight() {
  pytest -q -p no:cacheprovider tests/integration/test_flight.py -k \
    "test_deploy_serves_voxtral_with_gemma_paused or test_deploy_rerun_changes_nothing or test_rollback_restores_gemma"
}

lane "lint+unit" lint_and_unit &
# Its own folder: a `make test` on the same machine may be using the default one.
lane sanity env VOXTRAL_SANITY_DIR="$VOXTRAL_CACHE/check-sanity" scripts/sanity.sh &
lane flight flight &
wait

failed=0
for name in "lint+unit" sanity flight; do
  read -r status seconds < "$reports/$name.status"
  printf '\n==== %s: %s (%ss)\n' "$name" "$([ "$status" = 0 ] && echo ok || echo FAILED)" "$seconds"
  if [ "$status" = 0 ]; then tail -n 3 "$reports/$name.log"; else tail -n 60 "$reports/$name.log"; failed=$((failed + 1)); fi
done
printf '\ncheck: %s lane(s) failed, whole run %ss\n' "$failed" "$SECONDS"
[ "$failed" = 0 ]
