#!/usr/bin/env bash
# Upload throughput: nivis vs the OpenSSH client, same file, same sshd, same run.
#
# Starts a throwaway Debian sshd on 127.0.0.1 (own host key, own authorized_keys),
# creates a SIZE_MIB file, and times RUNS uploads each of
#   ssh -p PORT root@127.0.0.1 'cat > f' < file      (OpenSSH)
#   nivis upload root@127.0.0.1:PORT file f           (exec, the default; and sftp)
# Prints the median time and throughput of each, and nivis/OpenSSH throughput
# (goal: >= 0.90). Usage: bench/upload.sh   (env: SIZE_MIB=512 RUNS=3 METHODS="exec sftp")
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-3}
METHODS=${METHODS:-exec sftp}
SSHD=${SSHD:-/usr/sbin/sshd}
command -v ssh >/dev/null || { echo "bench: needs the OpenSSH client (apt-get install openssh-client)" >&2; exit 1; }
[ -x "$SSHD" ] || { echo "bench: needs $SSHD (apt-get install openssh-server)" >&2; exit 1; }

work=$(mktemp -d /tmp/nivis-bench.XXXXXX)
sshd_pid=
cleanup() {
	[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building nivis" >&2
CGO_ENABLED=0 go build -o "$work/nivis" ./cmd/nivis

ssh-keygen -q -t ed25519 -N '' -C bench-host -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
user=$(id -un)
[ "$(id -u)" = 0 ] && mkdir -p /run/sshd

start_sshd() {
	cat >"$work/sshd_config" <<CONF
ListenAddress 127.0.0.1:$1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
CONF
	"$SSHD" -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
	sshd_pid=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$sshd_pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
port=
for _ in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 20000))
	if start_sshd "$p"; then port=$p; break; fi
	kill "$sshd_pid" 2>/dev/null || true
	sshd_pid=
done
[ -n "$port" ] || { echo "bench: sshd did not start:" >&2; cat "$work/sshd.log" >&2; exit 1; }
echo "[127.0.0.1]:$port $(cat "$work/host_key.pub")" >"$work/known_hosts"

echo "bench: creating a ${SIZE_MIB} MiB file" >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/src"
want=$(sha256sum <"$work/src" | cut -d' ' -f1)
cat "$work/src" >/dev/null

now() { date +%s.%N; }
# timeit LABEL CMD...: runs CMD, appends the seconds it took to $work/LABEL.times
timeit() {
	local label=$1; shift
	local t0 t1
	t0=$(now)
	"$@"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$work/$label.times"
}
ssh_upload() {
	ssh -F /dev/null -p "$port" -i "$work/id" -o IdentitiesOnly=yes -o BatchMode=yes \
		-o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=yes \
		"$user@127.0.0.1" "cat > $work/dst-ssh" <"$work/src"
}
nivis_upload() {
	"$work/nivis" upload --method "$1" -p "$port" -i "$work/id" -o IdentitiesOnly=yes \
		-o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=yes \
		"$user@127.0.0.1" "$work/src" "$work/dst-nivis-$1" 2>>"$work/nivis.log"
}

for i in $(seq "$RUNS"); do
	echo "bench: run $i/$RUNS" >&2
	timeit ssh ssh_upload
	for m in $METHODS; do
		timeit "nivis-$m" nivis_upload "$m"
	done
done

for m in $METHODS; do
	got=$(sha256sum <"$work/dst-nivis-$m" | cut -d' ' -f1)
	[ "$got" = "$want" ] || { echo "bench: nivis $m upload corrupted the file ($got != $want)" >&2; exit 1; }
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
report() {
	local label=$1 m
	m=$(median "$work/$label.times")
	printf '%-12s median %6.2f s  %7.1f MiB/s   (runs: %s)\n' "$label" "$m" "$(awk -v s="$SIZE_MIB" -v t="$m" 'BEGIN { print s / t }')" "$(sort -n "$work/$label.times" | xargs printf '%.2f ' | sed 's/ $//')"
}
echo "upload of $SIZE_MIB MiB to a loopback sshd ($("$SSHD" -V 2>&1 | head -1 || true)), $RUNS runs each:"
report ssh
for m in $METHODS; do report "nivis-$m"; done
ssh_med=$(median "$work/ssh.times")
for m in $METHODS; do
	printf 'ratio nivis-%s / OpenSSH throughput: %.2f (goal >= 0.90)\n' "$m" "$(awk -v a="$ssh_med" -v b="$(median "$work/nivis-$m.times")" 'BEGIN { print a / b }')"
done
