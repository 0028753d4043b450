#!/usr/bin/env bash
# A bounded soak of mixed traffic, nsnet beside RootlessKit 1.1.0 + slirp4netns in the same run:
#   bench/soak.sh [SECONDS]     (default 1800)
# Each side runs, for SECONDS, at once: inbound through its published ports (builtin port
# driver, TCP and UDP) into echo servers inside, and outbound from inside to echo servers on
# the host's loopback through its user-mode network (10.0.2.2) plus DNS queries to its
# forwarder (10.0.2.3), which forwards to a resolver of the benchmark's own on 127.0.0.1
# (bench/soak.py: bulk 4 MiB exchanges SHA-256 checked, short connections, UDP
# request/response, DNS). Every 10 s the RSS and open descriptors of every nsnet, rootlesskit
# and slirp4netns process are summed per side; the report gives them after a warm-up of a
# fifth of the run, and the traffic counts. Run as root; it measures as the unprivileged user
# nsnet-test (made by scripts/test) in fresh network and mount namespaces (lo, and a veth whose
# default route leads nowhere). All traffic stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-1800}
. bench/lib.sh
bench_prepare soak.sh rootlesskit:rootlesskit slirp4netns:slirp4netns python3:python3
trap 'kill "$sampler" 2>/dev/null || true; rm -rf "$stage"' EXIT
cp target/release/nsnet bench/soak.py bench/soak-inner.sh "$stage/"
echo "nameserver 127.0.0.1" >"$stage/resolv.conf"
chown -R "$USER_NAME" "$stage"
echo "soak: $D s of mixed traffic, one run, $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/soak.py sample "$stage" $((D + 120)) 10 "$stage/samples.csv" & sampler=$!
unshare --net --mount -- sh -c "mount --bind $stage/resolv.conf /etc/resolv.conf && \
	sysctl -qw net.ipv4.ip_unprivileged_port_start=0 && ip link set lo up && \
	ip link add bv0 type veth peer name bv1 && ip addr add 192.0.2.1/24 dev bv0 && \
	ip link set bv0 up && ip link set bv1 up && ip route add default via 192.0.2.254 dev bv0 && \
	exec runuser -u $USER_NAME -- env DURATION=$D bash $stage/soak-inner.sh $stage"
kill "$sampler" 2>/dev/null || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "processes sampled every 10 s, after a warm-up of $((D / 5)) s:"
python3 bench/soak.py report "$stage/samples.csv" $((D / 5))
