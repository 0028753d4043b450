#!/usr/bin/env bash
# Inner half of bench/burst.sh: runs as the unprivileged user inside the benchmark's own
# network namespace; stops everything it started by PID.
set -euo pipefail
stage=$1
cd "$stage"
export NSNET_BENCH_RUN="$stage"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	# Servers inside the namespaces carry the marker in their environment: find them by it.
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
			p=${f#/proc/}; p=${p%/environ}
			# SIGKILL: a server that is the init of a PID namespace (Debian's pasta runs its
			# command so) ignores SIGTERM.
			[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && kill -KILL "$p" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
B="python3 $stage/burst.py"
serve() { echo "$B serve 0.0.0.0 9900 $stage/ready-$1"; }
ready() { for i in $(seq 200); do [ -e "$stage/ready-$1" ] && return; sleep 0.05; done; echo "$1 never ready" >&2; }
burst() { $B run 127.0.0.1 "$1" "$N" "$SIZE" 60 || true; }

$B serve 127.0.0.1 19200 "$stage/ready-host" & pids+=($!)
$B udp-serve 127.0.0.1 19300 "$stage/ready-udp-host" & pids+=($!)
./nsnet run --net=none --port-driver=builtin -p 127.0.0.1:19201:9900/tcp -p 127.0.0.1:19301:9901/udp \
	-- sh -c "$B udp-serve 0.0.0.0 9901 $stage/ready-udp-nsnet & exec $(serve nsnet)" 2>/dev/null & pids+=($!)
./as/pasta --config-net -t 127.0.0.1/19204:9900 -T none -u none -U none -- $(serve pasta-nsnet) >/dev/null 2>&1 & pids+=($!)
rootlesskit --net=slirp4netns --disable-host-loopback --port-driver=builtin \
	-p 127.0.0.1:19202:9900/tcp -p 127.0.0.1:19302:9901/udp \
	-- sh -c "$B udp-serve 0.0.0.0 9901 $stage/ready-udp-rootlesskit & exec $(serve rootlesskit)" >/dev/null 2>&1 & pids+=($!)
pasta --config-net -t 127.0.0.1/19203:9900 -T none -u none -U none -- $(serve pasta) >/dev/null 2>&1 & pids+=($!)
for n in host nsnet pasta-nsnet rootlesskit pasta udp-host udp-nsnet udp-rootlesskit; do ready $n; done

echo "burst: $N connections at once, $SIZE bytes each way, hash-checked (one run)"
printf '%-44s %s\n' "inbound, direct loopback (the limit)" "$(burst 19200)"
printf '%-44s %s\n' "inbound, nsnet published port (builtin)" "$(burst 19201)"
printf '%-44s %s\n' "inbound, nsnet's pasta -t" "$(burst 19204)"
printf '%-44s %s\n' "inbound, RootlessKit 1.1.0 builtin" "$(burst 19202)"
printf '%-44s %s\n' "inbound, Debian's pasta -t" "$(burst 19203)"
# UDP: UDP_N clients at once, UDP_K datagrams each of 1200 bytes, each answered before the
# next; loss is counted, not retried (the direct row shows what the echo server itself drops).
udp() { $B udp-run 127.0.0.1 "$1" "${UDP_N:-100}" "${UDP_K:-50}" 1200 || true; }
echo "UDP: ${UDP_N:-100} clients at once, ${UDP_K:-50} datagrams of 1200 bytes each, request/response"
printf '%-44s %s\n' "UDP inbound, direct loopback (the limit)" "$(udp 19300)"
printf '%-44s %s\n' "UDP inbound, nsnet published port" "$(udp 19301)"
printf '%-44s %s\n' "UDP inbound, RootlessKit 1.1.0 builtin" "$(udp 19302)"
out() { "$@" 2>/dev/null | tail -1 || true; }
printf '%-44s %s\n' "outbound, nsnet's stack (10.0.2.2)" \
	"$(out ./nsnet run --net=builtin -- $B run 10.0.2.2 19200 "$N" "$SIZE" 60)"
printf '%-44s %s\n' "outbound, RootlessKit 1.1.0 + slirp4netns" \
	"$(out rootlesskit --net=slirp4netns -- $B run 10.0.2.2 19200 "$N" "$SIZE" 60)"
printf '%-44s %s\n' "outbound, Debian's pasta (gateway)" \
	"$(out pasta --config-net -T none -U none -t none -u none -- $B run 192.0.2.254 19200 "$N" "$SIZE" 60)"
