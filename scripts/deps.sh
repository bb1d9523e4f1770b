#!/usr/bin/env bash
# Installs the Debian packages nivis's build, tests and demo use, when missing.
# Safe to run repeatedly; does nothing when everything is there.
set -euo pipefail
pkgs=(
  # SSH tests: a real OpenSSH server and client on loopback
  openssh-server openssh-client
  # disk tests on loop devices
  e2fsprogs dosfstools xfsprogs btrfs-progs lvm2 cryptsetup mdadm gdisk fdisk util-linux
  # VM tests and the demo
  qemu-system-x86 qemu-utils debootstrap ovmf
  # image and archive tools used by tests as independent checks
  cpio zstd xz-utils kmod
  # bench/install.sh's baseline tar in the rescue system
  busybox-static
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
