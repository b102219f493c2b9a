#!/usr/bin/env bash
# Lint: yamllint (strict), ansible-lint (profile production, zero violations), ruff (lint + format).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
echo "== yamllint"
yamllint --strict .
echo "== ansible-lint (profile production)"
ansible-lint --profile production --strict
echo "== ruff"
ruff check .
ruff format --check .
