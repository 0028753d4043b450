#!/usr/bin/env bash
# The measuring half of bench/multinode.sh, run as root: builds one two-host lab per variant
# (all at once, in namespaces of their own; the rootless networks run as $BENCH_USER), then
# measures the variants interleaved. Appends "variant test mbit_per_s loss_percent
# part=cpu_s_per_s..." lines to $STAGE/results.tsv; stops everything it started by PID.
set -uo pipefail
STAGE=$1
cd "$STAGE"
out=$STAGE/results.tsv
: >"$out"
tck=$(getconf CLK_TCK)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT

# hold CMD...: runs `CMD... sleep` (a command that makes or joins namespaces and execs sleep),
# and sets HELD to its PID once sleep runs, when /proc/PID/ns/* name the namespaces.
hold() {
	"$@" sleep 1000000 </dev/null >/dev/null 2>&1 &
	HELD=$!
	pids+=("$HELD")
	local n
	for n in $(seq 200); do
		[ "$(cat "/proc/$HELD/comm" 2>/dev/null)" = sleep ] && return
		sleep 0.05
	done
	echo "namespace holder $HELD never started" >&2
	exit 1
}
in_ns() { local p=$1; shift; nsenter -t "$p" -n -- "$@"; }

declare -A NODE LAUNCHER POD
as_user=(setpriv "--reuid=$BENCH_USER" "--regid=$BENCH_USER" --init-groups --)
publish=(--port-driver=builtin -p 0.0.0.0:8472:8472/udp)

# lab VARIANT: the LAN, two hosts, the rootless networks, the overlay and a pod per host.
lab() {
	local v=$1 i j h node dev st lan n
	hold unshare --net
	lan=$HELD
	in_ns "$lan" sh -c 'ip link set lo up && ip link add br0 type bridge && ip link set br0 up'
	for i in 1 2; do
		hold unshare --net
		h=$HELD
		in_ns "$lan" ip link add "vh$i" mtu 1500 type veth peer name eth0 mtu 1500 netns "/proc/$h/ns/net"
		in_ns "$lan" ip link set "vh$i" master br0 up
		in_ns "$h" sh -c "ip link set lo up && ip addr add 198.51.100.$i/24 dev eth0 && ip link set eth0 up"
		st=$STAGE/state-$v-$i
		case $v in
		kernel)
			node=$h dev="eth0 local 198.51.100.$i"
			;;
		nsnet* | rootlesskit)
			# nsenter itself, not in_ns: a backgrounded function is a subshell, and $! must be
			# the launcher (nsenter -n and setpriv exec, so its PID ends up the launcher's).
			if [ "$v" != rootlesskit ]; then
				nsenter -t "$h" -n -- "${as_user[@]}" "$STAGE/$v" run --net=builtin "${publish[@]}" \
					--state-dir "$st" -- sleep 1000000 </dev/null >"$STAGE/$v-$i.log" 2>&1 &
			else
				nsenter -t "$h" -n -- "${as_user[@]}" rootlesskit --net=slirp4netns "${publish[@]}" \
					--state-dir "$st" -- sleep 1000000 </dev/null >"$STAGE/$v-$i.log" 2>&1 &
			fi
			LAUNCHER[$v.$i]=$!
			pids+=($!)
			for n in $(seq 200); do [ -s "$st/child_pid" ] && break; sleep 0.05; done
			[ -s "$st/child_pid" ] || { echo "$v on host $i never started:" >&2; cat "$STAGE/$v-$i.log" >&2; exit 1; }
			node=$(cat "$st/child_pid") dev=tap0
			;;
		esac
		NODE[$v.$i]=$node
		# Flannel's vxlan backend (flannel.1 there) and the bridge its CNI delegate makes.
		j=$((3 - i))
		in_ns "$node" sh -c "set -e
			ip link add vxlan0 address 02:4e:53:00:00:0$i type vxlan id 1 dstport 8472 dev $dev nolearning
			ip link set vxlan0 mtu 1450 up
			ip addr add 10.244.$i.0/32 dev vxlan0
			ip route add 10.244.$j.0/24 via 10.244.$j.0 dev vxlan0 onlink
			ip neigh replace 10.244.$j.0 lladdr 02:4e:53:00:00:0$j dev vxlan0 nud permanent
			bridge fdb append 02:4e:53:00:00:0$j dev vxlan0 dst 198.51.100.$j self permanent
			ip link add cni0 mtu 1450 type bridge
			ip addr add 10.244.$i.1/24 dev cni0
			ip link set cni0 up
			sysctl -qw net.ipv4.ip_forward=1"
		# The pod: a netns of the node's user namespace (rootless) on cni0.
		if [ "$v" = kernel ]; then hold unshare --net; else hold nsenter -t "$node" -U -n -- unshare --net; fi
		POD[$v.$i]=$HELD
		in_ns "$node" sh -c "ip link add vp$i mtu 1450 type veth peer name eth0 mtu 1450 netns /proc/$HELD/ns/net \
			&& ip link set vp$i master cni0 up"
		in_ns "$HELD" sh -c "ip link set lo up && ip addr add 10.244.$i.2/24 dev eth0 && ip link set eth0 up \
			&& ip route add default via 10.244.$i.1"
	done
	if ! in_ns "${POD[$v.1]}" ping -q -n -c 3 -W 2 10.244.2.2 >/dev/null; then
		echo "$v: pod 1 cannot ping pod 2 across the overlay" >&2
		exit 1
	fi
	nsenter -t "${POD[$v.2]}" -n -- iperf3 -s -B 10.244.2.2 -p 5201 </dev/null >/dev/null 2>&1 &
	pids+=($!)
}

