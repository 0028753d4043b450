//! `nsnet run --net=builtin`: the in-process user-mode network, end to end.
//!
//! The guest is a real kernel network namespace made by nsnet (tap0, its routes and
//! resolv.conf); its programs are `ip` and `/usr/bin/python3` one-liners. The "outside" is
//! this test world's loopback, reached from the guest through the gateway 10.0.2.2, and a
//! DNS resolver this test runs on loopback (`NSNET_DNS_UPSTREAM`). Nothing leaves the world.

mod common;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::*;

const PY: &str = "/usr/bin/python3";
const LINE_ECHO_SERVER: &str = include_str!("fixtures/line_echo_server.py");
const LINE_ECHO_CLIENT: &str = include_str!("fixtures/line_echo_client.py");
const ECHO_CLIENT: &str = include_str!("fixtures/echo_client.py");
const PING: &str = include_str!("fixtures/ping.py");
const CONNECT: &str = include_str!("fixtures/connect.py");
const TCP_CLIENT: &str = include_str!("fixtures/tcp_client.py");
const WAIT_FOR: &str = include_str!("fixtures/wait_for.sh");

/// `python3 -c PROGRAM ARGS…`, as a command line.
fn py(program: &str, args: &[&str]) -> Vec<String> {
    py_chain(&[(program, args)])
}

/// Python programs run one after the other by `sh -c` (stopping at the first that fails),
/// each with its arguments (words without a quote: addresses, ports, flags; "" stays "").
fn py_chain(programs: &[(&str, &[&str])]) -> Vec<String> {
    let mut script = Vec::new();
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        String::new(),
        "sh".to_string(),
    ];
    for (i, (program, args)) in programs.iter().enumerate() {
        let args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        script.push(format!("{PY} -c \"${}\" {}", i + 1, args.join(" ")));
        argv.push(program.to_string());
    }
    argv[2] = script.join(" && ");
    argv
}

/// Runs `cmd` inside `nsnet run --net=NET ARGS`.
fn guest_on(net: &str, args: &[&str], cmd: &[String], env: &[(&str, String)]) -> Output {
    let mut c = nsnet();
    c.arg("run").arg(format!("--net={net}")).args(args);
    c.arg("--").args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    output(&mut c)
}

/// Runs `script` with python3 inside `nsnet run --net=builtin ARGS`.
fn guest_py(args: &[&str], script: &str, env: &[(&str, String)]) -> Output {
    guest_py_on("builtin", args, script, env)
}

/// Runs `script` with python3 inside `nsnet run --net=NET ARGS`.
fn guest_py_on(net: &str, args: &[&str], script: &str, env: &[(&str, String)]) -> Output {
    guest_on(net, args, &py(script, &[]), env)
}

fn ok_stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[test]
fn builtin_configures_tap0_route_and_resolv_conf() {
    let o = output(nsnet().args([
        "run",
        "--net=builtin",
        "--",
        "sh",
        "-c",
        "cat /sys/class/net/tap0/mtu; ip -4 -o addr show tap0; ip route; cat /etc/resolv.conf; ip -o link show lo",
    ]));
    let out = ok_stdout(&o);
    assert!(out.starts_with("65520\n"), "{out}");
    assert!(out.contains("inet 10.0.2.100/24"), "{out}");
    assert!(out.contains("default via 10.0.2.2 dev tap0"), "{out}");
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    assert!(out.contains("lo: <LOOPBACK,UP"), "{out}");
}

#[test]
fn builtin_honours_mtu_cidr_and_ifname() {
    let o = output(nsnet().args([
        "run",
        "--net=builtin",
        "--mtu=1500",
        "--cidr=10.0.135.128/25",
        "--ifname=eth7",
        "--",
        "sh",
        "-c",
        "cat /sys/class/net/eth7/mtu; ip -4 -o addr show eth7; ip route; cat /etc/resolv.conf",
    ]));
    let out = ok_stdout(&o);
    assert!(out.starts_with("1500\n"), "{out}");
    assert!(out.contains("inet 10.0.135.228/25"), "{out}");
    assert!(out.contains("default via 10.0.135.130"), "{out}");
    assert!(out.contains("nameserver 10.0.135.131"), "{out}");
}

