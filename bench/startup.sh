#!/usr/bin/env bash
# Start-up time of the launcher, side by side with RootlessKit in one run:
#   nsnet run --net=host true   vs   rootlesskit --net=host true
# (and --net=none --copy-up=/etc --pidns for the fuller path, with RootlessKit's closest
# equivalent, which has no --net=none in Debian's 1.1.0: --copy-up=/etc --pidns).
# Run as root: it installs hyperfine and rootlesskit from Debian, and measures as the
# unprivileged test user (created by scripts/test) inside a fresh network namespace.
# Prints hyperfine's table and the ratio (RootlessKit time / nsnet time; > 1 means nsnet is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_prepare startup.sh hyperfine:hyperfine rootlesskit:rootlesskit newuidmap:uidmap
chmod 0755 "$stage"
cp target/release/nsnet "$stage/nsnet"
chmod 0755 "$stage/nsnet"
out="$stage/result.json"
touch "$out"; chown "$USER_NAME" "$out"
unshare --net -- runuser -u "$USER_NAME" -- sh -c "cd $stage && hyperfine -N --warmup 5 --runs ${RUNS:-100} --export-json $out \
	-n 'nsnet run --net=host true' '$stage/nsnet run --net=host true' \
	-n 'rootlesskit --net=host true' 'rootlesskit --net=host true' \
	-n 'nsnet run --copy-up=/etc --pidns true' '$stage/nsnet run --net=host --copy-up=/etc --pidns true' \
	-n 'rootlesskit --copy-up=/etc --pidns true' 'rootlesskit --copy-up=/etc --pidns true'"
python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
def row(a, b):
    na, nb = r[a]["median"], r[b]["median"]
    print(f"{a:42s} median {na*1000:7.2f} ms | {b:42s} median {nb*1000:7.2f} ms | ratio {nb/na:5.2f}x")
row("nsnet run --net=host true", "rootlesskit --net=host true")
row("nsnet run --copy-up=/etc --pidns true", "rootlesskit --copy-up=/etc --pidns true")
PY
