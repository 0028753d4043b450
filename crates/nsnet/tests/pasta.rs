//! The `pasta` and `pesto` personalities driven as their clients drive them: Podman 5/6's
//! container and rootless-netns command lines, RootlessKit's, and the pesto callers, each in
//! a world of its own with a template interface, and Debian's `/usr/bin/pasta` beside ours
//! on the same argv (the differential cases).

mod common;

use std::process::Output;

use common::*;

const LINE_ECHO_SERVER: &str = include_str!("fixtures/line_echo_server.py");
const LINE_ECHO_CLIENT: &str = include_str!("fixtures/line_echo_client.py");

/// The template interface of the IPv4 worlds: a veth `dummy0` with 192.0.2.1/24 and a
/// default route via 192.0.2.254.
const SETUP4: &str = "ip link set lo up && ip link add dummy0 type veth peer name dummy1 && \
    ip link set dummy1 up && ip addr add 192.0.2.1/24 dev dummy0 && ip link set dummy0 up && \
    ip route add default via 192.0.2.254 dev dummy0";

/// The IPv6 worlds' template: the same, plus 2001:db8::1/64 and an IPv6 default route via
/// 2001:db8::fe; set up once the kernel has given dummy0 its link-local address, which pasta
/// requires of an IPv6 template.
const SETUP6: &str = "ip link set lo up && ip link add dummy0 type veth peer name dummy1 && \
    ip link set dummy1 up && ip addr add 192.0.2.1/24 dev dummy0 && ip link set dummy0 up && \
    ip route add default via 192.0.2.254 dev dummy0 && \
    ip addr add 2001:db8::1/64 dev dummy0 nodad && \
    ip -6 route add default via 2001:db8::fe dev dummy0 && \
    for i in $(seq 250); do ip -6 addr show dev dummy0 scope link | grep -q inet6 && break; sleep 0.02; done";

/// A further user + network + mount namespace (so the script may bind-mount a netns file, as
/// Podman does) holding [`SETUP4`]'s template interface. Its loopback is "the host". `$T`
/// holds `pasta` and `pesto` (links to nsnet), `echo_server.py ADDR PORT READY`,
/// `echo_client.py HOST PORT`, `wait_for.sh FILE` and `gone.sh PID` (waits up to 5 s for PID
/// to exit); `$PASTA` is the pasta under test.
fn world(pasta: &str, script: &str) -> Output {
    world_with(SETUP4, pasta, script)
}

/// [`world`] with [`SETUP6`]'s template interface: IPv4 and IPv6.
fn world6(pasta: &str, script: &str) -> Output {
    world_with(SETUP6, pasta, script)
}

fn world_with(setup: &str, pasta: &str, script: &str) -> Output {
    use std::os::unix::fs::PermissionsExt;
    common::world();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = dir.path();
    std::fs::write(t.join("echo_server.py"), LINE_ECHO_SERVER).unwrap();
    std::fs::write(t.join("echo_client.py"), LINE_ECHO_CLIENT).unwrap();
    std::fs::write(
        t.join("wait_for.sh"),
        "for i in $(seq 1000); do [ -e \"$1\" ] && exit 0; sleep 0.01; done; echo \"$1 never appeared\" >&2; exit 1\n",
    )
    .unwrap();
    std::fs::write(
        t.join("gone.sh"),
        "for i in $(seq 500); do kill -0 \"$1\" 2>/dev/null || { echo gone; exit 0; }; sleep 0.01; done; echo \"$1 still running\"; exit 1\n",
    )
    .unwrap();
    // udp_server.py ADDR PORT READY: answers one datagram upper-cased (gives up after 10 s,
    // so a datagram that never arrives fails the script instead of hanging it); udp_client.py
    // HOST PORT: sends "ping", prints the answer (3 s timeout).
    std::fs::write(
        t.join("udp_server.py"),
        "import socket, sys\nf = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
         s = socket.socket(f, socket.SOCK_DGRAM)\ns.bind((sys.argv[1], int(sys.argv[2])))\n\
         s.settimeout(10)\nopen(sys.argv[3], 'w').close()\nd, a = s.recvfrom(512)\ns.sendto(d.upper(), a)\n",
    )
    .unwrap();
    std::fs::write(
        t.join("udp_client.py"),
        "import socket, sys\nf = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
         s = socket.socket(f, socket.SOCK_DGRAM)\ns.settimeout(3)\n\
         s.sendto(b'ping', (sys.argv[1], int(sys.argv[2])))\nprint(s.recv(512).decode())\n",
    )
    .unwrap();
    for name in ["pasta", "pesto"] {
        std::os::unix::fs::symlink(nsnet_bin(), t.join(name)).unwrap();
    }
    std::fs::write(t.join("script.sh"), script).unwrap();
    let pasta = if pasta == "nsnet" {
        t.join("pasta").display().to_string()
    } else {
        pasta.to_string()
    };
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--user",
        "--map-root-user",
        "--net",
        "--mount",
        "--",
        "sh",
        "-c",
    ])
    .arg(format!("{setup} && exec sh \"$T/script.sh\""))
    .env("T", t)
    .env("NSNET", nsnet_bin())
    .env("PASTA", pasta)
    .current_dir("/");
    output(&mut c)
}

