#!/usr/bin/env bash
# Host ports forwarded into a namespace through slirp4netns's API (add_hostfwd), side by side:
#   nsnet linked as slirp4netns   vs   Debian's slirp4netns 1.2.0
# iperf3 client on the world's loopback -> 127.0.0.1:15201 (hostfwd) -> iperf3 server in a
# user + network namespace behind tap0 (MTU 65520); both directions (-R), SECS seconds each;
# also the network process's CPU seconds. Run as root: it measures in a fresh network
# namespace holding only lo (nothing leaves the machine). Environment: SECS (default 5),
# NSNET (default target/release/nsnet, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/hostfwd.sh: run as root" >&2; exit 1; }
for c in iperf3 slirp4netns; do command -v $c >/dev/null || { apt-get update -qq; apt-get install -y -qq iperf3 slirp4netns >/dev/null; break; }; done
NSNET=${NSNET:-target/release/nsnet}
[ -x "$NSNET" ] || cargo build --release -j1 --bin nsnet
stage=$(mktemp -d /tmp/nsnet-hostfwd.XXXXXX)
trap 'rm -rf "$stage"' EXIT
ln -s "$(realpath "$NSNET")" "$stage/slirp4netns"
unshare --net --mount -- bash -c '
set -euo pipefail
ip link set lo up
stage=$1 secs=$2
api() { python3 -c "import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.sendall(sys.argv[2].encode());s.shutdown(1);print(s.recv(4096).decode())" "$@"; }
echo "| binary | direction | Gbit/s | CPU s |"
echo "|---|---|---|---|"
for bin in "$stage/slirp4netns" "$(command -v slirp4netns)"; do
  name=nsnet; [ "$bin" = "$stage/slirp4netns" ] || name=slirp4netns
  for dir in "" -R; do
    unshare --user --map-root-user --net sh -c "ip link set lo up; exec iperf3 -s -1 -p 5201" >/dev/null 2>&1 & g=$!
    sleep 0.3
    rm -f "$stage/api.sock"
    "$bin" -c --mtu 65520 -a "$stage/api.sock" $g tap0 >/dev/null 2>&1 & s=$!
    for i in $(seq 50); do [ -S "$stage/api.sock" ] && break; sleep 0.1; done
    api "$stage/api.sock" "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"tcp\",\"host_addr\":\"127.0.0.1\",\"host_port\":15201,\"guest_port\":5201}}" >/dev/null
    sleep 0.2
    r=$(iperf3 -c 127.0.0.1 -p 15201 -t "$secs" $dir -J | python3 -c "import json,sys;print(round(json.load(sys.stdin)[\"end\"][\"sum_received\"][\"bits_per_second\"]/1e9,2))")
    cpu=$(awk "{print (\$14+\$15)/100}" /proc/$s/stat)
    echo "| $name | ${dir:-host → ns} | $r | $cpu |"
    kill $s $g 2>/dev/null || true; wait $s $g 2>/dev/null || true
  done
done
' bash "$stage" "${SECS:-5}"
