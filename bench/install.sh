#!/usr/bin/env bash
# Install figures: the time of each `nivis install` phase on a Debian guest
# under QEMU (TCG), and the install phase (unpacking the Debian rootfs into
# the freshly formatted target, bootloader none) against the baseline the
# issue names: `ssh host 'tar -x -C /mnt' < rootfs.tar` (with a static
# busybox's tar sent to the rescue system first: u-root's tar there cannot
# make symlinks) with
# OpenSSH into the same rescue system, in the same run, alternating arms; a
# third arm adds `&& sync`, since nivis's install phase ends with syncfs.
# One warm-up unpack is not counted (the first after the kexec is slow for
# any arm), and each run starts with a different arm.
# Goal: nivis at most 1.0x. Takes 20-40 minutes; needs root.
# Usage: bench/install.sh [RUNS]   (default 3 runs per arm)
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp "${TMPDIR:-/tmp}/bench-install.XXXXXX")
if ! NIVIS_VMTESTS=1 NIVIS_BENCH=1 NIVIS_BENCH_RUNS=${1:-3} go test -count=1 -run 'TestBenchInstall$' -v -timeout 120m ./vmtests/ >"$log" 2>&1; then
	grep -E 'bench_install_test.go|^--- ' "$log" | tail -20
	echo "bench/install.sh: the measurement failed; whole log: $log" >&2
	exit 1
fi
trap 'rm -f "$log"' EXIT
grep '^BENCH phase' "$log" | awk '{printf "%-28s %s\n", "phase " $3, $4}'
grep '^BENCH rootfs' "$log" | sed 's/^BENCH //'
grep '^BENCH warmup' "$log" | sed 's/^BENCH warmup/warm-up unpack (not counted):/'
echo
printf '%-6s %-10s %-10s %-15s %-14s %s\n' run nivis openssh openssh+sync "vs openssh" "vs openssh+sync"
for r in $(grep '^BENCH run' "$log" | awk '{print $3}' | sort -un); do
	n=$(grep "^BENCH run $r nivis " "$log" | awk '{print $5}' | tr -d s)
	o=$(grep "^BENCH run $r openssh " "$log" | awk '{print $5}' | tr -d s)
	y=$(grep "^BENCH run $r openssh+sync " "$log" | awk '{print $5}' | tr -d s)
	printf '%-6s %-10s %-10s %-15s %-14s %s\n' "$r" "${n}s" "${o}s" "${y}s" \
		"$(awk -v n="$n" -v o="$o" 'BEGIN{printf "%.2fx", n/o}')" "$(awk -v n="$n" -v o="$y" 'BEGIN{printf "%.2fx", n/o}')"
done
sum() { grep "^BENCH run [0-9]* $1 " "$log" | awk '{s+=$5} END{print s}'; }
n=$(sum nivis); o=$(sum openssh); y=$(sum openssh+sync)
printf '%-6s %-10s %-10s %-15s %-14s %s   (goal: at most 1.00x)\n' all "${n}s" "${o}s" "${y}s" \
	"$(awk -v n="$n" -v o="$o" 'BEGIN{printf "%.2fx", n/o}')" "$(awk -v n="$n" -v o="$y" 'BEGIN{printf "%.2fx", n/o}')"
med() { grep "^BENCH run [0-9]* $1 " "$log" | awk '{print $5}' | tr -d s | sort -n | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
n=$(med nivis); o=$(med openssh); y=$(med openssh+sync)
printf '%-6s %-10s %-10s %-15s %-14s %s\n' median "${n}s" "${o}s" "${y}s" \
	"$(awk -v n="$n" -v o="$o" 'BEGIN{printf "%.2fx", n/o}')" "$(awk -v n="$n" -v o="$y" 'BEGIN{printf "%.2fx", n/o}')"
grep '^BENCH run' "$log" | awk '{print "files after", $4 ":", $6}' | sort -u
