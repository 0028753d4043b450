#!/usr/bin/env bash
# Socket bypass, one run side by side: a container's outbound TCP (iperf3 to a server on the
# world's 192.0.2.10, both directions)
#   through the bypass (`nsnet container run --bypass`: the container's socket is a host one)
#   vs the normal path (veth → bridge nerdctl0 → NAT → tap0 → builtin stack → host socket)
#   vs host loopback (iperf3 in the world itself: the limit);
# and a published port (iperf3 -s in the container, -p 127.0.0.1:HP:5201, client on the
# world's loopback) with --bypass (the app's listener is a host socket) vs the port driver's relay.
# T seconds per run, REPS runs per cell interleaved (host, normal, bypass, host, …), median.
# Run as root: installs iperf3, runc and busybox-static if missing; measures as the
# unprivileged user nsnet-test (made by scripts/test) in a fresh network namespace holding only
# lo with 192.0.2.10, so nothing leaves the machine. Environment: T (default 5), REPS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare bypass.sh iperf3:iperf3 runc:runc busybox:busybox-static newuidmap:uidmap
chmod 0755 "$stage"
cp target/release/nsnet bench/bypass-inner.sh "$stage/"
# The container's root: busybox's sh, iperf3 and the libraries it links.
R=$stage/rootfs
mkdir -p "$R/bin" "$R/tmp" "$R/etc"
cp /bin/busybox "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
iperf=$(command -v iperf3)
cp --parents "$iperf" $(ldd "$iperf" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }') "$R/"
chmod 1777 "$R/tmp"
chown -R "$USER_NAME" "$stage"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
unshare --net --mount --propagation shared -- sh -c '
	set -e
	ip link set lo up
	ip addr add 192.0.2.10/32 dev lo
	exec runuser -u "$0" -- env HOME="/home/$0" T="${T:-5}" REPS="${REPS:-3}" \
		PATH="$PATH:/usr/sbin" bash "$1/bypass-inner.sh" "$1"
' "$USER_NAME" "$stage"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
