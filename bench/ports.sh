#!/usr/bin/env bash
# Published-port benchmark, side by side in one run:
#   nsnet (builtin port driver)  vs  RootlessKit 1.1.0 (builtin port driver, with slirp4netns)
#   vs pasta -t, and direct host loopback as the limit.
# Throughput: iperf3 through the published port, host → namespace and -R, T seconds, median of
# REPS. Connection rate: wrk with `Connection: close` (one TCP connection per request) against
# nginx inside the namespace.
# Run as root (it installs iperf3, wrk, nginx-light, rootlesskit, slirp4netns, passt from
# Debian); it measures as the unprivileged user nsnet-test (made by scripts/test) inside a
# fresh network namespace holding only lo. All traffic is on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare ports.sh iperf3:iperf3 wrk:wrk nginx:nginx-light rootlesskit:rootlesskit slirp4netns:slirp4netns pasta:passt
cp target/release/nsnet bench/ports-inner.sh "$stage/"
chown -R "$USER_NAME" "$stage"
# pasta insists on an interface with a default route to copy its configuration from: give the
# world a veth pair (both ends here, forwarding off), whose route leads nowhere.
unshare --net -- sh -c "ip link set lo up && ip link add bv0 type veth peer name bv1 && \
	ip addr add 192.0.2.1/24 dev bv0 && ip link set bv0 up && ip link set bv1 up && \
	ip route add default via 192.0.2.254 dev bv0 && exec runuser -u $USER_NAME -- env T=${T:-5} REPS=${REPS:-3} bash $stage/ports-inner.sh $stage"
