# The two commands a newcomer needs: `make demo` (the main job, on a simulated Spark) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ENV := source scripts/env.sh &&
SCENARIOS ?= $(notdir $(wildcard molecule/*))

.PHONY: setup check test lint sanity collection unit molecule demo clean-images capture-upstream conformance real-build \
  resolve-aarch64

setup:
	bash scripts/setup.sh

lint: setup
	$(ENV) scripts/lint.sh

# ansible-test sanity on the built and installed collection (controller Python + the Spark's 3.12).
sanity: setup
	$(ENV) scripts/sanity.sh

# The collection tarball (voxtral-deploy-<version>.tar.gz) in .build/.
collection: setup
	$(ENV) ansible-galaxy collection build --force --output-path .build .

unit: setup
	$(ENV) pytest -q tests/unit tests/integration

molecule: setup
	$(ENV) for s in $(SCENARIOS); do molecule test -s $$s; done

# The quick lane before a commit (about 5 minutes): lint + unit tests, sanity, one flight, side by side.
check: setup
	$(ENV) scripts/check.sh

# What CI runs (.ci/run): lint, unit + integration tests, every molecule scenario.
test: setup
	$(ENV) scripts/test.sh

demo: setup
	$(ENV) scripts/demo.sh

clean-images:
	$(ENV) podman images --format '{{.Repository}}:{{.Tag}}' | grep -E '^localhost/voxtral-spark(-built)?:' | xargs -r podman rmi

# The real vllm-omni as the reference (not in CI: about 9 GB per version, cached in /var/tmp/voxtral-deploy/upstream).
# capture-upstream re-records tests/fixtures/upstream/recorded/ (the CI conformance test compares the fake with it);
# conformance runs the roles' rendered ExecStart and the build's smoke checks through the real installed CLI.
VERSIONS ?=
capture-upstream: setup
	$(ENV) python scripts/capture_upstream.py $(VERSIONS)

conformance: setup
	$(ENV) python scripts/conformance.py

# The build role on the REAL source tree (SOURCE: a git dir or URL of a vllm-omni snapshot with upstream's
# history, e.g. the fork RuixiangMa/vllm-omni) with the real package index, on a simulated Spark: the seed
# profile and 0.26, each re-run (changed=0); re-records tests/fixtures/upstream/recorded/build-*/.
# ARGS: more options of scripts/real_build.py, e.g. ARGS="--arm64 --no-record" (aarch64 under qemu).
SOURCE ?=
ARGS ?=
real-build: setup
	@test -n "$(SOURCE)" || { echo "usage: make real-build SOURCE=<git dir or URL of a vllm-omni snapshot>"; exit 2; }
	$(ENV) python scripts/real_build.py "$(SOURCE)" $(ARGS)

# Each profile's full install resolved for aarch64-manylinux_2_28 / Python 3.12 (no wheel downloaded);
# re-records tests/fixtures/upstream/recorded/aarch64/. PYTHON312: an interpreter for sdist metadata builds.
PYTHON312 ?=
resolve-aarch64: setup
	@test -n "$(SOURCE)" || { echo "usage: make resolve-aarch64 SOURCE=<git dir of a vllm-omni snapshot>"; exit 2; }
	$(ENV) python scripts/resolve_aarch64.py --snapshot "$(SOURCE)" $(if $(PYTHON312),--python $(PYTHON312))