/// Podman's container line: the foreground exits 0 once configured; the namespace has the
/// template's address, prefix, gateway and MTU 65520; `-t 8080:80` reaches a server inside
/// from the host; `--map-guest-addr` reaches the host from inside; `--no-map-gw` keeps the
/// gateway off host loopback; removing the netns (umount + rm, as Podman does) ends the
/// background process.
const PODMAN_CONTAINER: &str = r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
$PY $T/echo_server.py 0.0.0.0 9101 $T/ready1 &
host_server=$!
sh $T/wait_for.sh $T/ready1
"$PASTA" --config-net -t 8080:80 --dns-forward 169.254.1.1 -u none -T none -U none --no-map-gw --quiet --netns $T/netns --map-guest-addr 169.254.1.2
echo fg=$?
nsenter --net=$T/netns sh -c 'ip -o -4 addr show dummy0 | awk "{print \$4}"; ip -o link show dummy0 | sed "s/.* mtu \([0-9]*\) .*/\1/"; ip route show default'
nsenter --net=$T/netns $PY $T/echo_server.py 0.0.0.0 80 $T/ready2 &
sh $T/wait_for.sh $T/ready2
$PY $T/echo_client.py 127.0.0.1 8080
wait $!
nsenter --net=$T/netns $PY $T/echo_client.py 169.254.1.2 9101
wait $host_server
pid=$(ps -eo pid=,args= | awk -v p="$PASTA" '$2 == p {print $1}')
[ -n "$pid" ] && echo background running
umount -l $T/netns && rm $T/netns
sh $T/gone.sh $pid
"#;

