#!/usr/bin/env bash
# Outbound throughput of the user-mode network, side by side in one run:
#   nsnet run --net=builtin   vs   slirp4netns (driven by RootlessKit 1.1.0)   vs   pasta
# against the machine's limits measured in the same run: the tap ceiling (a one-thread frame
# copier between two taps opened as the stack opens its tap, crates/nsnet-stack/examples/
# tap_copier.rs: what the kernel charges a user-mode network for crossing a tap, with nothing
# else done) and host loopback (iperf3 to 127.0.0.1, no user-mode hop at all).
# iperf3 from inside the namespace to an iperf3 server on the world's loopback, reached
# through the gateway 10.0.2.2; MTU 65520 and 1500; both directions (-R: server → namespace);
# 5 s per run, median of 3. Also the network process's peak RSS (VmHWM) and its CPU seconds
# per GB moved (the nsnet parent, which runs the stack thread; the slirp4netns or pasta
# process for the peers).
#
# Run as root: it installs iperf3, slirp4netns, passt, rootlesskit and uidmap from Debian, and
# measures as the unprivileged test user (created by scripts/test) in a fresh network
# namespace holding lo and a veth pair dummy0/dummy1 (pasta needs a template interface with a
# default route; both ends stay in that namespace and nothing answers there, so nothing can
# leave the machine).
# Environment: RUNS (default 3), SECS (default 5), MTUS (default "65520 1500"),
# DRIVERS (default "ceiling loopback nsnet slirp4netns pasta").
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare net.sh iperf3:iperf3 slirp4netns:slirp4netns pasta:passt rootlesskit:rootlesskit newuidmap:uidmap
cargo build --release -j2 -p nsnet-stack --example tap_copier
chmod 0755 "$stage"
cp target/release/nsnet "$stage/nsnet"
cp target/release/examples/tap_copier "$stage/tap_copier"
cp bench/net-inner.sh "$stage/inner.sh"
chmod 0755 "$stage/nsnet" "$stage/tap_copier" "$stage/inner.sh"
chown "$USER_NAME" "$stage"

unshare --net -- sh -c '
	set -e
	ip link set lo up
	ip link add dummy0 type veth peer name dummy1
	ip addr add 192.0.2.1/24 dev dummy0
	ip link set dummy1 up
	ip link set dummy0 up
	ip route add default via 192.0.2.254 dev dummy0
	exec runuser -u "$0" -- env RUNS="${RUNS:-3}" SECS="${SECS:-5}" MTUS="${MTUS:-65520 1500}" \
		DRIVERS="${DRIVERS:-ceiling loopback nsnet slirp4netns pasta}" "$1/inner.sh" "$1"
' "$USER_NAME" "$stage"

python3 - "$stage/results.tsv" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    drv, mtu, d, gbps, cpu, rss = line.split()
    rows[(drv, int(mtu), d)].append((float(gbps), float(cpu), int(rss)))
def med(k, i):
    # A run whose process ended between two samples has no RSS/CPU reading: leave it out.
    v = [r[i] for r in rows.get(k, []) if r[0] > 0 and (i == 0 or r[i] > 0)]
    return statistics.median(v) if v else None
limits = [d for d in ["ceiling", "loopback"] if any(k[0] == d for k in rows)]
drivers = [d for d in ["nsnet", "slirp4netns", "pasta"] if any(k[0] == d for k in rows)]
print("| MTU | direction | " + " | ".join(f"{d} Gbit/s" for d in limits + drivers) +
      " | nsnet/ceiling | slirp4netns/ceiling | pasta/ceiling | nsnet/slirp4netns | nsnet/pasta |")
print("|---|---|" + "---|" * (len(limits) + len(drivers)) + "---|---|---|---|---|")
for mtu in sorted({k[1] for k in rows}, reverse=True):
    for d in ["out", "in"]:
        g = {drv: med((drv, mtu, d), 0) for drv in limits + drivers}
        def ratio(p):
            return f"{g['nsnet'] / g[p]:.2f}×" if g.get("nsnet") and g.get(p) else "–"
        def frac(x):
            return f"{g[x] / g['ceiling']:.2f}" if g.get(x) and g.get("ceiling") else "–"
        cells = " | ".join(f"{g[x]:.2f}" if g[x] else "failed" for x in limits + drivers)
        label = "ns → host" if d == "out" else "host → ns (-R)"
        print(f"| {mtu} | {label} | {cells} | {frac('nsnet')} | {frac('slirp4netns')} | "
              f"{frac('pasta')} | {ratio('slirp4netns')} | {ratio('pasta')} |")
print()
print("| MTU | direction | " + " | ".join(f"{d} CPU s/GB, RSS MiB" for d in drivers) + " |")
print("|---|---|" + "---|" * len(drivers))
for mtu in sorted({k[1] for k in rows}, reverse=True):
    for d in ["out", "in"]:
        cells = []
        for drv in drivers:
            c, r = med((drv, mtu, d), 1), med((drv, mtu, d), 2)
            cells.append(f"{c:.2f} s, {r / 1024:.1f}" if c is not None and r is not None else "–")
        label = "ns → host" if d == "out" else "host → ns (-R)"
        print(f"| {mtu} | {label} | " + " | ".join(cells) + " |")
PY
