# bench/lib.sh: the set-up every benchmark shares; sourced by bench/*.sh from the project root.
#
# bench_prepare NAME PROG:PACKAGE...
#   refuses to run but as root (each benchmark measures as the unprivileged test user, in
#   namespaces it makes as root); installs the Debian package of each PROG found neither on
#   PATH nor in /usr/sbin (runuser's PATH may lack it); needs the test user that scripts/test
#   creates; opens /dev/net/tun to that user; builds the release binary; makes $stage, a
#   scratch directory removed at exit.
USER_NAME=${NSNET_BENCH_USER:-nsnet-test}

bench_prepare() {
	local name=$1 p
	local need=()
	shift
	[ "$(id -u)" = 0 ] || { echo "bench/$name: run as root" >&2; exit 1; }
	for p in "$@"; do
		command -v "${p%%:*}" >/dev/null || [ -x "/usr/sbin/${p%%:*}" ] || need+=("${p#*:}")
	done
	if [ ${#need[@]} -gt 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	id "$USER_NAME" >/dev/null 2>&1 || { echo "run scripts/test once first (it creates $USER_NAME)" >&2; exit 1; }
	if [ -c /dev/net/tun ]; then chmod 0666 /dev/net/tun; fi
	cargo build --release -j2 --bin nsnet
	stage=$(mktemp -d /tmp/nsnet-bench.XXXXXX)
	trap 'rm -rf "$stage"' EXIT
}