#[test]
fn podman_container_command_line() {
    let o = world("nsnet", PODMAN_CONTAINER);
    assert_eq!(
        stdout(&o),
        "fg=0\n192.0.2.1/24\n65520\ndefault via 192.0.2.254 dev dummy0 \necho True\necho True\nbackground running\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// Podman's rootless netns: `--pid` names the background process (Podman reads it), `-c` is
/// the forwarding-table socket, driven by both pesto callers: Podman's `--add -t 0.0.0.0/HP
/// -t [::]/HP` and `--delete`, container-libs' target-address form, RootlessKit v3's
/// `-A --tcp-ports=IP/PPORT:CPORT` and `--version`; the forwards work from the world and are
/// gone once deleted.
#[test]
fn podman_rootless_netns_with_pid_and_pesto() {
    let o = world(
        "nsnet",
        r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
"$PASTA" --config-net --pid $T/pasta.pid -c $T/pesto.sock --dns-forward 169.254.1.1 -t none -u none -T none -U none --no-map-gw --quiet --netns $T/netns --map-guest-addr 169.254.1.2
echo fg=$?
pid=$(cat $T/pasta.pid)
kill -0 $pid && echo pid file names the background
$T/pesto --version | head -1 | cut -d' ' -f1
$T/pesto --add -t 0.0.0.0/9201 -t [::]/9201 $T/pesto.sock; echo add=$?
$T/pesto $T/pesto.sock | sed "s|$T/pesto.sock|SOCK|"
nsenter --net=$T/netns $PY $T/echo_server.py 0.0.0.0 9201 $T/r1 &
sh $T/wait_for.sh $T/r1
$PY $T/echo_client.py 127.0.0.1 9201
wait
$T/pesto --delete -t 0.0.0.0/9201 -t [::]/9201 $T/pesto.sock; echo del=$?
$PY $T/echo_client.py 127.0.0.1 9201 2>/dev/null || echo refused after delete
# container-libs: hostIP/hostPort:containerIP/containerPort
nsenter --net=$T/netns ip addr add 192.0.2.77/32 dev lo
$T/pesto --add -t 127.0.0.1/9202:192.0.2.77/80 $T/pesto.sock; echo add=$?
nsenter --net=$T/netns $PY $T/echo_server.py 192.0.2.77 80 $T/r2 &
sh $T/wait_for.sh $T/r2
$PY $T/echo_client.py 127.0.0.1 9202
wait
# RootlessKit v3's pesto port driver
$T/pesto -A --tcp-ports=127.0.0.1/9203:80 $T/pesto.sock; echo add=$?
nsenter --net=$T/netns $PY $T/echo_server.py 0.0.0.0 80 $T/r3 &
sh $T/wait_for.sh $T/r3
$PY $T/echo_client.py 127.0.0.1 9203
wait
$T/pesto -D --tcp-ports=127.0.0.1/9203:80 $T/pesto.sock; echo del=$?
$T/pesto -A -t bogus $T/pesto.sock; echo bad=$?
umount -l $T/netns && rm $T/netns
sh $T/gone.sh $pid
[ -e $T/pesto.sock ] || echo socket removed
"#,
    );
    let out = stdout(&o);
    assert_eq!(
        out,
        "fg=0\npid file names the background\npesto\nadd=0\n\
         passt/pasta configuration (SOCK)\n  HOST\n    TCP [0.0.0.0]:9201  =>  9201 \n    TCP [::]:9201  =>  9201 \n  SPLICE\n\
         echo True\ndel=0\nrefused after delete\nadd=0\necho True\nadd=0\necho True\ndel=0\nbad=1\ngone\nsocket removed\n",
        "stderr: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("Invalid port specifier 'bogus'"),
        "{}",
        stderr(&o)
    );
}

/// The same argv (Podman's container line, without `--map-guest-addr`, which Debian's older
/// pasta does not know) through Debian's `/usr/bin/pasta` and through ours, in worlds of
/// their own: the namespace's address, MTU and default route, and the `-t` forward from the
/// world, must agree.
#[test]
fn differential_podman_line_against_debians_pasta() {
    let script = r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
"$PASTA" --config-net -t 8080:80 --dns-forward 169.254.1.1 -u none -T none -U none --no-map-gw --quiet --netns $T/netns --pid $T/pid
echo fg=$?
nsenter --net=$T/netns sh -c 'ip -o -4 addr show dummy0 | awk "{print \$4}"; ip -o link show dummy0 | sed "s/.* mtu \([0-9]*\) .*/\1/"; ip route show default'
nsenter --net=$T/netns $PY $T/echo_server.py 0.0.0.0 80 $T/ready2 &
sh $T/wait_for.sh $T/ready2
$PY $T/echo_client.py 127.0.0.1 8080
wait $!
pid=$(cat $T/pid)
umount -l $T/netns && rm $T/netns
# Debian's pasta may outlive the file (see docs/pasta.md): stop what we started, by PID.
sh $T/gone.sh $pid || kill $pid
"#;
    let theirs = world("/usr/bin/pasta", script);
    let ours = world("nsnet", script);
    let shared = "fg=0\n192.0.2.1/24\n65520\ndefault via 192.0.2.254 dev dummy0 \necho True\n";
    assert!(
        stdout(&theirs).starts_with(shared),
        "Debian's pasta: {}{}",
        stdout(&theirs),
        stderr(&theirs)
    );
    assert_eq!(
        stdout(&ours),
        format!("{shared}gone\n"),
        "ours: {}",
        stderr(&ours)
    );
}

/// Bad input is one line in pasta's words with its exit status, and leaves nothing running.
#[test]
fn bad_input_is_one_line_and_exit_1() {
    let o = world(
        "nsnet",
        r#"
"$PASTA" --config-net --netns $T/none -t 80x; echo rc=$?
"$PASTA" --config-net -6 -t 0.0.0.0/80 --netns $T/none; echo rc=$?
"$PASTA" --config-net -m 1000 --netns $T/none; echo rc=$?
"$PASTA" --bogus; echo rc=$?
"$PASTA" --config-net --netns $T/none; echo rc=$?
"#,
    );
    assert_eq!(stdout(&o), "rc=1\nrc=1\nrc=1\nrc=1\nrc=1\n");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "Invalid port specifier '80x'");
    // A family that is off cannot be forwarded; IPv6 needs an MTU of 1280 or more.
    assert_eq!(
        lines[1],
        "Unable to add rule TCP [0.0.0.0]:80  =>  80 : IPv4 forward, but IPv4 not enabled"
    );
    assert_eq!(
        lines[2],
        "MTU 1000 is too small for IPv6 (minimum 1280): give -4 too"
    );
    assert!(
        lines[3].ends_with("pasta: unrecognized option '--bogus'"),
        "{}",
        lines[3]
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("Couldn't open network namespace "),
        "{}",
        stderr(&o)
    );
}

/// The background process confines itself as pasta does (no new privileges, a system-call
/// filter, capabilities down to CAP_SYS_ADMIN and CAP_NET_BIND_SERVICE, an empty root of its
/// own), and still does its work afterwards: a forward added through `-c` (a new listener,
/// sockets made inside the namespace) carries a connection, and the socket file goes at exit.
#[test]
fn background_process_is_confined_and_still_forwards() {
    let o = world(
        "nsnet",
        r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
"$PASTA" --config-net --pid $T/pasta.pid -c $T/pesto.sock -t none -u none -T none -U none --quiet --netns $T/netns
echo fg=$?
pid=$(cat $T/pasta.pid)
grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/$pid/status | tr -s '\t ' ' '
[ "$(stat -L -c %d:%i /proc/$pid/root)" != "$(stat -L -c %d:%i /)" ] && echo own root
echo "root holds: [$(ls -A /proc/$pid/root/)]"
$T/pesto --add -t 127.0.0.1/9301:80 $T/pesto.sock; echo add=$?
nsenter --net=$T/netns $PY $T/echo_server.py 0.0.0.0 80 $T/r1 &
sh $T/wait_for.sh $T/r1
$PY $T/echo_client.py 127.0.0.1 9301
wait
umount -l $T/netns && rm $T/netns
sh $T/gone.sh $pid
[ -e $T/pesto.sock ] || echo socket removed
"#,
    );
    assert_eq!(
        stdout(&o),
        "fg=0\nCapEff: 0000000000201400\nCapBnd: 0000000000201400\nNoNewPrivs: 1\nSeccomp: 2\n\
         own root\nroot holds: []\nadd=0\necho True\ngone\nsocket removed\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// Starts `$PASTA ARGS --netns $T/netns --pid $T/pid` in a fresh netns file; `stop` ends it
/// as Podman does (unmount and remove the file) and waits for it.
const START: &str = r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
inside() { nsenter --net=$T/netns "$@"; }
start() { "$PASTA" "$@" --quiet --netns $T/netns --pid $T/pid; echo fg=$?; }
stop() { pid=$(cat $T/pid); umount -l $T/netns && rm $T/netns; sh $T/gone.sh $pid; }
show() { inside sh -c 'ip -o -4 addr show dummy0 | awk "{print \$4}"; ip -o link show dummy0 | sed "s/.* mtu \([0-9]*\) .*/\1/"; ip route show default'; }
show6() { inside sh -c 'ip -o -6 addr show dummy0 scope global | awk "{print \$4}"; ip -6 route show default'; }
"#;

/// Podman's 505-networking-pasta checks of the address model, in our words: `-a/-n/-g/-m`
/// override what the template gives, and `-a` alone keeps pasta's class-based /24.
#[test]
fn address_netmask_gateway_and_mtu_overrides() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
start --config-net -a 192.0.2.50 -n 28 -g 192.0.2.49 -m 1500
show
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net -a 192.0.2.60
show
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\n192.0.2.50/28\n1500\ndefault via 192.0.2.49 dev dummy0 \ngone\n\
         fg=0\n192.0.2.60/24\n65520\ndefault via 192.0.2.254 dev dummy0 \ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// The gateway reaches the host's loopback unless `--no-map-gw`; `--map-guest-addr` reaches
/// the host either way.
#[test]
fn map_gw_no_map_gw_and_map_guest_addr() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
$PY $T/echo_server.py 127.0.0.1 9501 $T/r1 &
sh $T/wait_for.sh $T/r1
start --config-net
inside $PY $T/echo_client.py 192.0.2.254 9501
wait
stop
touch $T/netns && unshare --net=$T/netns true
$PY $T/echo_server.py 0.0.0.0 9502 $T/r2 &
sh $T/wait_for.sh $T/r2
start --config-net --no-map-gw --map-guest-addr 169.254.1.2
timeout 5 nsenter --net=$T/netns $PY $T/echo_client.py 192.0.2.254 9502 2>/dev/null || echo gateway not mapped
inside $PY $T/echo_client.py 169.254.1.2 9502
wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\ngone\nfg=0\ngateway not mapped\necho True\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// `-t/-u` forms from pasta(1) and Podman's tests: a single port, a range, a translated port,
/// an address-bound port (listening on that address only), UDP single and translated; a port
/// not named is not forwarded.
#[test]
fn tcp_and_udp_forwarding_forms() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
start --config-net -t 9401 -t 9410-9411 -t 9420:80 -t 127.0.0.1/9430 -u 9440 -u 9441:53
inside $PY $T/echo_server.py 0.0.0.0 9401 $T/a &
sh $T/wait_for.sh $T/a; $PY $T/echo_client.py 127.0.0.1 9401; wait
inside $PY $T/echo_server.py 0.0.0.0 9411 $T/b &
sh $T/wait_for.sh $T/b; $PY $T/echo_client.py 192.0.2.1 9411; wait
inside $PY $T/echo_server.py 0.0.0.0 80 $T/c &
sh $T/wait_for.sh $T/c; $PY $T/echo_client.py 127.0.0.1 9420; wait
inside $PY $T/echo_server.py 0.0.0.0 9430 $T/d &
sh $T/wait_for.sh $T/d; $PY $T/echo_client.py 127.0.0.1 9430; wait
ss -Hltn 'sport = :9430' | awk '{{print "9430 listens on", $4}}'
inside $PY $T/udp_server.py 0.0.0.0 9440 $T/e &
sh $T/wait_for.sh $T/e; $PY $T/udp_client.py 127.0.0.1 9440; wait
inside $PY $T/udp_server.py 0.0.0.0 53 $T/f &
sh $T/wait_for.sh $T/f; $PY $T/udp_client.py 127.0.0.1 9441; wait
ss -Hltn 'sport = :9402' | grep -q . || echo 9402 not forwarded
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\necho True\necho True\necho True\n9430 listens on 127.0.0.1:9430\n\
         PING\nPING\n9402 not forwarded\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// `--dns-forward ADDR`: DNS sent to that address inside goes to the host's resolver (here
/// `--dns-host 127.0.0.1`, a stand-in that answers one datagram), and the answer comes back.
#[test]
fn dns_forward_reaches_the_host_resolver() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
$PY $T/udp_server.py 127.0.0.1 53 $T/dns &
sh $T/wait_for.sh $T/dns
start --config-net --dns-forward 169.254.1.1 --dns-host 127.0.0.1
inside $PY $T/udp_client.py 169.254.1.1 53
wait
stop
"#
        ),
    );
    assert_eq!(stdout(&o), "fg=0\nPING\ngone\n", "stderr: {}", stderr(&o));
}

