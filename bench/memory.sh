#!/usr/bin/env bash
# Memory of the user-mode network, side by side in one run: resident memory of every process
# that runs the network, idle and holding N idle outbound TCP connections (default 1,000,
# 10,000 and 100,000; each has carried one 64-byte exchange each way, then sits), and a bulk
# flow (iperf3 through the network) with no idle flow and beside the most of them, for
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
# Environment: FLOWS (default "0 1000 10000 100000"), DRIVERS (default "nsnet rootlesskit
# pasta"), BULK (idle flows beside the bulk flow, default "0 MAX", MAX the largest of FLOWS;
# "" skips it), SECS (iperf3 seconds, default 5).
#
# Open files: every flow is a socket in the holder, in the network process and in the
# server, each a process of its own, so each needs the largest N plus a margin of
# RLIMIT_NOFILE. Root raises the hard and soft limits for the bench's processes alone
# (prlimit on the command that drops to the user); where root may not (no CAP_SYS_RESOURCE)
# the bench says so and runs within the limit it has, and a row shows how many flows were
# held and where the holder failed.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare memory.sh rootlesskit:rootlesskit slirp4netns:slirp4netns pasta:passt python3:python3 newuidmap:uidmap
cp target/release/nsnet bench/flows.py bench/memory-inner.sh "$stage/"
chown -R "$USER_NAME" "$stage"
flows=${FLOWS:-0 1000 10000 100000}
max=0
for n in $flows; do [ "$n" -gt "$max" ] && max=$n; done
bulk=${BULK-0 $max}
need=$((max + 4096))
limit=()
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	if prlimit --nofile="$need:$need" true 2>/dev/null; then
		limit=(prlimit --nofile="$need:$need" --)
	else
		echo "bench/memory.sh: open files limited to $(ulimit -Hn) (hard), and root may not raise it here; flows beyond it fail" >&2
	fi
fi
echo "open files (hard) for the bench's processes: $("${limit[@]}" sh -c 'ulimit -Hn')"
unshare --net -- sh -c "ip link set lo up && ip link add bv0 type veth peer name bv1 && \
	ip addr add 192.0.2.1/24 dev bv0 && ip link set bv0 up && ip link set bv1 up && \
	ip route add default via 192.0.2.254 dev bv0 && \
	sysctl -qw net.ipv4.ip_local_port_range='1024 65535' && \
	exec ${limit[*]} runuser -u $USER_NAME -- env FLOWS='$flows' BULK='$bulk' SECS='${SECS:-5}' \
		DRIVERS='${DRIVERS:-nsnet rootlesskit pasta}' bash $stage/memory-inner.sh $stage" 2> >(grep -v " Killed " >&2)
