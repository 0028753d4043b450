#!/usr/bin/env bash
# Inner half of bench/ports.sh: runs as the unprivileged user inside the benchmark's own
# network namespace. Starts one namespace per contender, each running iperf3 -s and nginx,
# measures, prints the table, and stops everything it started by PID.
set -euo pipefail
stage=$1
cd "$stage"
T=${T:-5}
REPS=${REPS:-3}
# Every process this run starts inherits this variable, which is how cleanup finds them (by
# PID, never by name), whatever namespaces the launchers put them in.
export NSNET_BENCH_RUN="$stage"
pids=()
ours() {
	local f
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "NSNET_BENCH_RUN=$stage"; then
			f=${f#/proc/}
			f=${f%/environ}
			[ "$f" != $$ ] && [ "$f" != "$BASHPID" ] && echo "$f"
		fi
	done
}
cleanup() {
	# Each namespace's servers run in a process group of their own, led by a shell that
	# carries the marker (nginx rewrites its own environment): kill the groups while their
	# leaders still live, then the launchers, then any marked straggler.
	local p
	for p in $(ours); do kill -- "-$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in $(ours); do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$stage/nginx.conf" <<NGINX
daemon off;
user root;
worker_processes 1;
pid $stage/nginx-\$NAME.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $stage/ngx; proxy_temp_path $stage/ngx; fastcgi_temp_path $stage/ngx;
	uwsgi_temp_path $stage/ngx; scgi_temp_path $stage/ngx;
	server { listen 127.0.0.1:8080; location / { return 200 "ok\n"; } }
}
NGINX
mkdir -p "$stage/ngx"
# Each namespace runs: iperf3 server on 5201 and nginx on 8080.
servers() {
	local name=$1
	sed "s/\\\$NAME/$name/" "$stage/nginx.conf" >"$stage/nginx-$name.conf"
	echo "exec setsid sh -c 'iperf3 -s -p 5201 >/dev/null 2>&1 & nginx -c $stage/nginx-$name.conf & wait'"
}

# Direct loopback: the limit.
iperf3 -s -p 15200 >/dev/null 2>&1 &
pids+=($!)
sed "s/\\\$NAME/host/; s/127.0.0.1:8080/127.0.0.1:18200/" "$stage/nginx.conf" >"$stage/nginx-host.conf"
nginx -c "$stage/nginx-host.conf" 2>/dev/null &
pids+=($!)

./nsnet run --net=none --port-driver=builtin -p 127.0.0.1:15201:5201/tcp -p 127.0.0.1:18201:8080/tcp \
	-- sh -c "$(servers nsnet)" 2>/dev/null &
pids+=($!)
rootlesskit --net=slirp4netns --disable-host-loopback --port-driver=builtin \
	-p 127.0.0.1:15202:5201/tcp -p 127.0.0.1:18202:8080/tcp -- sh -c "$(servers rootlesskit)" >/dev/null 2>&1 &
pids+=($!)
pasta --config-net -t 127.0.0.1/15203:5201 -t 127.0.0.1/18203:8080 -T none -u none -U none \
	-- sh -c "$(servers pasta)" >/dev/null 2>&1 &
pids+=($!)
sleep 3

# CPU ticks (user+system, all threads) of a process so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# gbps PORT PID [-R]: prints "Gbit/s CPU-seconds-per-GB" — the second for the process PID
# that carries the port (the launcher's relay), 0 when there is none (loopback).
gbps() {
	local port=$1 pid=$2 dir=${3:-} t0 t1 out
	t0=$(ticks "$pid")
	out=$(iperf3 -c 127.0.0.1 -p "$port" -t "$T" $dir -J 2>/dev/null) || { echo "0 0"; return; }
	t1=$(ticks "$pid")
	echo "$out" | python3 -c '
import json, os, sys
end = json.load(sys.stdin)["end"]["sum_received"]
hz = os.sysconf("SC_CLK_TCK")
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / hz if sys.argv[3] != "0" else 0
print("%.2f %.3f" % (end["bits_per_second"] / 1e9, cpu / (end["bytes"] / 1e9)))' "$t0" "$t1" "$pid" ||
		echo "0 0"
}
rps() { # PORT
	wrk -t2 -c32 -d"${T}s" -H 'Connection: close' "http://127.0.0.1:$1/" 2>/dev/null |
		awk '/Requests\/sec/ {printf "%.0f\n", $2}' || echo 0
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A res
names=(loopback nsnet rootlesskit pasta)
# The process that relays each contender's port (0: none, the loopback limit).
carriers=(0 "${pids[2]}" "${pids[3]}" "${pids[4]}")
ports_iperf=(15200 15201 15202 15203)
ports_http=(18200 18201 18202 18203)
for metric in up down rate; do
	for i in 0 1 2 3; do res[$metric,$i]=""; res[cpu$metric,$i]=""; done
	for rep in $(seq "$REPS"); do
		for i in 0 1 2 3; do
			case $metric in
			up) read -r v c < <(gbps "${ports_iperf[$i]}" "${carriers[$i]}") ;;
			down) read -r v c < <(gbps "${ports_iperf[$i]}" "${carriers[$i]}" -R) ;;
			rate) v=$(rps "${ports_http[$i]}") c= ;;
			esac
			res[$metric,$i]+="$v "
			res[cpu$metric,$i]+="$c "
		done
	done
done
printf '%-34s %10s %10s %12s %10s %14s %12s %12s\n' metric loopback nsnet rootlesskit pasta nsnet/rootlesskit nsnet/pasta nsnet/loopback
for metric in up down rate; do
	case $metric in
	up) label="iperf3 host→ns (Gbit/s)" ;;
	down) label="iperf3 ns→host, -R (Gbit/s)" ;;
	rate) label="connections/s (wrk, Connection: close)" ;;
	esac
	m=()
	for i in 0 1 2 3; do m[$i]=$(echo "${res[$metric,$i]}" | tr ' ' '\n' | grep . | median); done
	ratio() { python3 -c "print('%.2f' % ($1/$2) if $2 else 'n/a')"; }
	printf '%-34s %10s %10s %12s %10s %14s %12s %12s\n' "$label" "${m[0]}" "${m[1]}" "${m[2]}" "${m[3]}" \
		"$(ratio "${m[1]}" "${m[2]}")x" "$(ratio "${m[1]}" "${m[3]}")x" "$(ratio "${m[1]}" "${m[0]}")x"
	echo "  samples: loopback[${res[$metric,0]}] nsnet[${res[$metric,1]}] rootlesskit[${res[$metric,2]}] pasta[${res[$metric,3]}]"
	if [ "$metric" != rate ]; then
		for i in 1 2 3; do c[$i]=$(echo "${res[cpu$metric,$i]}" | tr ' ' '\n' | grep . | median); done
		printf '%-34s %10s %10s %12s %10s %14s %12s\n' "  relay CPU s/GB (ratio <1: nsnet cheaper)" - "${c[1]}" "${c[2]}" "${c[3]}" \
			"$(ratio "${c[1]}" "${c[2]}")x" "$(ratio "${c[1]}" "${c[3]}")x"
	fi
done
