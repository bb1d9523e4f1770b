#!/bin/sh
# Benchmark sysmgr activation: a no-op re-apply and a one-file change with
# 100, 500 and 2000 managed files and 50 units, through the agent's JSON
# protocol on a temporary root (systemd calls recorded, not made).
# Goal: under 1 s at 500 files, and a cost that follows what changed.
# Needs root (activation sets file owners). Usage: bench/sysmgr.sh [count]
set -eu
cd "$(dirname "$0")/.."
count=${1:-5}
out=$(CGO_ENABLED=0 go test -run '^$' -bench '^BenchmarkApply$' -benchtime "${count}x" -count 1 ./sysmgr/)
echo "$out" | awk '
/^BenchmarkApply\// {
	split($1, p, "/"); sub(/-[0-9]+$/, "", p[4])
	printf "%-12s %-9s %-8s %9.1f ms/apply  %s changes\n", p[2], p[3], p[4], $3/1e6, $5
	next
}
/^(goos|goarch|cpu):/ { print }
/FAIL|panic/ { print; bad=1 }
END { exit bad }'
