#!/usr/bin/env bash
# ansible-test sanity on what the collection ships: build the tarball, install it into a clean
# collections path, and run the sanity tests there for the controller's Python and the Spark's
# (DGX OS 7 is Ubuntu 24.04: Python 3.12). The tests' own requirements come from the package index.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
# A Spark runs DGX OS 7 (Ubuntu 24.04: Python 3.12); the controller runs the venv's Python (3.11 here).
TARGET_PYTHONS=(3.12)
# Outside any git work tree: inside one, ansible-test lists only the files git tracks (none, here).
work="${VOXTRAL_SANITY_DIR:-/var/tmp/voxtral-deploy/sanity}"
rm -rf "$work" && mkdir -p "$work"
ansible-galaxy collection build --output-path "$work" . >/dev/null
ANSIBLE_COLLECTIONS_PATH="$work/installed" ansible-galaxy collection install --offline \
  -p "$work/installed" "$work"/voxtral-deploy-*.tar.gz >/dev/null

# ansible-test bootstraps pip in its venvs with get-pip.py from a host this network cannot reach: give it
# the offline stand-in under the name it looks for (its pip version from ansible-test itself).
pip_version="$(python - <<'PY'
import re, ansible_test, pathlib
text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1))
PY
)"
mkdir -p ~/.ansible/test/cache
install -m 0644 scripts/get_pip_offline.py ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"

# The Spark's Python beside the controller's: ansible-test finds interpreters as pythonX.Y on PATH (pyenv's
# shims only answer for the active version), so link each real interpreter into one directory.
interpreters="$work/bin"
mkdir -p "$interpreters"
for version in "${TARGET_PYTHONS[@]}"; do
  found=""
  for candidate in "/usr/bin/python$version" "/usr/local/bin/python$version" \
      "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/"python$version"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import venv' 2>/dev/null; then found="$candidate"; break; fi
  done
  [ -n "$found" ] || { echo "python$version not found: sanity needs it (a Spark's Python)"; exit 1; }
  ln -sfn "$found" "$interpreters/python$version"
done
export PATH="$interpreters:$PATH"

cd "$work/installed/ansible_collections/voxtral/deploy"
export ANSIBLE_COLLECTIONS_PATH="$work/installed"
controller="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
# Every test on the controller's Python; the target-side tests (compile, import) on each target Python.
status=0
ansible-test sanity --color no --requirements --python "$controller" || status=$?
for version in "${TARGET_PYTHONS[@]}"; do
  ansible-test sanity --color no --requirements --controller "origin:python=$controller" \
    --target-python "$version" --test compile --test import || status=$?
done
exit $status
