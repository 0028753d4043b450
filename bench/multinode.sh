#!/usr/bin/env bash
# Pod-to-pod throughput across two hosts over Flannel's VXLAN overlay, side by side in one run:
#   kernel        the VXLAN device on the host's own uplink (no rootless network): the limit;
#   nsnet         nsnet run --net=builtin --port-driver=builtin -p 0.0.0.0:8472:8472/udp;
#   rootlesskit   Debian's RootlessKit 1.1.0, --net=slirp4netns --port-driver=builtin, the same
#                 -p (learning off: with learning on it carries nothing, see docs/multinode.md).
# The world (docs/multinode.md): a LAN namespace with a bridge, two hosts 198.51.100.1-2/24
# (MTU 1500) on it. In each host's rootless child (for kernel: the host itself) a VXLAN device
# programmed as Flannel's vxlan backend does (VNI 1, port 8472, nolearning, MTU 1450, one route,
# one neighbour and one FDB entry per peer naming the peer's host address), a bridge cni0
# 10.244.N.1/24 and a pod (a netns with a veth on cni0, 10.244.N.2/24, MTU 1450). iperf3 from
# pod 1 to pod 2: TCP both ways (-R: pod 2 sends) and UDP (-u -b 0 -l 1400: the delivered rate
# and the loss); SECS per run, median of RUNS, variants interleaved within each run. Beside the
# figures: CPU seconds per second of each host's network process during the run (nsnet: its
# stack thread and its I/O threads, which run the port driver; RootlessKit: slirp4netns and
# the rootlesskit parent, which runs the port driver), to show which part is the bottleneck.
#
# Run as root (it installs iperf3, rootlesskit, slirp4netns and uidmap from Debian); the rootless
# networks run as the unprivileged user nsnet-test (made by scripts/test). Every namespace is new
# and holds TEST-NET-2 and 10.244.0.0/16 only: nothing can leave the machine.
# Environment: RUNS (default 3), SECS (default 5), VARIANTS (default "kernel nsnet rootlesskit"),
# TESTS (default "tcp tcp-r udp"). NSNET_BASE=PATH adds the variant nsnet-base: another nsnet
# binary (say, main's, for a before/after of a change) measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare multinode.sh iperf3:iperf3 rootlesskit:rootlesskit slirp4netns:slirp4netns newuidmap:uidmap
chmod 0755 "$stage"
cp target/release/nsnet "$stage/nsnet"
cp bench/multinode-inner.sh "$stage/inner.sh"
chmod 0755 "$stage/nsnet" "$stage/inner.sh"
variants=${VARIANTS:-kernel nsnet rootlesskit}
if [ -n "${NSNET_BASE:-}" ]; then
	install -m 0755 "$NSNET_BASE" "$stage/nsnet-base"
	variants="kernel nsnet-base nsnet rootlesskit"
fi
chown "$USER_NAME" "$stage"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
RUNS=${RUNS:-3} SECS=${SECS:-5} VARIANTS=$variants \
	TESTS=${TESTS:-tcp tcp-r udp} BENCH_USER=$USER_NAME bash "$stage/inner.sh" "$stage"

python3 - "$stage/results.tsv" "${SECS:-5}" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    variant, test, mbps, loss = f[0], f[1], float(f[2]), float(f[3])
    cpu = dict(kv.split("=") for kv in f[4:])
    rows[(variant, test)].append((mbps, loss, {k: float(v) for k, v in cpu.items()}))
variants = [v for v in ["kernel", "nsnet-base", "nsnet", "rootlesskit"] if any(k[0] == v for k in rows)]
tests = [t for t in ["tcp", "tcp-r", "udp"] if any(k[1] == t for k in rows)]
label = {"tcp": "TCP pod 1 → pod 2", "tcp-r": "TCP pod 2 → pod 1 (-R)",
         "udp": "UDP pod 1 → pod 2, 1400 B, -b 0"}
def med(k, i):
    v = [r[i] for r in rows.get(k, []) if r[0] > 0]
    return statistics.median(v) if v else None
def cell(v, t):
    m = med((v, t), 0)
    if m is None:
        return "failed"
    s = f"{m:.0f}"
    if t == "udp":
        s += f" ({med((v, t), 1):.1f} % lost)"
    return s
base = "nsnet-base" in variants
print("| test | " + " | ".join(f"{v} Mbit/s" for v in variants) + " | nsnet/rootlesskit | nsnet/kernel |"
      + (" nsnet/nsnet-base |" if base else ""))
print("|---|" + "---|" * len(variants) + "---|---|" + ("---|" if base else ""))
for t in tests:
    g = {v: med((v, t), 0) for v in variants}
    def ratio(a, b):
        return f"{g[a] / g[b]:.2f}×" if g.get(a) and g.get(b) else "–"
    print(f"| {label[t]} | " + " | ".join(cell(v, t) for v in variants) +
          f" | {ratio('nsnet', 'rootlesskit')} | {ratio('nsnet', 'kernel')} |"
          + (f" {ratio('nsnet', 'nsnet-base')} |" if base else ""))
print()
print("CPU seconds per second during the run (median), per host (1 sends for TCP/UDP, receives for -R):")
for v in [v for v in variants if v != "kernel"]:
    for t in tests:
        runs = [r[2] for r in rows.get((v, t), []) if r[0] > 0]
        if not runs:
            continue
        keys = sorted({k for r in runs for k in r})
        print(f"  {v:12} {t:6} " + "  ".join(
            f"{k} {statistics.median(r.get(k, 0) for r in runs):.2f}" for k in keys))
PY
