#!/usr/bin/env bash
# The measuring half of bench/pasta.sh, run as the unprivileged user inside the bench world.
# The same pasta command line is given to Debian's pasta and to nsnet linked as `pasta`.
# Appends "impl mtu path gbit_per_s cpu_s_per_gb rss_kib" lines to $STAGE/results.tsv.
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

bin() { [ "$1" = debian ] && echo /usr/bin/pasta || echo "$STAGE/pasta"; }

# sample PID...: CPU ticks summed and the largest VmHWM (KiB) of the given processes.
sample() {
	local tc=0 tr=0 c r pid
	for pid in "$@"; do
		c=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
		r=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		tc=$((tc + ${c:-0}))
		[ "${r:-0}" -gt "$tr" ] && tr=${r:-0}
	done
	echo "$tc $tr"
}

# pasta processes of this user (runs are sequential: every one is this run's; Debian's pasta
# re-executes itself as pasta.avx2 where the CPU has it).
procs() { pgrep -u "$(id -u)" '^pasta'; }

record() { # impl mtu path json cpu rss
	python3 - "$4" "$1" "$2" "$3" "$5" "$6" "$tck" >>"$out" <<'PY'
import json, sys
path, impl, mtu, p, cpu, rss, tck = sys.argv[1:]
try:
    r = json.load(open(path))["end"]["sum_received"]
    gbps, gb = r["bits_per_second"] / 1e9, r["bytes"] / 1e9
except Exception:
    gbps, gb = 0.0, 0.0
cpu_s = int(cpu) / int(tck)
print(impl, mtu, p, f"{gbps:.3f}", f"{cpu_s / gb:.3f}" if gb else "0", rss or 0)
PY
	tail -1 "$out" >&2
}

# tap IMPL MTU DIR: iperf3 from inside to the world's loopback through the gateway (10.0.2.2,
# mapped to the host's loopback); DIR "out" sends from the namespace, "in" is -R.
tap() {
	local impl=$1 mtu=$2 dir=$3 rflag="" json="$STAGE/iperf.json" cpu=0 rss=0 s
	[ "$dir" = in ] && rflag=-R
	: >"$json"
	"$(bin "$impl")" --config-net -q -i dummy0 -a 10.0.2.100 -n 24 -g 10.0.2.2 -m "$mtu" \
		-t none -u none -T none -U none -- \
		sh -c "iperf3 -c 10.0.2.2 -p 5201 -t $SECS -J $rflag >$json" 2>/dev/null &
	local launcher=$!
	while kill -0 "$launcher" 2>/dev/null; do
		s=$(sample $(procs))
		[ "${s% *}" -gt 0 ] && cpu=${s% *} rss=${s#* }
		sleep 0.2
	done
	wait "$launcher"
	record "$impl" "$mtu" "tap-$dir" "$json" "$cpu" "$rss"
}

# The PIDs of every descendant of PID $1 (from the process table, by parent PID).
descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1"); do
		echo "$c"
		descendants "$c"
	done
}

# fwd IMPL MTU DIR: a -t forwarded port: a client on the world's loopback, the server inside
# the namespace (DIR "in": host → namespace; "out" is -R). The server keeps running (a
# client that came before it listened must not end it); the client retries until it gets
# through, and the namespace is stopped with its command when pasta is.
fwd() {
	local impl=$1 mtu=$2 dir=$3 rflag="" json="$STAGE/iperf.json" cpu=0 rss=0 s i
	[ "$dir" = out ] && rflag=-R
	: >"$json"
	"$(bin "$impl")" --config-net -q -i dummy0 -a 10.0.2.100 -n 24 -g 10.0.2.2 -m "$mtu" \
		-t 127.0.0.1/15202:5202 -u none -T none -U none -- \
		sh -c "iperf3 -s -p 5202 >/dev/null 2>&1 & wait" 2>/dev/null &
	local launcher=$!
	for i in $(seq 100); do
		iperf3 -c 127.0.0.1 -p 15202 -t "$SECS" -J $rflag >"$json" 2>/dev/null &
		local client=$!
		while kill -0 "$client" 2>/dev/null; do
			s=$(sample $(procs))
			[ "${s% *}" -gt 0 ] && cpu=${s% *} rss=${s#* }
			sleep 0.2
		done
		# iperf3 -J exits 0 even when it failed (a client that came before the server
		# listened gets "Connection reset"): success is a result in the JSON.
		wait "$client"
		grep -q '"sum_received"' "$json" && break
		sleep 0.1
	done
	# The server is the namespace's command: ending it ends pasta. Its PID is found from the
	# outside, as a descendant of the pasta we started: Debian's pasta runs the command in a
	# PID namespace of its own, where the `$!` it wrote means another process (and the
	# command, that namespace's init, ignores SIGTERM): hence SIGKILL, by PID.
	kill -KILL $(descendants "$launcher") 2>/dev/null
	wait "$launcher" 2>/dev/null
	record "$impl" "$mtu" "fwd-$dir" "$json" "$cpu" "$rss"
}

for mtu in $MTUS; do
	for path in ${PATHS:-tap fwd}; do
		for dir in out in; do
			for run in $(seq "$RUNS"); do
				for impl in nsnet debian; do
					"$path" "$impl" "$mtu" "$dir"
				done
			done
		done
	done
done
