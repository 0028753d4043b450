#!/usr/bin/env bash
# Request-response latency through the user-mode network, side by side in one run: 10,000
# round trips (ROUNDS) of a 1-byte and of a 1 KiB request and response, from one client and
# from 32 at once, each round trip timed; median and p99 in µs, and each path's added
# latency over host loopback (the same client and server without any user-mode hop):
#   loopback (the limit) | nsnet run --net=builtin | RootlessKit 1.1.0 + slirp4netns | pasta
# The client (bench/rr.py, TCP_NODELAY, one process per client) runs inside the namespace and
# talks to a server on the world's loopback through the gateway (10.0.2.2; pasta's default
# gateway mapping for Debian's pasta). Python's own cost per round trip is in every row,
# loopback's included: compare the added latency.
#
# Run as root: it installs what it needs and measures as the unprivileged test user (created
# by scripts/test) in a fresh network namespace (lo and a veth whose default route leads
# nowhere, pasta's template). Run it on an otherwise idle machine.
# Environment: ROUNDS (default 10000), DRIVERS (default "loopback nsnet rootlesskit pasta").
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare latency.sh rootlesskit:rootlesskit slirp4netns:slirp4netns pasta:passt python3:python3 newuidmap:uidmap
cp target/release/nsnet bench/rr.py "$stage/"
cat >"$stage/inner.sh" <<'INNER'
set -uo pipefail
stage=$1
cd "$stage"
R="python3 $stage/rr.py"
python3 "$stage/rr.py" serve 127.0.0.1 19500 >"$stage/server.out" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for i in $(seq 100); do grep -q ready "$stage/server.out" 2>/dev/null && break; sleep 0.05; done
printf '| path | clients | size | median µs | p99 µs | added median µs | round trips |\n|---|---|---|---|---|---|---|\n'
for c in 1 32; do
	for size in 1 1024; do
		base=""
		for drv in $DRIVERS; do
			run="$R run GW 19500 -c $c -n $ROUNDS -q $size -p $size"
			case $drv in
			loopback) out=$(${run/GW/127.0.0.1}) ;;
			nsnet) out=$(./nsnet run --net=builtin -- ${run/GW/10.0.2.2} 2>/dev/null | tail -1) ;;
			rootlesskit) out=$(rootlesskit --net=slirp4netns -- ${run/GW/10.0.2.2} 2>/dev/null | tail -1) ;;
			pasta) out=$(pasta --config-net -q -T none -U none -t none -u none -- ${run/GW/192.0.2.254} 2>/dev/null | tail -1) ;;
			esac
			read -r med p99 n <<<"${out:-– – 0}"
			[ "$drv" = loopback ] && base=$med
			added=$(python3 -c "import sys; a, b = sys.argv[1:]; print(f'{float(a) - float(b):.1f}')" "$med" "${base:-$med}" 2>/dev/null || echo –)
			printf '| %s | %s | %s B | %s | %s | %s | %s |\n' "$drv" "$c" "$size" "$med" "$p99" "$added" "$n"
		done
	done
done
INNER
chown -R "$USER_NAME" "$stage"
unshare --net -- sh -c "ip link set lo up && ip link add bv0 type veth peer name bv1 && \
	ip addr add 192.0.2.1/24 dev bv0 && ip link set bv0 up && ip link set bv1 up && \
	ip route add default via 192.0.2.254 dev bv0 && \
	exec runuser -u $USER_NAME -- env ROUNDS=${ROUNDS:-10000} \
		DRIVERS='${DRIVERS:-loopback nsnet rootlesskit pasta}' bash $stage/inner.sh $stage"
