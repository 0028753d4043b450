#!/usr/bin/env bash
# The measuring half of bench/bridge.sh, run as the unprivileged user inside the bench world.
set -euo pipefail
STAGE=$1
N=$STAGE/nsnet
export XDG_DATA_HOME=$STAGE/data
S=$STAGE/state
mkdir -p "$XDG_DATA_HOME"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "${inst:-}" ] && kill "$inst" 2>/dev/null || true
	[ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT
"$N" run --net=builtin --mtu=65520 --detach-netns --state-dir "$S" -- sleep infinity 2>/dev/null &
inst=$!
until "$N" ns exec --child -n --state-dir "$S" -- true 2>/dev/null; do sleep 0.1; done
now() { date +%s%N; }

# Containers: network namespaces created in the instance's user namespace, held by sleep.
container() {
	"$N" ns exec --child -U --state-dir "$S" -- unshare -n sleep infinity &
	local p=$!
	pids+=("$p")
	until [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ]; do sleep 0.005; done
	CTR=$p
}

echo "attach latency (ms per container, nsnet network connect; $COUNT containers on one network)"
declare -a ms
ctrs=()
for i in $(seq 1 "$COUNT"); do
	container
	ctrs+=("$CTR")
	t0=$(now)
	"$N" network connect --state-dir "$S" bridge "/proc/$CTR/ns/net" >/dev/null
	ms[$i]=$(( ($(now) - t0) / 1000 ))
done
avg() { # avg FROM TO (µs → ms)
	local s=0 n=0
	for i in $(seq "$1" "$2"); do s=$((s + ms[i])); n=$((n + 1)); done
	awk -v s=$s -v n=$n 'BEGIN { printf "%.1f", s / n / 1000 }'
}
first=$(avg 1 1)
# Small COUNTs (quick runs) shrink the windows instead of indexing below 1.
tail_from=$(( COUNT > 50 ? COUNT - 49 : (COUNT > 1 ? 2 : 1) ))
mid=$(avg $(( COUNT > 1 ? 2 : 1 )) $(( COUNT < 50 ? COUNT : 50 )))
last=$(avg "$tail_from" "$COUNT")
t0=$(now)
for c in "${ctrs[@]}"; do "$N" network disconnect --state-dir "$S" bridge "/proc/$c/ns/net"; done
det=$(awk -v t=$(( $(now) - t0 )) -v n=${#ctrs[@]} 'BEGIN { printf "%.1f", t / n / 1e6 }')
printf '| 1st (creates bridge + nft table) | 2nd–50th | %dth–%dth | disconnect, each of %d |\n' "$tail_from" "$COUNT" "$COUNT"
printf '| %s | %s | %s | %s |\n' "$first" "$mid" "$last" "$det"
for p in "${ctrs[@]}"; do kill "$p" 2>/dev/null || true; done
"$N" network gc --state-dir "$S" >/dev/null

echo
echo "container -> host throughput (iperf3 -c 10.0.2.2, ${SECS}s, median of $RUNS, Gbit/s)"
iperf3 -s -B 127.0.0.1 -p 5201 >/dev/null 2>&1 &
server=$!
sleep 0.5
"$N" network create --state-dir "$S" jumbo --mtu 65520 >/dev/null
container; c1500=$CTR
container; cjumbo=$CTR
"$N" network connect --state-dir "$S" bridge "/proc/$c1500/ns/net" >/dev/null
"$N" network connect --state-dir "$S" jumbo "/proc/$cjumbo/ns/net" >/dev/null
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'; }
run() { # run LABEL nsnet-ns-exec-args...
	local label=$1 v=()
	shift
	for r in $(seq 1 "$RUNS"); do
		v+=("$("$N" ns exec "$@" -- iperf3 -c 10.0.2.2 -p 5201 -t "$SECS" -J | gbps)")
	done
	printf '| %s | %s | %s |\n' "$label" "$(printf '%s\n' "${v[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")" "${v[*]}"
}
echo "| path | median | runs |"
echo "|---|---|---|"
run "child netns directly (tap0 MTU 65520)" --child -n --state-dir "$S"
run "container, bridge MTU 65520 + NAT" "$cjumbo" -n
run "container, bridge MTU 1500 + NAT (default network)" "$c1500" -n
