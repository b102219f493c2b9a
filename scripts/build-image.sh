#!/usr/bin/env bash
# Builds the systemd test image for one architecture (x86_64 | arm64) with debootstrap, from the
# Debian mirror this machine's apt already uses, and imports it into podman as
# localhost/voxtral-spark:<arch>-<recipe hash>. Skipped when that tag exists: the image is rebuilt
# only when this recipe or its package list changes. The test SSH key is not baked in: instances
# mount it as root's authorized_keys, so a fresh clone on the same machine reuses the images.
set -euo pipefail
source "$(dirname "$0")/env.sh"
arch="${1:?usage: build-image.sh x86_64|arm64}"

# What a DGX OS host has that the roles rely on (systemd as PID 1, Python with venv/httpx/apt
# bindings, git, sshd) and nothing else, plus espeak-ng: the fake vllm-omni on the simulated Spark
# speaks real speech for the text, so the audio checks hear a voice (not a tone).
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-venv,python3-apt,python3-httpx,sudo,procps,iproute2,curl,ca-certificates,openssh-server,git,espeak-ng
recipe_hash="$(sha256sum "$0" | cut -c1-12)"
tag="localhost/voxtral-spark:${arch}-${recipe_hash}"
tagfile="$VOXTRAL_CACHE/image-${arch}.tag"

if podman image exists "$tag"; then
  echo "$tag" > "$tagfile"
  echo "image $tag is up to date"
  exit 0
fi

# The mirror comes from the machine's apt sources, never from this repository.
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }

rootfs="$(mktemp -d "${TMPDIR:-/var/tmp}/voxtral-rootfs-${arch}.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "== debootstrap $arch from $mirror (this takes a minute, about four under emulation)"
if [ "$arch" = "x86_64" ]; then
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >/dev/null
  import_arch=amd64
else
  debootstrap --arch=arm64 --foreign --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" >/dev/null
  chroot "$rootfs" /debootstrap/debootstrap --second-stage >/dev/null
  import_arch=arm64
fi

# Make it a clean systemd guest: no apt lists, a machine-id made at first boot, no binfmt units
# (a privileged container would otherwise wipe the host's binfmt_misc registrations).
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
: > "$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
for unit in systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
  getty@tty1.service console-getty.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Root is reached over SSH with the test key only (mounted at /root/.ssh/authorized_keys by each
# instance), as a real Spark is reached.
install -d -m 0700 "$rootfs/root/.ssh"
printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
  > "$rootfs/etc/ssh/sshd_config.d/voxtral-tests.conf"
ln -sf /lib/systemd/system/ssh.service "$rootfs/etc/systemd/system/multi-user.target.wants/ssh.service"

tar -C "$rootfs" --numeric-owner -cf - . | podman import --arch "$import_arch" \
  --change 'CMD ["/lib/systemd/systemd"]' --change 'ENV container=podman' \
  --change 'STOPSIGNAL SIGRTMIN+3' - "$tag" >/dev/null
echo "$tag" > "$tagfile"
echo "built $tag"
