#!/usr/bin/env bash
# The measuring half of bench/net.sh, run as the unprivileged user inside the bench world.
# Appends "driver mtu direction gbit_per_s cpu_s_per_gb rss_kib" lines to $STAGE/results.tsv.
set -uo pipefail
STAGE=$1
cd "$STAGE"
out=$STAGE/results.tsv
: >"$out"
iperf3 -s -B 127.0.0.1 -p 5201 >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 0.5
tck=$(getconf CLK_TCK)

# netprocs DRIVER LAUNCHER_PID: the processes that run the network for DRIVER (pasta forks
# more than one; runs are sequential, so every one of the user's is this run's).
netprocs() {
	case $1 in
	nsnet) echo "$2" ;;
	ceiling) pgrep -u "$(id -u)" -x tap_copier ;;
	loopback) ;;
	slirp4netns) pgrep -u "$(id -u)" -x slirp4netns ;;
	pasta) pgrep -u "$(id -u)" '^(pasta|passt)' ;;
	esac
}

# measure_limit ceiling|loopback MTU RFLAG: iperf3 through the tap copier (two network
# namespaces of a user namespace of our own, each with a tap, the copier between them), or
# straight to the world's loopback; the JSON on stdout.
measure_limit() {
	if [ "$1" = loopback ]; then
		iperf3 -c 127.0.0.1 -p 5201 -t "$SECS" -J $3
		return
	fi
	unshare --user --map-root-user --net -- sh -c '
		ip link set lo up
		unshare --net -- sh -c "ip link set lo up; exec sleep 600" &
		b=$!
		sleep 0.2
		"$1/tap_copier" /proc/self/ns/net 10.0.3.1 /proc/$b/ns/net 10.0.3.2 "$2" >"$1/copier.out" &
		c=$!
		for i in $(seq 50); do grep -q ready "$1/copier.out" 2>/dev/null && break; sleep 0.1; done
		nsenter --net=/proc/$b/ns/net iperf3 -s -1 -B 10.0.3.2 -p 5202 >/dev/null 2>&1 &
		s=$!
		sleep 0.3
		iperf3 -c 10.0.3.2 -p 5202 -t "$3" -J $4
		kill $c $s $b 2>/dev/null
		wait
	' sh "$STAGE" "$2" "$SECS" "$3"
}

# measure DRIVER MTU DIR: one iperf3 run; samples the network process until it ends.
measure() {
	local drv=$1 mtu=$2 dir=$3 rflag="" json="$STAGE/iperf.json"
	[ "$dir" = in ] && rflag=-R
	local client="iperf3 -c 10.0.2.2 -p 5201 -t $SECS -J $rflag"
	: >"$json"
	case $drv in
	ceiling | loopback)
		measure_limit "$drv" "$mtu" "$rflag" >"$json" 2>/dev/null &
		;;
	nsnet) "$STAGE/nsnet" run --net=builtin --mtu="$mtu" -- sh -c "$client >$json" 2>/dev/null & ;;
	slirp4netns) rootlesskit --net=slirp4netns --mtu="$mtu" -- sh -c "$client >$json" 2>/dev/null & ;;
	pasta) pasta --config-net -q -i dummy0 -a 10.0.2.100 -n 24 -g 10.0.2.2 -m "$mtu" \
		-t none -u none -T none -U none -- sh -c "$client >$json" 2>/dev/null & ;;
	esac
	local launcher=$! pid cpu=0 rss=0 c r tc tr
	# Samples every 0.2 s; the last sample before the network process exits counts (CPU is
	# summed over the driver's processes, RSS is the largest peak).
	while kill -0 "$launcher" 2>/dev/null; do
		tc=0 tr=0
		for pid in $(netprocs "$drv" "$launcher"); do
			c=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
			r=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
			tc=$((tc + ${c:-0}))
			[ "${r:-0}" -gt "$tr" ] && tr=${r:-0}
		done
		[ "$tc" -gt 0 ] && cpu=$tc rss=$tr
		sleep 0.2
	done
	wait "$launcher"
	python3 - "$json" "$drv" "$mtu" "$dir" "$cpu" "$rss" "$tck" >>"$out" <<'PY'
import json, sys
path, drv, mtu, d, cpu, rss, tck = sys.argv[1:]
try:
    r = json.load(open(path))["end"]["sum_received"]
    gbps, gb = r["bits_per_second"] / 1e9, r["bytes"] / 1e9
except Exception:
    gbps, gb = 0.0, 0.0
cpu_s = int(cpu) / int(tck)
print(drv, mtu, d, f"{gbps:.3f}", f"{cpu_s / gb:.3f}" if gb else "0", rss or 0)
PY
	tail -1 "$out" >&2
}

for mtu in $MTUS; do
	for dir in out in; do
		for run in $(seq "$RUNS"); do
			for drv in $DRIVERS; do
				measure "$drv" "$mtu" "$dir"
			done
		done
	done
done
