#!/usr/bin/env bash
# Inner half of bench/memory.sh: runs as the unprivileged user inside the benchmark's own
# network namespace; stops everything it started by PID.
set -uo pipefail
stage=$1
cd "$stage"
export NSNET_BENCH_RUN="$stage"
F="python3 $stage/flows.py"
PORTS="19400 19401 19402 19403"
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

printf '%-12s %7s %8s %9s %9s\n' driver flows held rss_kib pss_kib
for drv in $DRIVERS; do
	for n in $FLOWS; do
		ready="$stage/ready-$drv-$n"
		hold="$F hold GW $PORTS -n $n -r $ready"
		case $drv in
		nsnet) ./nsnet run --net=builtin -- ${hold/GW/10.0.2.2} 2>/dev/null & ;;
		rootlesskit) rootlesskit --net=slirp4netns -- ${hold/GW/10.0.2.2} 2>/dev/null & ;;
		pasta) pasta --config-net -T none -U none -t none -u none -- ${hold/GW/192.0.2.254} 2>/dev/null & ;;
		esac
		launcher=$!
		for i in $(seq 1200); do [ -s "$ready" ] && break; kill -0 $launcher 2>/dev/null || break; sleep 0.1; done
		# Idle for 3 s: long enough for the stack's empty rings to be freed (once a second).
		sleep 3
		pids=$(netprocs "$drv" "$launcher")
		rss=$(sum_kb VmRSS status $pids)
		pss=$(sum_kb Pss smaps_rollup $pids)
		printf '%-12s %7s %8s %9s %9s\n' "$drv" "$n" "$(cat "$ready" 2>/dev/null || echo 0)" "$rss" "$pss"
		for p in $(pgrep -P "$launcher") $launcher; do kill -KILL "$p" 2>/dev/null; done
		# The command (a grandchild, or pasta's PID-namespace init) goes with the marker sweep.
		for f in /proc/[0-9]*/environ; do
			if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
				p=${f#/proc/}; p=${p%/environ}
				[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && [ "$p" != "$server" ] && kill -KILL "$p" 2>/dev/null
			fi
		done
		wait "$launcher" 2>/dev/null
		sleep 1
	done
done
