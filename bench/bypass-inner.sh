#!/usr/bin/env bash
# The measuring half of bench/bypass.sh, run as the unprivileged user inside the bench world.
set -euo pipefail
STAGE=$1
N=$STAGE/nsnet
R=$STAGE/rootfs
# A short runtime dir: the bypass listener path must fit a unix socket address.
export XDG_DATA_HOME=$STAGE/data XDG_RUNTIME_DIR=/tmp/nsb.$$
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
cleanup() {
	[ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
	[ -f "$XDG_RUNTIME_DIR/nsnet/default.pid" ] && kill "$(cat "$XDG_RUNTIME_DIR/nsnet/default.pid")" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap 'cleanup; rm -rf "$XDG_RUNTIME_DIR"' EXIT
iperf3 -s -B 192.0.2.10 -p 5201 >/dev/null 2>&1 &
server=$!
sleep 0.5
# The default instance starts with the first container; start it before measuring.
"$N" container run --rm --rootfs "$R" -- sh -c true
# A container whose iperf3 cannot start says why here, not as a JSON error.
"$N" container run --rm --rootfs "$R" -- iperf3 --version >&2
gbps() { python3 -c 'import json,sys; j=json.load(sys.stdin); e=j["end"].get("sum_received"); print("%.2f" % (e["bits_per_second"] / 1e9) if e else "error:" + j.get("error","?").replace(" ","_"))'; }
declare -A v
for r in $(seq 1 "$REPS"); do
	for dir in up down; do
		flag=(); [ $dir = down ] && flag=(-R)
		v[host,$dir]+="$(iperf3 -c 192.0.2.10 -p 5201 -t "$T" "${flag[@]}" -J | gbps) "
		v[normal,$dir]+="$("$N" container run --rm -e TMPDIR=/dev/shm --rootfs "$R" -- iperf3 -c 192.0.2.10 -p 5201 -t "$T" "${flag[@]}" -J | gbps) "
		v[bypass,$dir]+="$("$N" container run --rm --bypass -e TMPDIR=/dev/shm --rootfs "$R" -- iperf3 -c 192.0.2.10 -p 5201 -t "$T" "${flag[@]}" -J | gbps) "
	done
done
med() { printf '%s\n' $1 | sort -g | sed -n "$(( (REPS + 1) / 2 ))p"; }
echo "container outbound to 192.0.2.10 (iperf3 ${T}s, median of $REPS, Gbit/s; ratio to host loopback)"
echo "| path | container → server | ratio | server → container (-R) | ratio | runs up / down |"
echo "|---|---|---|---|---|---|"
hu=$(med "${v[host,up]}"); hd=$(med "${v[host,down]}")
for p in host bypass normal; do
	u=$(med "${v[$p,up]}"); d=$(med "${v[$p,down]}")
	label=$p
	case $p in
	host) label="host loopback (no container: the limit)" ;;
	bypass) label="container --bypass" ;;
	normal) label="container, normal path (bridge + NAT + stack)" ;;
	esac
	printf '| %s | %s | %s | %s | %s | %s/ %s|\n' "$label" "$u" "$(awk -v a="$u" -v b="$hu" 'BEGIN { printf "%.2f", a / b }')" \
		"$d" "$(awk -v a="$d" -v b="$hd" 'BEGIN { printf "%.2f", a / b }')" "${v[$p,up]}" "${v[$p,down]}"
done
