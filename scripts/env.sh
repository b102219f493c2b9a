# shellcheck shell=bash
# Environment every project command runs in: sourced by the Makefile's recipes and the scripts.
# It points every podman call (ours, molecule's and Ansible's) at the project's own configuration.
VOXTRAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VOXTRAL_ROOT
export VOXTRAL_CACHE="${VOXTRAL_CACHE:-$VOXTRAL_ROOT/.cache}"
# Container storage lives outside the work tree so a fresh clone on the same machine reuses the
# test images already built (rebuilt only when their recipe changes).
export VOXTRAL_STORAGE="${VOXTRAL_STORAGE:-/var/tmp/voxtral-deploy/containers}"
export CONTAINERS_CONF="$VOXTRAL_CACHE/containers/containers.conf"
export CONTAINERS_STORAGE_CONF="$VOXTRAL_CACHE/containers/storage.conf"
export ANSIBLE_COLLECTIONS_PATH="$VOXTRAL_CACHE/collections"
export ANSIBLE_CONFIG="$VOXTRAL_ROOT/ansible.cfg"
export VOXTRAL_SSH_KEY="$VOXTRAL_CACHE/ssh/id_ed25519"
export PATH="$VOXTRAL_ROOT/.venv/bin:$PATH"
# Test image tags carry a hash of their recipe (scripts/build-image.sh writes these files).
if [ -f "$VOXTRAL_CACHE/image-x86_64.tag" ]; then
  VOXTRAL_IMAGE_X86_64="$(cat "$VOXTRAL_CACHE/image-x86_64.tag")"
  export VOXTRAL_IMAGE_X86_64
fi
if [ -f "$VOXTRAL_CACHE/image-arm64.tag" ]; then
  VOXTRAL_IMAGE_ARM64="$(cat "$VOXTRAL_CACHE/image-arm64.tag")"
  export VOXTRAL_IMAGE_ARM64
fi
