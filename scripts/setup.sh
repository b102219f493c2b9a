#!/usr/bin/env bash
# One set-up path for a fresh Debian 12 machine (run as root): Debian packages, the controller venv,
# the containers.podman collection (from PyPI, never Galaxy), the project's podman configuration,
# an SSH key for the test instances, binfmt for aarch64 emulation, and the x86_64 systemd test image.
# Every step is skipped when its result is already there, so a second run takes seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$VOXTRAL_ROOT"
log() { printf '\n== %s\n' "$*"; }

APT_PACKAGES=(podman runc conmon netavark aardvark-dns slirp4netns fuse-overlayfs uidmap catatonit
  debootstrap qemu-user-static binfmt-support openssh-client systemd git curl wrk
  espeak-ng chromium)  # espeak-ng: real speech for the audio checks' tests and the fake servers run on the controller
# chromium: the headless browser test that opens the verdict's ab.html
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The controller venv, rebuilt when requirements.txt changes.
req_hash="$(sha256sum requirements.txt | cut -c1-16)"
if [ "$(cat .venv/.requirements-hash 2>/dev/null)" != "$req_hash" ]; then
  log "venv: installing requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$req_hash" > .venv/.requirements-hash
fi

# The gate runs on the host's own httpx (Debian 12: 0.23.3): a second venv tests against that.
compat_hash="$(sha256sum requirements-compat.txt 2>/dev/null | cut -c1-16 || true)"
if [ -n "$compat_hash" ] && [ "$(cat .cache/venv-compat/.requirements-hash 2>/dev/null)" != "$compat_hash" ]; then
  log "venv-compat: installing requirements-compat.txt"
  python3 -m venv .cache/venv-compat
  .cache/venv-compat/bin/pip install -q --disable-pip-version-check -r requirements-compat.txt
  echo "$compat_hash" > .cache/venv-compat/.requirements-hash
fi

# containers.podman (molecule's podman driver needs it) from the `ansible` wheel on PyPI.
ANSIBLE_WHEEL_VERSION=12.3.0
if [ ! -f "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/containers/podman/MANIFEST.json" ]; then
  log "collection: containers.podman from ansible==$ANSIBLE_WHEEL_VERSION"
  tmp="$(mktemp -d)"
  .venv/bin/pip download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ANSIBLE_WHEEL_VERSION"
  mkdir -p "$ANSIBLE_COLLECTIONS_PATH"
  .venv/bin/python - "$tmp"/ansible-*.whl "$ANSIBLE_COLLECTIONS_PATH" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("ansible_collections/containers/podman/")])
PY
  rm -rf "$tmp"
fi

# The checkout itself is the collection voxtral.deploy (galaxy.yml): link it where Ansible looks.
mkdir -p "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/voxtral"
ln -sfn "$VOXTRAL_ROOT" "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/voxtral/deploy"

# podman configuration in a project-owned place (TESTING.md: hybrid cgroup v1, no crun, ulimits).
mkdir -p "$VOXTRAL_CACHE/containers" "$VOXTRAL_STORAGE"
cat > "$CONTAINERS_CONF.new" <<CONF
[containers]
cgroupns = "private"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"

[network]
network_backend = "netavark"
CONF
cat > "$CONTAINERS_STORAGE_CONF.new" <<CONF
[storage]
driver = "overlay"
graphroot = "$VOXTRAL_STORAGE/storage"
runroot = "$VOXTRAL_STORAGE/run"
CONF
mv "$CONTAINERS_CONF.new" "$CONTAINERS_CONF"
mv "$CONTAINERS_STORAGE_CONF.new" "$CONTAINERS_STORAGE_CONF"

# The key the test instances trust for root (each instance mounts the public half).
if [ ! -f "$VOXTRAL_SSH_KEY" ]; then
  mkdir -p "$(dirname "$VOXTRAL_SSH_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C voxtral-deploy-tests -f "$VOXTRAL_SSH_KEY"
fi

# aarch64 emulation: binfmt_misc is not mounted at boot on these machines.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64
fi

# The x86_64 image is all `make demo` needs; the arm64 one (about ten minutes under emulation on a fresh
# machine) is built by scripts/test.sh, before the scenarios that run on it.
scripts/build-image.sh x86_64
log "set-up done"