#[test]
fn builtin_is_the_default_network_of_nsnet_run() {
    let o = output(nsnet().args(["run", "--", "cat", "/sys/class/net/tap0/mtu"]));
    assert_eq!(ok_stdout(&o), "65520\n");
}

fn echo_run(args: &[&str], flows: usize, size: usize) {
    echo_run_on("builtin", args, flows, size)
}

fn echo_run_on(net: &str, args: &[&str], flows: usize, size: usize) {
    let (port, served) = echo_server("127.0.0.1:0", Echo::AfterEof);
    let (port, n, size) = (port.to_string(), flows.to_string(), size.to_string());
    let o = guest_on(net, args, &py(ECHO_CLIENT, &[&port, &n, &size]), &[]);
    assert_eq!(ok_stdout(&o).trim(), "ok", "stderr: {}", stderr(&o));
    assert_eq!(served.load(Ordering::SeqCst), flows);
}

#[test]
fn tcp_through_the_gateway_reaches_host_loopback_intact_both_ways() {
    // 16 MiB each way on one connection, with half-close: nothing lost or reordered.
    echo_run(&[], 1, 16 << 20);
}

#[test]
fn tcp_at_mtu_1500_uses_tso_frames_and_stays_intact() {
    echo_run(&["--mtu=1500"], 1, 8 << 20);
}

#[test]
fn many_concurrent_tcp_flows() {
    echo_run(&[], 64, 256 << 10);
}

#[test]
fn tcp_to_a_closed_host_port_is_refused() {
    let port = free_port().to_string();
    let o = guest_on("builtin", &[], &py(CONNECT, &["10.0.2.2", &port]), &[]);
    assert_eq!(ok_stdout(&o).trim(), "ECONNREFUSED");
}

#[test]
fn disable_host_loopback_blocks_host_loopback_but_the_gateway_answers_ping() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = u.local_addr().unwrap().port();
    u.set_nonblocking(true).unwrap();
    let (port, uport) = (port.to_string(), uport.to_string());
    let send_udp = "import socket, sys\n\
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('10.0.2.2', int(sys.argv[1])))";
    let cmd = py_chain(&[
        (CONNECT, &["10.0.2.2,127.0.0.1", &port]),
        (send_udp, &[&uport]),
        (PING, &[]),
    ]);
    let o = guest_on("builtin", &["--disable-host-loopback"], &cmd, &[]);
    let out = ok_stdout(&o);
    assert!(out.contains("10.0.2.2 ENETUNREACH"), "{out}");
    // 127.0.0.1 inside the guest is the guest's own loopback: refused there, by its kernel.
    assert!(out.contains("127.0.0.1 ECONNREFUSED"), "{out}");
    assert!(out.contains("pong True"), "{out}");
    assert!(
        l.accept().is_err(),
        "nothing reached the host's TCP listener"
    );
    assert!(
        u.recv(&mut [0u8; 8]).is_err(),
        "nothing reached the host's UDP socket"
    );
}

#[test]
fn ping_to_the_gateway_answers() {
    let o = guest_py(&[], PING, &[]);
    assert_eq!(ok_stdout(&o).trim(), "pong True");
}

#[test]
fn udp_through_the_gateway_round_trips() {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while let Ok((n, from)) = u.recv_from(&mut b) {
            let _ = u.send_to(&b[..n], from);
        }
    });
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for size in [1, 1400, 8000]:
    m = bytes(i % 251 for i in range(size))
    s.sendto(m, ("10.0.2.2", {port}))
    r, a = s.recvfrom(65536)
    print(size, r == m, a)
"#
    );
    let out = ok_stdout(&guest_py(&["--mtu=1500"], &script, &[]));
    for size in [1, 1400, 8000] {
        assert!(
            out.contains(&format!("{size} True ('10.0.2.2', {port})")),
            "{out}"
        );
    }
}