# ticks VARIANT: "part ticks" for each host's network process (utime + stime so far).
ticks() {
	local v=$1 i l t s
	[ "$v" = kernel ] && return
	for i in 1 2; do
		l=${LAUNCHER[$v.$i]}
		case $v in
		nsnet*)
			for t in /proc/"$l"/task/*; do
				s=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')
				case $(cat "$t/comm" 2>/dev/null) in
				nsnet-stack) echo "h$i.stack ${s:-0}" ;;
				nsnet-io) echo "h$i.io ${s:-0}" ;;
				*) echo "h$i.other ${s:-0}" ;;
				esac
			done
			;;
		rootlesskit)
			echo "h$i.rootlesskit $(sed 's/.*) //' "/proc/$l/stat" | awk '{print $12 + $13}')"
			for t in $(pgrep -P "$l" -x slirp4netns); do
				echo "h$i.slirp4netns $(sed 's/.*) //' "/proc/$t/stat" | awk '{print $12 + $13}')"
			done
			;;
		esac
	done | awk '{s[$1] += $2} END {for (k in s) print k, s[k]}' | sort
}

# measure VARIANT TEST: one iperf3 run from pod 1 to pod 2's server.
measure() {
	local v=$1 t=$2 flags json=$STAGE/iperf.json before after t0 t1
	case $t in
	tcp) flags="" ;;
	tcp-r) flags=-R ;;
	udp) flags="-u -b 0 -l 1400" ;;
	esac
	before=$(ticks "$v")
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	in_ns "${POD[$v.1]}" timeout $((SECS + 30)) iperf3 -c 10.244.2.2 -p 5201 -t "$SECS" -J $flags >"$json" 2>/dev/null
	t1=$(date +%s.%N)
	after=$(ticks "$v")
	python3 - "$json" "$v" "$t" "$t0" "$t1" "$tck" "$before" "$after" >>"$out" <<'PY'
import json, sys
path, v, t, t0, t1, tck, before, after = sys.argv[1:]
try:
    r = json.load(open(path))["end"]["sum_received"]
    mbps, loss = r["bits_per_second"] / 1e6, r.get("lost_percent", 0.0)
except Exception:
    mbps, loss = 0.0, 0.0
b = dict(l.split() for l in before.splitlines())
a = dict(l.split() for l in after.splitlines())
wall = float(t1) - float(t0)
cpu = " ".join(f"{k}={(int(a[k]) - int(b.get(k, 0))) / int(tck) / wall:.2f}" for k in sorted(a))
print(v, t, f"{mbps:.1f}", f"{loss:.2f}", cpu)
PY
	tail -1 "$out" >&2
}

for v in $VARIANTS; do lab "$v"; done
echo "labs up; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for run in $(seq "$RUNS"); do
	for t in $TESTS; do
		for v in $VARIANTS; do
			measure "$v" "$t"
		done
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
