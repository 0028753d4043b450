#!/usr/bin/env bash
# Inner half of bench/memory.sh: runs as the unprivileged user inside the benchmark's own
# network namespace; stops everything it started by PID.
set -uo pipefail
stage=$1
cd "$stage"
export NSNET_BENCH_RUN="$stage"
F="python3 $stage/flows.py"
# Eight server ports: 100,000 flows are 12,500 a port, within the 28,232 ephemeral ports the
# guest's namespace has per server address and port by default.
PORTS="19400 19401 19402 19403 19404 19405 19406 19407"
cleanup() {
	# Everything this run started carries the marker in its environment; SIGKILL, because
	# Debian's pasta runs its command as the init of a PID namespace, which ignores SIGTERM.
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
			p=${f#/proc/}; p=${p%/environ}
			[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && kill -KILL "$p" 2>/dev/null
		fi
	done
	wait 2>/dev/null
}
trap cleanup EXIT
$F serve 127.0.0.1 $PORTS >"$stage/server.out" &
server=$!
for i in $(seq 100); do grep -q ready "$stage/server.out" 2>/dev/null && break; sleep 0.05; done
if [ -n "${BULK:-}" ]; then
	iperf3 -s -B 127.0.0.1 -p 5201 >/dev/null 2>&1 &
	iperf=$!
fi
echo "open files: $(ulimit -Sn) soft, $(ulimit -Hn) hard"

# netprocs DRIVER PID: the processes that run the network (never the command).
netprocs() {
	case $1 in
	nsnet | rootlesskit) echo "$2"; pgrep -P "$2" ;;
	pasta) echo "$2"; pgrep -P "$2" '^(pasta|passt)' ;;
	esac
}
sum_kb() { # FIELD FILE PIDS...: the field summed, or "–" if any process hides it
	local field=$1 file=$2 total=0 v p
	shift 2
	for p in "$@"; do
		v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/$file" 2>/dev/null)
		[ -n "$v" ] || { echo "–"; return; }
		total=$((total + v))
	done
	echo "$total"
}

# launch DRIVER CMD...: CMD inside DRIVER's network namespace, in the background ($! is the
# launcher); GW in CMD becomes the driver's address for the host's loopback.
launch() {
	local drv=$1 gw=10.0.2.2
	shift
	[ "$drv" = pasta ] && gw=192.0.2.254
	local cmd=("${@//GW/$gw}")
	case $drv in
	nsnet) ./nsnet run --net=builtin -- "${cmd[@]}" 2>/dev/null & ;;
	rootlesskit) rootlesskit --net=slirp4netns -- "${cmd[@]}" 2>/dev/null & ;;
	pasta) pasta --config-net -T none -U none -t none -u none -- "${cmd[@]}" 2>/dev/null & ;;
	esac
}
# await READY LAUNCHER: waits for the holder's READY file (10 minutes at most: 100,000
# connections one after another).
await() {
	for i in $(seq 6000); do [ -s "$1" ] && break; kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
}
# held READY: the number held, and where the holder failed if it did.
held() {
	local n f
	n=$(head -1 "$1" 2>/dev/null)
	f=$(sed -n 2p "$1" 2>/dev/null)
	echo "${n:-0}${f:+ ($f)}"
}
# stop LAUNCHER: the launcher, its children, and (a grandchild, or pasta's PID-namespace
# init) whatever else carries the marker, but not the servers.
stop() {
	for p in $(pgrep -P "$1") $1; do kill -KILL "$p" 2>/dev/null; done
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
			p=${f#/proc/}; p=${p%/environ}
			[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && [ "$p" != "$server" ] && [ "$p" != "${iperf:-}" ] && kill -KILL "$p" 2>/dev/null
		fi
	done
	wait "$1" 2>/dev/null
	sleep 1
}

printf '%-12s %7s %9s %9s  %s\n' driver flows rss_kib pss_kib held
for drv in $DRIVERS; do
	for n in $FLOWS; do
		ready="$stage/ready-$drv-$n"
		launch "$drv" $F hold GW $PORTS -n "$n" -r "$ready"
		launcher=$!
		await "$ready" "$launcher"
		# Idle for 3 s: long enough for the stack's empty rings to be freed (once a second).
		sleep 3
		pids=$(netprocs "$drv" "$launcher")
		rss=$(sum_kb VmRSS status $pids)
		pss=$(sum_kb Pss smaps_rollup $pids)
		printf '%-12s %7s %9s %9s  %s\n' "$drv" "$n" "$rss" "$pss" "$(held "$ready")"
		stop "$launcher"
	done
done
[ -n "${BULK:-}" ] || exit 0

# A bulk flow beside idle ones: the holder holds N flows, and once they are all open (or it
# failed) and 3 s have passed, iperf3 runs through the same network for SECS seconds. N is
# capped 256 below the open-file limit: at the limit the network process has no descriptor
# left for iperf3's own connections.
echo
printf '%-12s %7s %8s  %s\n' driver idle gbit_s held
cap=$(($(ulimit -Hn) - 256))
for drv in $DRIVERS; do
	for n in $BULK; do
		[ "$n" -gt "$cap" ] && n=$cap
		ready="$stage/bulk-ready-$drv-$n" json="$stage/bulk-$drv-$n.json"
		launch "$drv" sh -c "$F hold GW $PORTS -n $n -r $ready & h=\$!
			while [ ! -s $ready ] && kill -0 \$h 2>/dev/null; do sleep 0.2; done
			sleep 3
			timeout 120 iperf3 -c GW -p 5201 -t ${SECS:-5} -J >$json
			kill \$h"
		launcher=$!
		wait "$launcher" 2>/dev/null
		g=$(python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$json" 2>/dev/null)
		printf '%-12s %7s %8s  %s\n' "$drv" "$n" "${g:-failed}" "$(held "$ready")"
		stop "$launcher"
	done
done
