#!/usr/bin/env bash
# Rescue takeover figures: bytes uploaded, rescue image size, seconds from
# `nivis rescue` start to SSH ready in the rescue system, against the
# baselines of nixos-anywhere/nixos-images (a 300-800 MB kexec tarball,
# 1.5 GB of RAM asked for). Boots a Debian guest under QEMU (TCG), so it
# takes several minutes. Needs root (the guest image is built with
# debootstrap on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
NIVIS_VMTESTS=1 go test -count=1 -run 'TestRescue$' -v -timeout 40m ./vmtests/ >"$log" 2>&1 || { tail -50 "$log"; exit 1; }
agent=$(grep -o 'uploading the nivis agent (linux/[a-z0-9]*, [0-9.]* [KMG]iB)' "$log" | head -1 | grep -o '[0-9.]* [KMG]iB' || echo "?")
image=$(grep -o 'rescue initrd: [0-9.]* MiB' "$log" | head -1 | grep -o '[0-9.]*' || echo "?")
unpacked=$(grep -o 'MiB (zstd), [0-9.]* MiB unpacked' "$log" | head -1 | grep -o '[0-9.]* MiB unpacked' | grep -o '^[0-9.]*' || echo "?")
small="fails"
if NIVIS_VMTESTS=1 go test -count=1 -run 'TestRescueSmallMemory$' -timeout 40m ./vmtests/ >/dev/null 2>&1; then small="works"; fi
secs=$(grep -o 'stage rescue: [0-9hms.]*' "$log" | head -1 | sed 's/stage rescue: //')
printf '%-34s %-14s %s\n' "figure" "nivis" "baseline (nixos-anywhere / nixos-images)"
printf '%-34s %-14s %s\n' "uploaded: agent binary" "$agent" "kexec tarball 300-800 MB"
printf '%-34s %-14s %s\n' "rescue initrd (built on the host)" "${image} MiB" "(inside the tarball)"
printf '%-34s %-14s %s\n' "initrd unpacked in RAM" "${unpacked} MiB" "299-822 MB image"
printf '%-34s %-14s %s\n' "takeover in a 512 MiB guest" "$small" "asks for 1.5 GB (nixos-images: 1 GB)"
printf '%-34s %-14s %s\n' "start to rescue SSH ready (TCG)" "$secs" "n/a"