/// A DNS server on loopback that answers every A query with 192.0.2.7 and records the names.
fn fake_resolver() -> (String, Arc<Mutex<Vec<String>>>) {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = u.local_addr().unwrap().to_string();
    let names = Arc::new(Mutex::new(Vec::new()));
    let n = names.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((len, from)) = u.recv_from(&mut b) {
            let q = &b[..len];
            if len < 17 {
                continue;
            }
            let mut i = 12;
            let mut labels = Vec::new();
            while i < len && q[i] != 0 {
                let l = q[i] as usize;
                labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(len)]).into_owned());
                i += 1 + l;
            }
            let qend = i + 5;
            if qend > len {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            n.lock().unwrap().push(labels.join("."));
            let mut r = q[..qend].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, (qtype == 1) as u8, 0, 0, 0, 0]);
            if qtype == 1 {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            }
            let _ = u.send_to(&r, from);
        }
    });
    (addr, names)
}

#[test]
fn dns_forwarder_on_cidr_plus_3_reaches_the_hosts_resolver() {
    let (addr, names) = fake_resolver();
    let script = r#"
import socket
print(socket.getaddrinfo("probe.nsnet.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
"#;
    // With host loopback disabled too: the forwarder still reaches a loopback resolver.
    for args in [&[][..], &["--disable-host-loopback"][..]] {
        names.lock().unwrap().clear();
        let o = guest_py(args, script, &[("NSNET_DNS_UPSTREAM", addr.clone())]);
        assert_eq!(ok_stdout(&o).trim(), "192.0.2.7");
        assert!(
            names
                .lock()
                .unwrap()
                .iter()
                .any(|n| n == "probe.nsnet.test"),
            "the query reached the test's resolver"
        );
    }
}

/// Makes sure this world's `lo` has 192.0.2.10 (TEST-NET-1, on no real network; scripts/test
/// gives every world that address) and lets every group use ping sockets here: a destination
/// that is neither the gateway nor host loopback. Needs root in the world (scripts/test's root
/// pass).
fn world_address_and_ping_sockets() {
    assert!(is_root(), "root_only test run unprivileged");
    let ok = std::process::Command::new("ip")
        .args(["addr", "replace", "192.0.2.10/32", "dev", "lo"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip addr replace in the test world");
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647").unwrap();
}

#[test]
fn root_only_other_destinations_are_reached_from_host_sockets() {
    world_address_and_ping_sockets();
    let l = TcpListener::bind("192.0.2.10:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"from 192.0.2.10");
        }
    });
    let port = port.to_string();
    let cmd = py_chain(&[
        (TCP_CLIENT, &["192.0.2.10", &port, ""]),
        (PING, &["--show", "192.0.2.10", "119"]),
    ]);
    // With host loopback disabled too: 192.0.2.10 is not host loopback, whatever device
    // holds it.
    for args in [&[][..], &["--disable-host-loopback"][..]] {
        let out = ok_stdout(&guest_on("builtin", args, &cmd, &[]));
        assert!(out.contains("from 192.0.2.10"), "{out}");
        assert!(
            out.contains("echo reply from 192.0.2.10 id 119 b'nsnetping'"),
            "ping forwarded through a ping socket, identifier restored: {out}"
        );
    }
}

#[test]
fn builtin_with_a_detached_netns_puts_tap0_there() {
    let (port, served) = echo_server("127.0.0.1:0", Echo::AfterEof);
    let script = format!(
        r#"readlink /proc/self/ns/net
ip -o link show | grep -c tap0 || true
nsenter --net="$ROOTLESSKIT_STATE_DIR/netns" ip -4 -o addr show tap0
nsenter --net="$ROOTLESSKIT_STATE_DIR/netns" {PY} -c "$TCP_CLIENT" 10.0.2.2 {port} detached
"#
    );
    let o = output(
        nsnet()
            .args(["run", "--net=builtin", "--detach-netns", "--", "sh", "-c"])
            .arg(&script)
            .env("TCP_CLIENT", TCP_CLIENT),
    );
    let out = ok_stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy(),
        "the command stays in the host netns"
    );
    assert_eq!(lines[1], "0", "no tap0 in the host netns");
    assert!(lines[2].contains("inet 10.0.2.100/24"), "{out}");
    assert_eq!(lines[3], "detached");
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[test]
fn external_slirp4netns_driver_carries_tcp_and_honours_disable_host_loopback() {
    let o = output(nsnet().args([
        "run",
        "--net=slirp4netns",
        "--mtu=1500",
        "--",
        "sh",
        "-c",
        "cat /sys/class/net/tap0/mtu; ip -4 -o addr show tap0; cat /etc/resolv.conf",
    ]));
    let out = ok_stdout(&o);
    assert!(out.starts_with("1500\n"), "{out}");
    assert!(out.contains("inet 10.0.2.100/24"), "{out}");
    assert!(out.contains("nameserver 10.0.2.3"), "{out}");
    echo_run_on("slirp4netns", &[], 4, 1 << 20);
    let port = free_port().to_string();
    let o = guest_on(
        "slirp4netns",
        &["--disable-host-loopback"],
        &py(CONNECT, &["10.0.2.2", &port]),
        &[],
    );
    assert_eq!(ok_stdout(&o).trim(), "ENETUNREACH");
}

#[test]
fn a_missing_slirp4netns_binary_is_one_error_line() {
    let o = output(nsnet().args([
        "run",
        "--net=slirp4netns",
        "--slirp4netns-binary=/nonexistent/slirp4netns",
        "--",
        "true",
    ]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("nsnet: error: --net=slirp4netns: start /nonexistent/slirp4netns: "),
        "{err}"
    );
}

#[test]
fn ipv6_reaches_host_ipv6_loopback_through_fd00_2() {
    let (port, _) = echo_server("[::1]:0", Echo::AfterEof);
    let script = format!(
        r#"
import socket, subprocess
print(subprocess.run(["ip", "-6", "-o", "addr", "show", "tap0", "scope", "global"], capture_output=True, text=True).stdout.split()[3])
print(subprocess.run(["ip", "-6", "route", "show", "default"], capture_output=True, text=True).stdout.split()[2])
data = bytes(range(256)) * 4096
s = socket.create_connection(("fd00::2", {port}), timeout=10)
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b: break
    got += b
print(bytes(got) == data)
"#
    );
    let out = ok_stdout(&guest_py(&["--ipv6"], &script, &[]));
    assert_eq!(out, "fd00::100/64\nfd00::2\nTrue\n");
}

/// Debian's RootlessKit 1.1.0 drives nsnet linked as `slirp4netns`
/// (`--net=slirp4netns --slirp4netns-binary=…`): it probes `--help`, starts it with
/// `--mtu 65520 -r 3 [--disable-host-loopback] --userns-path=… --netns-type=path …/ns/net
/// tap0`, waits for the ready fd and configures tap0 itself.
fn rootlesskit_over_the_personality(extra: &[&str], cmd: &[String]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = dir.path().join("slirp4netns");
    std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
    // RootlessKit refuses root without subordinate ids: as root, the test user runs it
    // (scripts/test creates the user).
    let mut c = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nsnet-test", "--", "rootlesskit"]);
        c
    } else {
        world();
        std::process::Command::new("rootlesskit")
    };
    c.current_dir("/")
        .arg("--net=slirp4netns")
        .arg(format!("--slirp4netns-binary={}", link.display()))
        .args(extra)
        .arg("--")
        .args(cmd);
    output(&mut c)
}

#[test]
fn rootlesskit_drives_the_slirp4netns_personality() {
    let (port, served) = echo_server("127.0.0.1:0", Echo::AfterEof);
    let (port, size) = (port.to_string(), (1 << 20).to_string());
    let o = rootlesskit_over_the_personality(&[], &py(ECHO_CLIENT, &[&port, "4", &size]));
    assert_eq!(ok_stdout(&o).trim(), "ok", "stderr: {}", stderr(&o));
    assert_eq!(served.load(Ordering::SeqCst), 4);
    // With --disable-host-loopback the gateway still answers ping but host loopback is
    // unreachable.
    let cmd = py_chain(&[(CONNECT, &["10.0.2.2", &port]), (PING, &[])]);
    let o = rootlesskit_over_the_personality(&["--disable-host-loopback"], &cmd);
    let out = ok_stdout(&o);
    assert!(out.contains("ENETUNREACH"), "{out}");
    assert!(out.contains("pong True"), "{out}");
}

#[test]
fn the_slirp4netns_personality_speaks_slirp4netns() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("slirp4netns");
    symlink(nsnet_bin(), &link).unwrap();
    world();
    let o = output(std::process::Command::new(&link).arg("--version"));
    assert!(o.status.success());
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l == "SLIRP_CONFIG_VERSION_MAX: 4"),
        "{}",
        stdout(&o)
    );
    let o = output(std::process::Command::new(&link).arg("--help"));
    for flag in [
        "--netns-type",
        "--userns-path",
        "--disable-host-loopback",
        "--cidr",
    ] {
        assert!(stdout(&o).contains(flag), "{flag} in --help");
    }
    let o = output(std::process::Command::new(&link).args(["--mtu=65522", "1"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("slirp4netns: MTU must be a positive integer (< 65522)\n"));
    let o = output(std::process::Command::new(&link).args(["--cidr=10.0.2.100/24", "1"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n"
    );
    let o = output(std::process::Command::new(&link).args(["--target-type=bess", "1"]));
    assert_eq!(o.status.code(), Some(1), "refused, not ignored");
}

/// `--net=pasta` in a world of its own: pasta copies addresses and routes from a template
/// interface with a default route, which the test world (only `lo`) lacks, so the scenario
/// runs in a further user + network namespace holding a veth pair with a default route (both
/// ends inside it; nothing answers there, nothing leaves). Its loopback is "the host".
/// `script` runs there with `sh`; `$T` is a directory holding `echo_server.py` (ADDR PORT:
/// answers one connection's line upper-cased) and `echo_client.py` (HOST PORT: sends 1 MiB
/// and a newline, prints `echo True` if it came back upper-cased).
fn pasta_world(script: &str) -> Output {
    use std::os::unix::fs::PermissionsExt;
    world();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("echo_server.py"), LINE_ECHO_SERVER).unwrap();
    std::fs::write(dir.path().join("echo_client.py"), LINE_ECHO_CLIENT).unwrap();
    // wait_for FILE: the servers write a ready file once they listen (bounded: 10 s).
    std::fs::write(dir.path().join("wait_for.sh"), WAIT_FOR).unwrap();
    std::fs::write(dir.path().join("script.sh"), script).unwrap();
    let setup = "ip link set lo up && ip link add dummy0 type veth peer name dummy1 && \
        ip link set dummy1 up && ip addr add 192.0.2.1/24 dev dummy0 && ip link set dummy0 up && \
        ip route add default via 192.0.2.254 dev dummy0";
    let mut c = std::process::Command::new("unshare");
    c.args(["--user", "--map-root-user", "--net", "--", "sh", "-c"])
        .arg(format!("{setup} && exec sh \"$T/script.sh\""))
        .env("NSNET", nsnet_bin())
        .env("T", dir.path())
        .current_dir("/");
    output(&mut c)
}

#[test]
fn pasta_driver_configures_tap0_and_carries_tcp_through_the_gateway() {
    let o = pasta_world(&format!(
        r#"{PY} $T/echo_server.py 127.0.0.1 9101 $T/ready1 &
sh $T/wait_for.sh $T/ready1
"$NSNET" run --net=pasta --pasta-binary=/usr/bin/pasta --mtu=1500 --state-dir=$T/state -- sh -c '
ip -o -4 addr show tap0 | awk "{{print \$4}}"; cat /sys/class/net/tap0/mtu; ip route show default
grep nameserver /etc/resolv.conf; {PY} $T/echo_client.py 10.0.2.2 9101'
echo rc=$?
# pasta's daemon was stopped with the launch: no process names this launch's pid file (other
# pastas on the machine are not this test's business).
pgrep -f -- "--pid=$T/state/" || echo no pasta left
"#
    ));
    assert_eq!(
        stdout(&o),
        "10.0.2.100/24\n1500\ndefault via 10.0.2.2 dev tap0 \nnameserver 10.0.2.3\necho True\nrc=0\nno pasta left\n",
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn pasta_driver_with_detach_netns_and_the_builtin_port_driver() {
    // The command stays in the (nested) host netns: it reaches a server in the detached netns
    // through a published port, and from inside that netns a server on loopback via 10.0.2.2.
    let o = pasta_world(&format!(
        r#"{PY} $T/echo_server.py 127.0.0.1 9103 $T/ready1 &
sh $T/wait_for.sh $T/ready1
"$NSNET" run --net=pasta --pasta-binary=/usr/bin/pasta --detach-netns \
  --port-driver=builtin -p 127.0.0.1:9102:80/tcp -- sh -c '
NS=$ROOTLESSKIT_STATE_DIR/netns
nsenter --net=$NS {PY} $T/echo_server.py 0.0.0.0 80 $T/ready2 &
sh $T/wait_for.sh $T/ready2
{PY} $T/echo_client.py 127.0.0.1 9102
nsenter --net=$NS {PY} $T/echo_client.py 10.0.2.2 9103
wait'
echo rc=$?
"#
    ));
    assert_eq!(
        stdout(&o),
        "echo True\necho True\nrc=0\n",
        "stderr: {}",
        stderr(&o)
    );
}

/// `--port-driver=implicit`: pasta's own forwarding (`--tcp-ports=auto`) makes a port bound
/// inside the namespace appear on the host at the same number, without any publishing; asking
/// to publish with it is refused. The same with Debian's pasta and with nsnet's own (nsnet
/// linked as `pasta`, whose `auto` follows the namespace's listeners the same way).
#[test]
fn pasta_implicit_port_driver_forwards_ports_bound_inside() {
    let o = pasta_world(&format!(
        r#"ln -s "$NSNET" $T/pasta
for PASTA in /usr/bin/pasta $T/pasta; do
"$NSNET" run --net=pasta --pasta-binary=$PASTA --port-driver=implicit -- \
  {PY} $T/echo_server.py 0.0.0.0 9105 &
launcher=$!
# pasta rescans the namespace's bound ports every second.
for i in $(seq 40); do
  {PY} $T/echo_client.py 127.0.0.1 9105 2>/dev/null && break
  sleep 0.25
done
wait $launcher
echo rc=$?
done
"$NSNET" run --net=pasta --pasta-binary=/usr/bin/pasta --port-driver=implicit -p 9106:80/tcp true
echo rc=$?
"#
    ));
    assert_eq!(
        stdout(&o),
        "echo True\nrc=0\necho True\nrc=0\nrc=1\n",
        "stderr: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("port driver \"implicit\" does not support publishing ports"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn pasta_failing_to_start_is_one_error_line_and_leaves_nothing() {
    // No template interface: pasta refuses, and says why.
    let o = output(nsnet().args([
        "run",
        "--net=pasta",
        "--pasta-binary=/usr/bin/pasta",
        "--",
        "true",
    ]));
    assert_eq!(o.status.code(), Some(1));
    let last = errors(&o);
    assert_eq!(
        last,
        "nsnet: error: --net=pasta: /usr/bin/pasta failed (exit status: 1): External interface not usable\n"
    );
}

/// The stack's thread in the launcher confines itself before its first frame: no new
/// privileges and a system-call filter on that thread (and Landlock, which /proc does not
/// show), while the launcher's main thread stays free; the guest's traffic still flows
/// (every other test here runs under the same confinement).
#[test]
fn the_stack_thread_is_confined_and_the_launcher_is_not() {
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(
        r#""$NSNET" run --net=builtin -- sh -c 'ip -o -4 addr show tap0 | awk "{print \$4}"; sleep 2' &
L=$!
sleep 1
for t in /proc/$L/task/*; do
  [ "$(cat $t/comm)" = nsnet-stack ] && grep -E "^(NoNewPrivs|Seccomp):" $t/status | tr '\t' ' '
done
grep -E "^(NoNewPrivs|Seccomp):" /proc/$L/status | sed 's/^/main /' | tr '\t' ' '
wait $L; echo rc=$?"#,
    );
    c.env("NSNET", nsnet_bin());
    let o = output(&mut c);
    assert_eq!(
        stdout(&o),
        "10.0.2.100/24\nNoNewPrivs: 1\nSeccomp: 2\nmain NoNewPrivs: 0\nmain Seccomp: 0\nrc=0\n",
        "stderr: {}",
        stderr(&o)
    );
}
