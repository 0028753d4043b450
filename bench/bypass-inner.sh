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
# A published port: iperf3 -s in the container behind -p 127.0.0.1:HP:5201, the client on the
# world's loopback. Bypassed, the listener on HP is iperf3's own socket once it listens (the
# container's bypass count says when); else the port driver relays.
published() {
	local mode=$1 dir=$2 hp=$((15300 + RANDOM % 500)) name="pub$RANDOM" extra=() flag=() out=
	[ "$mode" = bypass ] && extra=(--bypass)
	[ "$dir" = down ] && flag=(-R)
	"$N" container run -d --name "$name" "${extra[@]}" -e TMPDIR=/dev/shm -p "127.0.0.1:$hp:5201" --rootfs "$R" -- iperf3 -s -1 -p 5201 >/dev/null
	for _ in $(seq 1 100); do
		if [ "$mode" = bypass ]; then
			"$N" container inspect -f '{{json .NsnetBypass}}' "$name" | grep -q '"Bypassed":1' || { sleep 0.05; continue; }
		fi
		# Before iperf3 listens inside, the relay takes the connection and closes it.
		out=$(iperf3 -c 127.0.0.1 -p "$hp" -t "$T" "${flag[@]}" -J 2>/dev/null | gbps || true)
		case $out in error:* | "") sleep 0.1 ;; *) break ;; esac
	done
	"$N" container rm -f "$name" >/dev/null 2>&1 || true
	echo "${out:-error:no_server}"
}
for r in $(seq 1 "$REPS"); do
	for dir in up down; do
		v[pubnormal,$dir]+="$(published normal $dir) "
		v[pubbypass,$dir]+="$(published bypass $dir) "
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
echo
echo "published port 127.0.0.1:HP -> container 5201 (client on the world's loopback; ratio to host loopback)"
echo "| path | client → container | ratio | container → client (-R) | ratio | runs up / down |"
echo "|---|---|---|---|---|---|"
for p in pubbypass pubnormal; do
	u=$(med "${v[$p,up]}"); d=$(med "${v[$p,down]}")
	case $p in
	pubbypass) label="-p with --bypass (the app's own listener on the host)" ;;
	pubnormal) label="-p, normal path (port driver relay into the container)" ;;
	esac
	printf '| %s | %s | %s | %s | %s | %s/ %s|\n' "$label" "$u" "$(awk -v a="$u" -v b="$hu" 'BEGIN { printf "%.2f", a / b }')" \
		"$d" "$(awk -v a="$d" -v b="$hd" 'BEGIN { printf "%.2f", a / b }')" "${v[$p,up]}" "${v[$p,down]}"
done
