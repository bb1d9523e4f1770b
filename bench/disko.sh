#!/usr/bin/env bash
# Benchmark: disko's simple-efi example, destroy,format,mount on a loop
# image, `nivis disko` against a hand-written script doing the same work
# (sgdisk + partx + mkfs + mount), in the same run, alternating arms.
#
# This machine's kernel cannot mount vfat, so both arms format the ESP as
# ext4 instead (same size, same mountpoint). Both arms start from the state
# the previous run left (disk partitioned and mounted), so both pay for the
# destroy phase too.
#
# Usage: sudo bench/disko.sh [RUNS]     (default 5 runs per arm)
# Env:   NIVIS=path/to/nivis (default: built from this tree)
set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
EXAMPLE=${DISKO_EXAMPLE:-$HERE/disko/testdata/examples/simple-efi.json}

if [[ $(id -u) != 0 ]]; then
	echo "bench/disko.sh: needs root (loop devices, mkfs, mount)" >&2
	exit 4
fi
for t in losetup sgdisk sfdisk partx wipefs mkfs.ext4 mount umount; do
	command -v "$t" >/dev/null || { echo "bench/disko.sh: $t is missing" >&2; exit 4; }
done
[[ -f $EXAMPLE ]] || { echo "bench/disko.sh: $EXAMPLE not found (set DISKO_EXAMPLE)" >&2; exit 4; }

WORK=$(mktemp -d /tmp/nivis-bench-disko.XXXXXX)
MNT=$WORK/mnt
IMG=$WORK/disk.img
LOOP=
cleanup() {
	umount -R "$MNT" 2>/dev/null || true
	[[ -n $LOOP ]] && { partx -d "$LOOP" 2>/dev/null || true; losetup -d "$LOOP" 2>/dev/null || true; }
	rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z ${NIVIS:-} ]]; then
	NIVIS=$WORK/nivis
	(cd "$HERE" && CGO_ENABLED=0 go build -o "$NIVIS" ./cmd/nivis)
fi

# simple-efi with the ESP as ext4: vfat -> ext4, its umask option dropped.
LAYOUT=$WORK/simple-efi-ext4.json
sed -e 's/"vfat"/"ext4"/' -e '/"mountOptions": \[/,/\]/d' "$EXAMPLE" >"$LAYOUT"

truncate -s 4G "$IMG"
LOOP=$(losetup --find --show "$IMG")
mkdir -p "$MNT"
echo "disk: $LOOP (4 GiB sparse image), layout: $LAYOUT"
"$NIVIS" disko --dry-run --disk main="$LOOP" --root "$MNT" --mode destroy,format,mount "$LAYOUT" >"$WORK/plan.txt" 2>/dev/null
sed -n '/^disk main/,/^$/p' "$WORK/plan.txt"

ESP_GUID=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
LINUX_GUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# The same work by hand: release, wipe, partition, tell the kernel
# (partx: BLKPG, as this kernel has no partition parser), mkfs, mount.
destroy_by_hand() {
	umount -R "$MNT" 2>/dev/null || true
	for p in "$LOOP"p*; do [[ -b $p ]] && wipefs -a -f -q "$p"; done
	wipefs -a -f -q "$LOOP"
	partx -d "$LOOP" 2>/dev/null || true
}
format_mount_by_hand() {
	mkfs.ext4 -q -F "${LOOP}p1"
	mkfs.ext4 -q -F "${LOOP}p2"
	mkdir -p "$MNT"
	mount "${LOOP}p2" "$MNT"
	mkdir -p "$MNT/boot"
	mount "${LOOP}p1" "$MNT/boot"
}
hand_sgdisk() {
	destroy_by_hand
	# One sgdisk run for both partitions: the fastest way to use sgdisk
	# (it sleeps a second after every write; disko runs it per partition).
	sgdisk --align-end \
		--new=1:0:+500M --change-name=1:disk-main-ESP --typecode=1:EF00 \
		--new=2:0:-0 --change-name=2:disk-main-root --typecode=2:8300 "$LOOP" >/dev/null
	partx -a "$LOOP"
	format_mount_by_hand
}
hand_sfdisk() {
	destroy_by_hand
	printf 'label: gpt\nstart=2048, size=500MiB, type=%s, name=disk-main-ESP\ntype=%s, name=disk-main-root\n' \
		"$ESP_GUID" "$LINUX_GUID" | sfdisk -q --no-reread --no-tell-kernel "$LOOP" >/dev/null
	partx -a "$LOOP"
	format_mount_by_hand
}
nivis_run() {
	"$NIVIS" --yes disko --mode destroy,format,mount --disk main="$LOOP" --root "$MNT" "$LAYOUT" >/dev/null 2>"$WORK/nivis.log" ||
		{ cat "$WORK/nivis.log" >&2; exit 5; }
}

now() { date +%s%N; }
declare -A T
arms=(nivis hand_sgdisk hand_sfdisk)
for arm in "${arms[@]}"; do T[$arm]=""; done
# Warm up once per arm (page cache, binaries), untimed.
for arm in "${arms[@]}"; do
	if [[ $arm == nivis ]]; then nivis_run; else $arm; fi
done
for ((i = 1; i <= RUNS; i++)); do
	for arm in "${arms[@]}"; do
		s=$(now)
		if [[ $arm == nivis ]]; then nivis_run; else $arm; fi
		e=$(now)
		T[$arm]+="$(((e - s) / 1000000)) "
		mountpoint -q "$MNT" && mountpoint -q "$MNT/boot" || { echo "$arm: not mounted after the run" >&2; exit 5; }
	done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\n%-12s %10s   %s\n' arm "median ms" "runs (ms)"
for arm in "${arms[@]}"; do
	printf '%-12s %10s   %s\n' "$arm" "$(median "${T[$arm]}")" "${T[$arm]}"
done
n=$(median "${T[nivis]}")
sg=$(median "${T[hand_sgdisk]}")
sf=$(median "${T[hand_sfdisk]}")
ratio=$(awk -v a="$n" -v b="$sg" 'BEGIN {printf "%.2f", a / b}')
ratio2=$(awk -v a="$n" -v b="$sf" 'BEGIN {printf "%.2f", a / b}')
echo
echo "ratio nivis / hand-written sgdisk script: ${ratio}x (goal: within 1.1x)"
echo "ratio nivis / hand-written sfdisk script: ${ratio2}x (no sgdisk sleep; for reference)"
awk -v r="$ratio" 'BEGIN {exit !(r <= 1.1)}' || { echo "goal missed" >&2; exit 1; }