/// `pasta [OPTS] -- CMD`: the command runs in a new namespace pasta configured, a `-t`
/// forward reaches a server it starts, and pasta exits with the command's status.
#[test]
fn command_form_runs_the_command_in_a_configured_namespace() {
    let o = world(
        "nsnet",
        r#"
PY=/usr/bin/python3
"$PASTA" --config-net -t 9601 --quiet -- sh -c '
ip -o -4 addr show dummy0 | awk "{print \$4}"; ip route show default
grep "^SigBlk" /proc/self/status
/usr/bin/python3 $T/echo_server.py 0.0.0.0 9601 $T/ready &
wait
exit 7' &
sh $T/wait_for.sh $T/ready
$PY $T/echo_client.py 127.0.0.1 9601
wait $!
echo rc=$?
"#,
    );
    assert_eq!(
        stdout(&o),
        "192.0.2.1/24\ndefault via 192.0.2.254 dev dummy0 \nSigBlk:\t0000000000000000\necho True\nrc=7\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// IPv6 as pasta(1) copies it from the template (505-networking-pasta's "IPv6 default
/// address assignment", "IPv6 default route", "No IPv6", "No IPv4", "IPv6 address
/// assignment", "IPv6 default route assignment", in our words): the namespace gets the host's
/// global address and prefix and its default route, IPv4 beside them, and the kernel's
/// link-local address; `-4` leaves out IPv6, `-6` IPv4; `-a`/`-g` override (pasta assigns an
/// `-a` IPv6 address as a /64 whatever its prefix says).
#[test]
fn pasta_ipv6_address_and_route_come_from_the_template() {
    let o = world6(
        "nsnet",
        &format!(
            r#"{START}
start --config-net
show6
[ "$(inside ip -o -6 addr show dummy0 scope global | awk '{{print $4}}')" = "$(ip -o -6 addr show dummy0 scope global | awk '{{print $4}}')" ] && echo address as the host
[ "$(inside ip -6 route show default)" = "$(ip -6 route show default)" ] && echo route as the host
show
echo "link-local: $(inside ip -o -6 addr show dummy0 scope link | wc -l)"
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net -4
echo "-4: [$(show6)]"
show
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net -6 -t 9850
show6
echo "-6: [$(inside ip -o -4 addr show dummy0)] [$(inside ip -4 route show)]"
ss -Hltn 'sport = :9850' | awk '{{print "9850 listens on", $4}}'
inside $PY $T/echo_server.py 2001:db8::1 9850 $T/a &
sh $T/wait_for.sh $T/a; $PY $T/echo_client.py ::1 9850; wait
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net -a 2001:db8::50/56 -g 2001:db8::fd
show6
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\n2001:db8::1/64\ndefault via 2001:db8::fe dev dummy0 metric 1024 pref medium\n\
         address as the host\nroute as the host\n\
         192.0.2.1/24\n65520\ndefault via 192.0.2.254 dev dummy0 \nlink-local: 1\ngone\n\
         fg=0\n-4: []\n192.0.2.1/24\n65520\ndefault via 192.0.2.254 dev dummy0 \ngone\n\
         fg=0\n2001:db8::1/64\ndefault via 2001:db8::fe dev dummy0 metric 1024 pref medium\n-6: [] []\n\
         9850 listens on [::]:9850\necho True\ngone\n\
         fg=0\n2001:db8::50/64\ndefault via 2001:db8::fd dev dummy0 metric 1024 pref medium\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// No IPv6 template (the IPv4 world): pasta 2026's local mode (`conf_ip6_local()`) — no
/// global address, a default route via fe80::1, which reaches the host's `::1` — and with
/// `-4` no IPv6 route at all.
#[test]
fn pasta_ipv6_local_mode_without_an_ipv6_template() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
$PY $T/echo_server.py ::1 9751 $T/r1 &
sh $T/wait_for.sh $T/r1
start --config-net
show6
# The kernel's link-local address goes through duplicate address detection first.
inside sh -c 'for i in $(seq 250); do ip -6 addr show dummy0 tentative | grep -q inet6 || exit 0; sleep 0.02; done; exit 1' || echo still tentative
inside $PY $T/echo_client.py fe80::1%dummy0 9751
wait
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net -4
echo "-4: [$(show6)]"
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\ndefault via fe80::1 dev dummy0 metric 1024 pref medium\necho True\ngone\n\
         fg=0\n-4: []\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// The IPv6 gateway is the host's `::1` (pasta's map-gw, for TCP and UDP) unless
/// `--no-map-gw`; `--map-guest-addr ADDR6` reaches the host's own address either way.
#[test]
fn pasta_ipv6_gateway_is_host_loopback_unless_no_map_gw() {
    let o = world6(
        "nsnet",
        &format!(
            r#"{START}
$PY $T/echo_server.py ::1 9701 $T/r1 &
sh $T/wait_for.sh $T/r1
$PY $T/udp_server.py ::1 9701 $T/u1 &
sh $T/wait_for.sh $T/u1
start --config-net
inside $PY $T/echo_client.py 2001:db8::fe 9701
inside $PY $T/udp_client.py 2001:db8::fe 9701
wait
stop
touch $T/netns && unshare --net=$T/netns true
$PY $T/echo_server.py :: 9702 $T/r2 &
sh $T/wait_for.sh $T/r2
start --config-net --no-map-gw --map-guest-addr 2001:db8:ffff::2
timeout 5 nsenter --net=$T/netns $PY $T/echo_client.py 2001:db8::fe 9702 2>/dev/null || echo gateway not mapped
inside $PY $T/echo_client.py 2001:db8:ffff::2 9702
wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\nPING\ngone\nfg=0\ngateway not mapped\necho True\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// 505-networking-pasta's IPv6 forwarding cases (single, range, translated, address-bound;
/// TCP and UDP; from the host's loopback and from its own address), with the target passt
/// 2026 picks: the guest's address of the client's family. A server bound to the guest's
/// IPv6 address gets the IPv6 clients of `-t PORT`, one bound to its IPv4 address the IPv4
/// clients of the same rule.
#[test]
fn pasta_ipv6_forwards_reach_the_guest_address() {
    let o = world6(
        "nsnet",
        &format!(
            r#"{START}
start --config-net -t 9801 -t 9810-9811 -t 9820:80 -t [::1]/9830 -u 9840 -u 9841:53
inside $PY $T/echo_server.py 2001:db8::1 9801 $T/a &
sh $T/wait_for.sh $T/a; $PY $T/echo_client.py ::1 9801; wait
inside $PY $T/echo_server.py 2001:db8::1 9801 $T/b &
sh $T/wait_for.sh $T/b; $PY $T/echo_client.py 2001:db8::1 9801; wait
inside $PY $T/echo_server.py 192.0.2.1 9801 $T/c &
sh $T/wait_for.sh $T/c; $PY $T/echo_client.py 127.0.0.1 9801; wait
inside $PY $T/echo_server.py :: 9811 $T/d &
sh $T/wait_for.sh $T/d; $PY $T/echo_client.py ::1 9811; wait
inside $PY $T/echo_server.py 2001:db8::1 80 $T/e &
sh $T/wait_for.sh $T/e; $PY $T/echo_client.py ::1 9820; wait
inside $PY $T/echo_server.py 2001:db8::1 9830 $T/f &
sh $T/wait_for.sh $T/f; $PY $T/echo_client.py ::1 9830; wait
ss -Hltn 'sport = :9830' | awk '{{print "9830 listens on", $4}}'
inside $PY $T/udp_server.py 2001:db8::1 9840 $T/g &
sh $T/wait_for.sh $T/g; $PY $T/udp_client.py ::1 9840; wait
inside $PY $T/udp_server.py :: 53 $T/h &
sh $T/wait_for.sh $T/h; $PY $T/udp_client.py 2001:db8::1 9841; wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\necho True\necho True\necho True\necho True\necho True\n\
         9830 listens on [::1]:9830\nPING\nPING\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// passt 2026 forwards to the guest's address, not its loopback, "so we don't inadvertently
/// expose services that listen only on the guest's loopback address": a server bound only to
/// 127.0.0.1 or ::1 inside is not reached through `-t` (though it is there: a client inside
/// reaches it), unless `--host-lo-to-ns-lo`, with which host loopback goes to the
/// namespace's.
#[test]
fn pasta_forwards_skip_namespace_loopback_unless_host_lo_to_ns_lo() {
    let o = world6(
        "nsnet",
        &format!(
            r#"{START}
reach() {{ [ "$($PY $T/echo_client.py "$@" 2>/dev/null)" = "echo True" ] && echo "$1 reached" || echo "$1 not reached"; }}
start --config-net -t 9501 -t 9502
inside $PY $T/echo_server.py 127.0.0.1 9501 $T/a &
sh $T/wait_for.sh $T/a; reach 127.0.0.1 9501
inside $PY $T/echo_client.py 127.0.0.1 9501; wait
inside $PY $T/echo_server.py ::1 9502 $T/b &
sh $T/wait_for.sh $T/b; reach ::1 9502
inside $PY $T/echo_client.py ::1 9502; wait
stop
touch $T/netns && unshare --net=$T/netns true
start --config-net --host-lo-to-ns-lo -t 9503 -t [::1]/9504
inside $PY $T/echo_server.py 127.0.0.1 9503 $T/c &
sh $T/wait_for.sh $T/c; reach 127.0.0.1 9503; wait
inside $PY $T/echo_server.py ::1 9504 $T/d &
sh $T/wait_for.sh $T/d; reach ::1 9504; wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\n127.0.0.1 not reached\necho True\n::1 not reached\necho True\ngone\n\
         fg=0\n127.0.0.1 reached\n::1 reached\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// Podman's container line through Debian's `/usr/bin/pasta` and ours in the IPv6 world: the
/// namespace's IPv6 address and prefix, its IPv6 default route and a `-t` forward from the
/// host's `::1` to a server inside must agree.
#[test]
fn differential_ipv6_against_debians_pasta() {
    let script = r#"
touch $T/netns && unshare --net=$T/netns true
PY=/usr/bin/python3
"$PASTA" --config-net -t 8080:80 --dns-forward 169.254.1.1 -u none -T none -U none --no-map-gw --quiet --netns $T/netns --pid $T/pid
echo fg=$?
nsenter --net=$T/netns sh -c 'ip -o -6 addr show dummy0 scope global | awk "{print \$4}"; ip -6 route show default; ip -6 route show 2001:db8::/64'
nsenter --net=$T/netns $PY $T/echo_server.py :: 80 $T/ready &
sh $T/wait_for.sh $T/ready
$PY $T/echo_client.py ::1 8080
wait $!
pid=$(cat $T/pid)
umount -l $T/netns && rm $T/netns
# Debian's pasta may outlive the file (see docs/pasta.md): stop what we started, by PID.
sh $T/gone.sh $pid || kill $pid
"#;
    let theirs = world6("/usr/bin/pasta", script);
    let ours = world6("nsnet", script);
    let shared = "fg=0\n2001:db8::1/64\ndefault via 2001:db8::fe dev dummy0 metric 1024 pref medium\n\
                  2001:db8::/64 dev dummy0 proto kernel metric 256 pref medium\necho True\n";
    assert!(
        stdout(&theirs).starts_with(shared),
        "Debian's pasta: {}{}",
        stdout(&theirs),
        stderr(&theirs)
    );
    assert_eq!(
        stdout(&ours),
        format!("{shared}gone\n"),
        "ours: {}",
        stderr(&ours)
    );
}

/// Waits up to 3 s for `ss $1` (in the current netns) to show port $2 (`ss_in` inside), or
/// with `unlisten` for it to be gone.
const LISTEN: &str = r#"
listens() { for i in $(seq 300); do ss -H$1 "sport = :$2" | grep -q . && return 0; sleep 0.01; done; echo "$1 $2 never listened"; }
unlisten() { for i in $(seq 300); do ss -H$1 "sport = :$2" | grep -q . || { echo "$2 withdrawn"; return 0; }; sleep 0.01; done; echo "$1 $2 still listening"; }
"#;

/// pasta's default for every forwarding option not given is `auto`: a port bound inside
/// appears on the host (TCP, and UDP — which also follows TCP listeners, as pasta does for
/// iperf3), and is withdrawn once nothing inside listens on it; a port bound on the host's
/// loopback appears on the namespace's `lo` (`-T/-U auto`). Rescanned every second, as pasta.
#[test]
fn auto_forwards_follow_the_listeners_on_either_side() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}{LISTEN}
start --config-net
inside $PY $T/echo_server.py 0.0.0.0 9701 $T/a &
sh $T/wait_for.sh $T/a; listens ltn 9701; listens lun 9701
$PY $T/echo_client.py 127.0.0.1 9701; wait
unlisten ltn 9701
inside $PY $T/udp_server.py 0.0.0.0 9702 $T/b &
sh $T/wait_for.sh $T/b; listens lun 9702
$PY $T/udp_client.py 127.0.0.1 9702; wait
$PY $T/echo_server.py 127.0.0.1 9703 $T/c &
sh $T/wait_for.sh $T/c
inside sh -c '{LISTEN} listens ltn 9703; ss -Hltn "sport = :9703" | awk "{{print \$4}}"'
inside $PY $T/echo_client.py 127.0.0.1 9703; wait
$PY $T/udp_server.py 127.0.0.1 9704 $T/d &
sh $T/wait_for.sh $T/d
inside sh -c '{LISTEN} listens lun 9704'
inside $PY $T/udp_client.py 127.0.0.1 9704; wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\n9701 withdrawn\nPING\n*%lo:9703\necho True\nPING\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// `-T/-U PORT[:PORT]` (namespace's loopback → host's loopback), `auto` with explicit ranges
/// and exclusions (`-t 9710-9712,~9711,auto`: only 9710 and 9712, only while bound inside),
/// `-t none` forwarding nothing, and `%IFACE` binding (`-t %dummy0/9720`: the listener is
/// bound to that interface).
#[test]
fn splice_forwards_ranges_with_auto_and_interface_binding() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}{LISTEN}
$PY $T/echo_server.py 127.0.0.1 9706 $T/a &
sh $T/wait_for.sh $T/a
$PY $T/udp_server.py 127.0.0.1 9708 $T/b &
sh $T/wait_for.sh $T/b
start --config-net -t 9710-9712,~9711,auto -t %dummy0/9720 -u none -T 9705:9706 -U 9707:9708
inside $PY $T/echo_client.py 127.0.0.1 9705; wait %1
inside $PY $T/udp_client.py 127.0.0.1 9707; wait %2
for p in 9710 9711 9712; do inside $PY $T/echo_server.py 0.0.0.0 $p $T/s$p & done
for p in 9710 9711 9712; do sh $T/wait_for.sh $T/s$p; done
listens ltn 9710; listens ltn 9712; sleep 1.5
ss -Hltn 'sport = :9711' | grep -q . || echo 9711 excluded
ss -Hlun 'sport = :9710' | grep -q . || echo no udp
ss -Hltn 'sport = :9720' | awk '{{print $4}}'
$PY $T/echo_client.py 127.0.0.1 9712
inside $PY $T/echo_client.py 127.0.0.1 9710 >/dev/null; inside $PY $T/echo_client.py 127.0.0.1 9711 >/dev/null
wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\nPING\n9711 excluded\nno udp\n*%dummy0:9720\necho True\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// A forwarded connection or datagram keeps its client's address, as pasta's tap path keeps
/// it: a client on the host at 198.51.100.7 is seen inside as 198.51.100.7, TCP and UDP.
#[test]
fn forwards_keep_the_clients_address() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
ip addr add 198.51.100.7/32 dev lo
start --config-net -t 9801:80 -u 9802:53 -T none -U none
inside $PY -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(1); open(sys.argv[1], "w").close()
c, a = s.accept(); c.sendall(a[0].encode()); c.close()' $T/a &
sh $T/wait_for.sh $T/a
$PY -c '
import socket
s = socket.create_connection(("198.51.100.7", 9801), 3, ("198.51.100.7", 0))
print("tcp client seen as", s.recv(64).decode())'
wait
inside $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53))
open(sys.argv[1], "w").close()
d, a = s.recvfrom(64); s.sendto(a[0].encode(), a)' $T/b &
sh $T/wait_for.sh $T/b
$PY -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.bind(("198.51.100.7", 0))
s.sendto(b"x", ("198.51.100.7", 9802)); print("udp client seen as", s.recv(64).decode())'
wait
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\ntcp client seen as 198.51.100.7\nudp client seen as 198.51.100.7\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// The background process killed with SIGKILL mid-traffic: its tap goes with it, nothing of
/// it is left, and pasta started again on the same namespace, PID file and control socket
/// (the dead one's socket file still there) serves the forward again.
#[test]
fn kill9_the_background_process_then_restart_on_the_same_socket() {
    let o = world(
        "nsnet",
        &format!(
            r#"{START}
go() {{ "$PASTA" --config-net -t 9901:80 -u none -T none -U none --quiet --netns $T/netns --pid $T/pid -c $T/ctl; echo fg=$?; }}
go
nsenter --net=$T/netns $PY -c '
import socketserver, sys
class E(socketserver.StreamRequestHandler):
    def handle(self): self.wfile.write(self.rfile.readline().upper())
socketserver.ThreadingTCPServer.allow_reuse_address = True
s = socketserver.ThreadingTCPServer(("0.0.0.0", 80), E)
open(sys.argv[1], "w").close(); s.serve_forever()' $T/a &
server=$!
sh $T/wait_for.sh $T/a
( while :; do $PY $T/echo_client.py 127.0.0.1 9901 >/dev/null 2>&1; done ) &
loop=$!
sleep 0.5
pid=$(cat $T/pid)
kill -9 $pid; sh $T/gone.sh $pid
kill $loop; wait $loop 2>/dev/null
inside ip link show dummy0 >/dev/null 2>&1 || echo tap gone
[ -S $T/ctl ] && echo stale socket file
go
$PY $T/echo_client.py 127.0.0.1 9901
$T/pesto $T/ctl | grep -c 9901
kill $server
stop
"#
        ),
    );
    assert_eq!(
        stdout(&o),
        "fg=0\ngone\ntap gone\nstale socket file\nfg=0\necho True\n1\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// `--netns /proc/PID/ns/net` (RootlessKit's form of the path): the background process
/// still serves a second later, though once confined it can no longer look at that path
/// (procfs's ptrace check against the target's root, which holds more capabilities), and
/// quits once PID has exited.
#[test]
fn netns_as_proc_pid_path_is_served_until_the_process_exits() {
    let o = world(
        "nsnet",
        r#"
PY=/usr/bin/python3
unshare --net sleep 600 &
target=$!
while [ "$(readlink /proc/$target/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
"$PASTA" --config-net -t 9801 --quiet --netns /proc/$target/ns/net --pid $T/pid
echo fg=$?
pid=$(cat $T/pid)
sleep 1
nsenter --net=/proc/$target/ns/net $PY $T/echo_server.py 0.0.0.0 9801 $T/r &
sh $T/wait_for.sh $T/r; $PY $T/echo_client.py 127.0.0.1 9801; wait $!
kill $target; wait $target
sh $T/gone.sh $pid
"#,
    );
    assert_eq!(
        stdout(&o),
        "fg=0\necho True\ngone\n",
        "stderr: {}",
        stderr(&o)
    );
}
