#!/usr/bin/env bash
# Inner half of bench/soak.sh: runs as the unprivileged user inside the benchmark's own
# network and mount namespaces (/etc/resolv.conf names the resolver on 127.0.0.1 started
# here); stops everything it started by PID.
set -euo pipefail
stage=$1
D=$DURATION
cd "$stage"
export NSNET_BENCH_RUN="$stage"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
			p=${f#/proc/}; p=${p%/environ}
			[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && kill -KILL "$p" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
S="python3 $stage/soak.py"
ready() { for _ in $(seq 400); do [ -e "$stage/ready-$1" ] && return; sleep 0.05; done; echo "$1 never ready" >&2; exit 1; }
# The outbound load runs 15 s longer, so the published ports outlive the inbound load (a
# closed port at the end would count as failures of the inbound side).
inside() { echo "$S serve 0.0.0.0 9900 9901 $stage/ready-$1 & exec $S load 10.0.2.2 19400 19410 10.0.2.3 $((D + 15)) $stage/out-$1-outbound.json"; }

$S serve 127.0.0.1 19400 19410 "$stage/ready-host" & pids+=($!)
$S dns 127.0.0.1 53 "$stage/ready-dns" & pids+=($!)
ready host
ready dns
./nsnet run --net=builtin --port-driver=builtin -p 127.0.0.1:19401:9900/tcp -p 127.0.0.1:19411:9901/udp \
	-- sh -c "$(inside nsnet)" 2>"$stage/nsnet.err" & nsnet=$!
rootlesskit --net=slirp4netns --port-driver=builtin -p 127.0.0.1:19402:9900/tcp -p 127.0.0.1:19412:9901/udp \
	-- sh -c "$(inside rootlesskit)" >/dev/null 2>"$stage/rootlesskit.err" & rk=$!
pids+=("$nsnet" "$rk")
ready nsnet
ready rootlesskit
$S load 127.0.0.1 19401 19411 - "$D" "$stage/out-nsnet-inbound.json" & a=$!
$S load 127.0.0.1 19402 19412 - "$D" "$stage/out-rootlesskit-inbound.json" & b=$!
pids+=("$a" "$b")
wait "$a" "$b" "$nsnet" "$rk" || true
for side in nsnet rootlesskit; do
	for dir in inbound outbound; do
		printf '%-12s %-9s %s\n' "$side" "$dir" "$(cat "$stage/out-$side-$dir.json" 2>/dev/null || echo 'no result')"
	done
done
