#!/usr/bin/env bash
# Debian 12 root filesystem for the gpu_host scenario (run as root).
#   rootfs.sh build   CACHE          debootstrap + kernel -> CACHE/rootfs-bookworm-v1.tar.zst (once)
#   rootfs.sh unpack  CACHE ROOT     fresh ROOT from the cached tarball, then mount
#   rootfs.sh mount   CACHE ROOT     /proc /sys /dev, apt archive cache, resolv.conf, policy-rc.d
#   rootfs.sh umount  ROOT           every mount below ROOT, deepest first
#   rootfs.sh remove  ROOT           umount, then delete ROOT (never crosses into a mount)
# Prints "changed" when it changed something.
set -euo pipefail
MIRROR=${DFW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DFW_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
COMPONENTS="main contrib non-free non-free-firmware"

tarball() { echo "$1/rootfs-bookworm-v1.tar.zst"; }

do_umount() {
  local root mounts
  root=$(realpath -m "$1")
  # deepest first; findmnt lists every mount whose target is below ROOT
  mounts=$(findmnt -rn -o TARGET | awk -v r="$root/" 'index($0, r) == 1' | sort -r)
  for m in $mounts; do umount "$m" || umount -l "$m"; done
  if findmnt -rn -o TARGET | awk -v r="$root/" 'index($0, r) == 1' | grep -q .; then
    echo "rootfs.sh: mounts remain below $root" >&2; exit 1
  fi
}

do_mount() {
  local cache=$1 root=$2
  mkdir -p "$cache/apt-archives/partial"
  mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
  mountpoint -q "$root/sys" || mount --bind /sys "$root/sys"
  mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
  mountpoint -q "$root/var/cache/apt/archives" || mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # an image build: packages must not start services in the chroot
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  # keep downloaded .debs in the (bind-mounted) cache
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > "$root/etc/apt/apt.conf.d/01keep-debs"
  # a throw-away image: no fsync per file (dpkg is several times faster on a busy disk)
  echo force-unsafe-io > "$root/etc/dpkg/dpkg.cfg.d/01unsafe-io"
  # a test image that never boots: an initramfs without the kernel's module set is built in
  # seconds instead of minutes (the nouveau blacklist in /etc/modprobe.d is still copied in)
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  echo MODULES=list > "$root/etc/initramfs-tools/conf.d/dfw-test-image.conf"
}

do_build() {
  local cache=$1 build
  build="$cache/build-rootfs"
  mkdir -p "$cache/debootstrap"
  [ -d "$build" ] && { do_umount "$build"; rm -rf --one-file-system "$build"; }
  debootstrap --variant=minbase --components="${COMPONENTS// /,}" --include=python3,python3-apt \
    --cache-dir="$cache/debootstrap" bookworm "$build" "$MIRROR"
  cat > "$build/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm $COMPONENTS
deb $MIRROR bookworm-updates $COMPONENTS
deb $SECURITY bookworm-security $COMPONENTS
SOURCES
  do_mount "$cache" "$build"
  chroot "$build" apt-get update -qq
  # the image's kernel: the driver is built (or deferred) for this one, not for the host's
  DEBIAN_FRONTEND=noninteractive chroot "$build" apt-get install -y -qq --no-install-recommends linux-image-amd64
  do_umount "$build"
  rm -f "$build/usr/sbin/policy-rc.d"
  tar -C "$build" --numeric-owner -I 'zstd -T0 -3' -cf "$(tarball "$cache").part" .
  mv "$(tarball "$cache").part" "$(tarball "$cache")"
  rm -rf --one-file-system "$build"
}

case "${1:-}" in
  build)
    [ -f "$(tarball "$2")" ] && exit 0
    do_build "$2"; echo changed ;;
  unpack)
    [ -f "$(tarball "$2")" ] || do_build "$2"
    if [ -d "$3" ]; then do_umount "$3"; rm -rf --one-file-system "$3"; fi
    mkdir -p "$3"
    tar -C "$3" --numeric-owner -I zstd -xf "$(tarball "$2")"
    do_mount "$2" "$3"; echo changed ;;
  mount) do_mount "$2" "$3"; echo changed ;;
  umount) do_umount "$2" ;;
  remove)
    if [ -d "$2" ]; then do_umount "$2"; rm -rf --one-file-system "$2"; echo changed; fi ;;
  *) echo "usage: $0 build|unpack|mount|umount|remove ..." >&2; exit 2 ;;
esac
