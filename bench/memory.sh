#!/usr/bin/env bash
# Memory of the user-mode network, side by side in one run: resident memory of every process
# that runs the network, idle and holding N idle outbound TCP connections (default 1,000 and
# 10,000; each has carried one 64-byte exchange each way, then sits), for
#   nsnet run --net=builtin          (the launcher's two stages; its stack runs in the parent)
#   rootlesskit --net=slirp4netns    (RootlessKit 1.1.0's two stages + slirp4netns)
#   pasta --config-net               (Debian's pasta)
# RSS is VmRSS summed over those processes; PSS (smaps_rollup: shared pages divided among the
# processes mapping them) where the process lets its owner read it (Debian's pasta is not
# dumpable: "–"). Per-flow cost = (RSS at N − RSS idle) / N, beside the kernel's own memory
# for the sockets, which is not counted in anyone's RSS.
#
# Run as root: it installs what it needs and measures as the unprivileged test user (created
# by scripts/test) in a fresh network namespace (lo and a veth whose default route leads
# nowhere, pasta's template); the connections go to a holder on that namespace's loopback.
# Environment: FLOWS (default "0 1000 10000"), DRIVERS (default "nsnet rootlesskit pasta").
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare memory.sh rootlesskit:rootlesskit slirp4netns:slirp4netns pasta:passt python3:python3 newuidmap:uidmap
cp target/release/nsnet bench/flows.py bench/memory-inner.sh "$stage/"
chown -R "$USER_NAME" "$stage"
unshare --net -- sh -c "ip link set lo up && ip link add bv0 type veth peer name bv1 && \
	ip addr add 192.0.2.1/24 dev bv0 && ip link set bv0 up && ip link set bv1 up && \
	ip route add default via 192.0.2.254 dev bv0 && \
	sysctl -qw net.ipv4.ip_local_port_range='1024 65535' && \
	exec runuser -u $USER_NAME -- env FLOWS='${FLOWS:-0 1000 10000}' \
		DRIVERS='${DRIVERS:-nsnet rootlesskit pasta}' bash $stage/memory-inner.sh $stage" 2> >(grep -v " Killed " >&2)
