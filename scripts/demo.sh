#!/usr/bin/env bash
# `make demo`: boot a Debian guest under QEMU, point nivis at it, then
# `nivis install` it onto its second disk with a built-in example config
# (vmtests/cmd/demo/example-host.yaml) and boot that disk alone.
# Installs what it needs (scripts/deps.sh), builds nivis and the demo driver,
# then runs vmtests/cmd/demo, which builds or reuses the cached guest image
# and rootfs tarball and prints each phase with its time. Extra arguments go
# to the driver (-keep leaves the guest running, -v logs every command,
# -install=false stops after nivis facts).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh

export CGO_ENABLED=0
[ -x bin/nivis ] || go build -trimpath -o bin/nivis ./cmd/nivis
go build -o bin/nivis-demo ./vmtests/cmd/demo

# The first image build runs debootstrap and chroot, which need root; later
# runs only read the cache (which lives in root's cache directory then).
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the guest image is built as root; re-running the driver with sudo" >&2
  exec sudo --preserve-env=NIVIS_VM_CACHE,NIVIS_VM_ACCEL,NIVIS_DEBIAN_MIRROR bin/nivis-demo -nivis bin/nivis "$@"
fi
exec bin/nivis-demo -nivis bin/nivis "$@"
