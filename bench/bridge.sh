#!/usr/bin/env bash
# Bridge networks: attach latency and container → host throughput.
#   1. `nsnet network connect` latency (ms per container, the whole CLI call: process start,
#      joining the instance, IPAM, bridge/veth/addresses/routes) for the 1st container, the
#      2nd–50th and the 201st–250th on one network, and `disconnect` for all 250.
#   2. iperf3 from a container on the default network (veth → bridge nerdctl0 → NAT → tap0 →
#      builtin stack → host socket) to an iperf3 server on the world's loopback via 10.0.2.2,
#      at the network MTU 1500 and on a network with MTU 65520; against the same from the
#      child netns directly (no bridge, no NAT). 5 s per run, median of 3.
# Run as root: measures as the unprivileged test user (created by scripts/test) in a fresh
# network namespace holding only lo, so nothing can leave the machine.
# Environment: RUNS (default 3), SECS (default 5), COUNT (default 250).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare bridge.sh iperf3:iperf3 nft:nftables newuidmap:uidmap
chmod 0755 "$stage"
cp target/release/nsnet "$stage/nsnet"
cp bench/bridge-inner.sh "$stage/inner.sh"
chmod 0755 "$stage/nsnet" "$stage/inner.sh"
chown "$USER_NAME" "$stage"
unshare --net --mount --propagation shared -- sh -c '
	set -e
	ip link set lo up
	exec runuser -u "$0" -- env HOME="/home/$0" RUNS="${RUNS:-3}" SECS="${SECS:-5}" \
		COUNT="${COUNT:-250}" PATH="$PATH:/usr/sbin" "$1/inner.sh" "$1"
' "$USER_NAME" "$stage"
