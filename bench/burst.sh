#!/usr/bin/env bash
# Connection bursts, every byte hash-checked, side by side in one run: N connections opened at
# once (default 10,000), SIZE bytes each way (default 64 KiB), 60 s allowed per connection.
#   inbound:  a published port into a server inside — nsnet (builtin port driver), nsnet's
#             pasta personality (-t), RootlessKit 1.1.0 (builtin, with slirp4netns), Debian's
#             pasta (-t) — and the same server reached directly on loopback (the limit);
#   outbound: from inside to a server on the host's loopback — nsnet's stack (10.0.2.2),
#             slirp4netns under RootlessKit (10.0.2.2), Debian's pasta (its gateway).
# Run as root (it installs what it needs); it measures as the unprivileged user nsnet-test
# (made by scripts/test) inside a fresh network namespace holding only lo and a veth whose
# default route leads nowhere (pasta's template). All traffic stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare burst.sh rootlesskit:rootlesskit slirp4netns:slirp4netns pasta:passt python3:python3
cp target/release/nsnet bench/burst.py bench/burst-inner.sh "$stage/"
mkdir "$stage/as"; ln -s ../nsnet "$stage/as/pasta"  # the personality is chosen by argv[0]
chown -R "$USER_NAME" "$stage"
unshare --net -- sh -c "ip link set lo up && ip link add bv0 type veth peer name bv1 && \
	ip addr add 192.0.2.1/24 dev bv0 && ip link set bv0 up && ip link set bv1 up && \
	ip route add default via 192.0.2.254 dev bv0 && \
	exec runuser -u $USER_NAME -- env N=${N:-10000} SIZE=${SIZE:-65536} bash $stage/burst-inner.sh $stage"
