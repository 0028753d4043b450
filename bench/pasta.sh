#!/usr/bin/env bash
# The pasta personality against Debian's pasta, the same command line through each, in one run:
#   tap: iperf3 from the namespace to the world's loopback through the gateway (pasta's
#        --map-gw), both directions;
#   fwd: a port forwarded with -t 127.0.0.1/15202:5202, the client on the world's loopback and
#        the server inside, both directions;
# at MTU 65520 and 1500, SECS seconds per run, median of RUNS. Also each implementation's CPU
# seconds per GB and its peak RSS (every pasta process of the run).
# Run as root (it installs iperf3 and passt); it measures as the unprivileged test user
# (created by scripts/test) in a fresh network namespace holding lo and a veth pair whose
# default route leads nowhere (pasta needs a template interface), so nothing leaves the machine.
# Environment: RUNS (default 3), SECS (default 4), MTUS (default "65520 1500"), PATHS (default
# "tap fwd"). Debian's pasta makes itself non-dumpable, so its CPU and RSS cannot be read as
# the user: those cells stay empty.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare pasta.sh iperf3:iperf3 pasta:passt
chmod 0755 "$stage"
cp target/release/nsnet "$stage/nsnet"
ln -s nsnet "$stage/pasta"
cp bench/pasta-inner.sh "$stage/inner.sh"
chmod 0755 "$stage/nsnet" "$stage/inner.sh"
chown "$USER_NAME" "$stage"

unshare --net -- sh -c '
	set -e
	ip link set lo up
	ip link add dummy0 type veth peer name dummy1
	ip addr add 192.0.2.1/24 dev dummy0
	ip link set dummy1 up
	ip link set dummy0 up
	ip route add default via 192.0.2.254 dev dummy0
	exec runuser -u "$0" -- env RUNS="${RUNS:-3}" SECS="${SECS:-4}" MTUS="${MTUS:-65520 1500}" PATHS="${PATHS:-tap fwd}" \
		"$1/inner.sh" "$1"
' "$USER_NAME" "$stage"

python3 - "$stage/results.tsv" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    impl, mtu, p, gbps, cpu, rss = line.split()
    rows[(impl, int(mtu), p)].append((float(gbps), float(cpu), int(rss)))
def med(k, i):
    v = [r[i] for r in rows.get(k, []) if r[0] > 0 and (i == 0 or r[i] > 0)]
    return statistics.median(v) if v else None
label = {"tap-out": "ns → host (tap)", "tap-in": "host → ns (tap, -R)",
         "fwd-in": "-t port, host → ns", "fwd-out": "-t port, ns → host (-R)"}
print("| MTU | path | nsnet pasta Gbit/s | Debian pasta Gbit/s | ratio | nsnet CPU s/GB, RSS MiB | Debian CPU s/GB, RSS MiB |")
print("|---|---|---|---|---|---|---|")
for mtu in sorted({k[1] for k in rows}, reverse=True):
    for p in ["tap-out", "tap-in", "fwd-in", "fwd-out"]:
        if not any(k[1] == mtu and k[2] == p for k in rows):
            continue
        n, d = med(("nsnet", mtu, p), 0), med(("debian", mtu, p), 0)
        ratio = f"{n / d:.2f}×" if n and d else "–"
        def res(impl):
            c, r = med((impl, mtu, p), 1), med((impl, mtu, p), 2)
            return f"{c:.2f} s, {r / 1024:.1f}" if c is not None else "–"
        f = lambda x: f"{x:.2f}" if x else "failed"
        print(f"| {mtu} | {label[p]} | {f(n)} | {f(d)} | {ratio} | {res('nsnet')} | {res('debian')} |")
PY
