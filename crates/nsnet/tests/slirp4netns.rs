//! The `slirp4netns` personality on its own: nsnet linked as `slirp4netns`, pointed at a
//! network namespace the test made with `unshare` (a user namespace too, so the same test
//! runs as root and as the unprivileged user), serving slirp4netns's API socket. Host ports
//! forwarded into the guest reach servers inside that namespace; nothing leaves the world.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A guest: python3 in a new user + network namespace, serving TCP 8080 and UDP 5353 (both
/// answer with the request upper-cased); says "ready" on stdout.
const GUEST_SERVERS: &str = include_str!("fixtures/guest_servers.py");
const CONNECT: &str = include_str!("fixtures/connect.py");
const TCP_CLIENT: &str = include_str!("fixtures/tcp_client.py");
const SOURCE_SERVER: &str = include_str!("fixtures/source_server.py");
const TCP_UDP_CLIENT: &str = include_str!("fixtures/tcp_udp_client.py");
const BACKLOG_LISTENER: &str = include_str!("fixtures/backlog_listener.py");

pub struct Guest {
    child: Child,
}

impl Guest {
    pub fn start() -> Guest {
        Guest::start_in(None)
    }
    /// The guest, in this test's world or inside a [`DeadEnd`] world.
    pub fn start_in(host: Option<&DeadEnd>) -> Guest {
        world();
        let mut child = in_host(host, "unshare")
            .args(["--user", "--map-root-user", "--net", "--"])
            .args(["/usr/bin/python3", "-c", GUEST_SERVERS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        Guest { child }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nsnet as `slirp4netns -c -a SOCK PID tap0`, stopped (SIGTERM by PID) when dropped.
pub struct Slirp {
    child: Child,
    pub sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Slirp {
    pub fn start(guest: &Guest, extra: &[&str]) -> Slirp {
        Slirp::start_in(None, guest, extra)
    }
    /// The personality run on `host`'s network (this test's world when `None`).
    pub fn start_in(host: Option<&DeadEnd>, guest: &Guest, extra: &[&str]) -> Slirp {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("slirp4netns");
        std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
        let sock = dir.path().join("api.sock");
        let child = in_host(host, &link)
            .args(["-c", "-a"])
            .arg(&sock)
            .args(extra)
            .arg(guest.pid().to_string())
            .arg("tap0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn slirp4netns personality");
        let mut s = Slirp {
            child,
            sock,
            _dir: dir,
        };
        for _ in 0..500 {
            // The socket file appears before the sandbox, the seccomp filter and the stack
            // (and a moment before it listens); its first answer comes after all three (the
            // API thread starts last).
            if let Ok(c) = UnixStream::connect(&s.sock) {
                let list = api_on(c, r#"{"execute":"list_hostfwd"}"#);
                assert!(list.contains("entries"), "{list}");
                return s;
            }
            if let Some(st) = s.child.try_wait().unwrap() {
                let mut e = String::new();
                s.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut e)
                    .unwrap();
                panic!("slirp4netns personality exited {st}: {e}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no API socket at {}", s.sock.display());
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Stops the personality (SIGTERM) and returns its stderr.
    pub fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        let mut e = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut e)
            .unwrap();
        assert!(st.success(), "exit {st}: {e}");
        e
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prog`, run in `host`'s user and network namespaces (this test's world when `None`).
fn in_host(host: Option<&DeadEnd>, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    match host {
        None => Command::new(prog),
        Some(h) => {
            let mut c = Command::new("nsenter");
            c.args(["--preserve-credentials", "-U", "-n", "-t"])
                .arg(h.pid().to_string())
                .arg("--")
                .arg(prog);
            c
        }
    }
}

/// A host network as a real machine has one, which the test world (only `lo`) is not: a
/// further user + network namespace holding `dead0` (one end of a veth pair) with 192.0.2.1/24
/// and 2001:db8::1/64, and a default route via 192.0.2.254, whose neighbour entry is fixed so
/// that packets leave at once and vanish at the pair's other end (it has no address and
/// routes nothing). A connect to an outside address therefore hangs, as behind a dead
/// upstream, instead of failing fast. Its loopback is "the host" the gateway leads to.
pub struct DeadEnd {
    child: Child,
}

impl DeadEnd {
    pub fn start() -> DeadEnd {
        world();
        let setup = "ip link set lo up && ip link add dead0 type veth peer name dead1 && \
            ip link set dead1 up && ip link set dead0 up && \
            ip addr add 192.0.2.1/24 dev dead0 && ip -6 addr add 2001:db8::1/64 dev dead0 nodad && \
            ip route add default via 192.0.2.254 dev dead0 && \
            ip neigh add 192.0.2.254 lladdr 02:00:00:00:00:fe dev dead0 nud permanent && \
            echo ready && exec sleep infinity";
        let mut child = Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--net",
                "--",
                "sh",
                "-c",
                setup,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "dead-end world set-up failed");
        DeadEnd { child }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Runs `sh -c script` in this world and returns its output.
    pub fn sh(&self, script: &str) -> std::process::Output {
        output(in_host(Some(self), "sh").args(["-c", script]))
    }
}

impl Drop for DeadEnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python run inside the guest's namespaces; returns its output.
fn in_guest(guest: &Guest, script: &str, args: &[&str]) -> std::process::Output {
    output(
        Command::new("nsenter")
            .args(["--preserve-credentials", "-U", "-n", "-t"])
            .arg(guest.pid().to_string())
            .args(["/usr/bin/python3", "-c", script])
            .args(args),
    )
}

/// One API request over its own connection (the client half-closes, as slirp4netns wants).
pub fn api(sock: &Path, req: &str) -> String {
    api_on(UnixStream::connect(sock).unwrap(), req)
}

/// [`api`] over a connection already made.
fn api_on(mut c: UnixStream, req: &str) -> String {
    c.write_all(req.as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // After a too-large request the server closes with bytes unread, which resets the
    // connection once its reply has been read.
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => break,
            Err(e) => panic!("read API reply: {e}"),
        }
    }
    String::from_utf8(out).unwrap()
}

fn tcp_round_trip(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(payload).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn api_socket_adds_lists_and_removes_hostfwds_that_carry_tcp_and_udp() {
    let guest = Guest::start();
    let slirp = Slirp::start(&guest, &[]);
    let (tp, up) = (free_port(), free_port());
    assert_eq!(
        api(&slirp.sock, r#"{"execute":"list_hostfwd"}"#),
        r#"{"entries":[]}"#
    );
    assert_eq!(
        api(
            &slirp.sock,
            &format!(
                r#"{{"execute": "add_hostfwd", "arguments": {{"proto": "tcp", "host_addr": "127.0.0.1", "host_port": {tp}, "guest_port": 8080}}}}"#
            )
        ),
        r#"{"return":{"id":1}}"#
    );
    assert_eq!(
        api(
            &slirp.sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"127.0.0.1","host_port":{up},"guest_addr":"10.0.2.100","guest_port":5353}}}}"#
            )
        ),
        r#"{"return":{"id":2}}"#
    );
    assert_eq!(
        api(&slirp.sock, r#"{"execute":"list_hostfwd"}"#),
        format!(
            r#"{{"entries":[{{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":{tp},"guest_addr":"10.0.2.100","guest_port":8080}},{{"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":{up},"guest_addr":"10.0.2.100","guest_port":5353}}]}}"#
        )
    );
    // TCP into the namespace's server, 1 MiB both ways, a few times.
    let big: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..3 {
        assert_eq!(tcp_round_trip(tp, &big), big.to_ascii_uppercase());
    }
    // UDP.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = None;
    for _ in 0..10 {
        u.send_to(b"ping", ("127.0.0.1", up)).unwrap();
        let mut b = [0u8; 16];
        if let Ok((n, from)) = u.recv_from(&mut b) {
            got = Some((b[..n].to_vec(), from.port()));
            break;
        }
    }
    assert_eq!(got, Some((b"PING".to_vec(), up)));
    // Bad requests are answered and the socket keeps serving.
    assert_eq!(
        api(&slirp.sock, "{garbage"),
        r#"{"error":{"desc":"bad request: cannot parse JSON"}}"#
    );
    assert_eq!(
        api(&slirp.sock, &"x".repeat(5000)),
        r#"{"error":{"desc":"bad request: too large message"}}"#
    );
    // The port is taken: slirp's bind fails.
    assert_eq!(
        api(
            &slirp.sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_addr":"127.0.0.1","host_port":{tp},"guest_port":80}}}}"#
            )
        ),
        r#"{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}"#
    );
    assert_eq!(
        api(
            &slirp.sock,
            r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#
        ),
        r#"{"return":{}}"#
    );
    assert!(
        TcpStream::connect(("127.0.0.1", tp)).is_err(),
        "removed forward's port is closed once the reply arrived"
    );
    assert_eq!(
        api(
            &slirp.sock,
            r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#
        ),
        r#"{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}"#
    );
    let sock = slirp.sock.clone();
    let err = slirp.stop();
    assert!(err.contains("api_handler: got request: {garbage"), "{err}");
    assert!(!sock.exists(), "API socket removed on exit");
}

/// A status field of /proc/PID/status.
fn status_field(pid: i32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// From inside the guest's namespaces (nsenter), a TCP echo through the gateway to a
/// server on this world's loopback.
fn outbound_from_guest(guest: &Guest) {
    let (port, served) = echo_server("127.0.0.1:0", Echo::AfterEof);
    let o = in_guest(guest, TCP_CLIENT, &["10.0.2.2", &port.to_string(), "hello"]);
    assert_eq!(stdout(&o), "hello\n", "stderr: {}", stderr(&o));
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn sandbox_and_seccomp_confine_the_process_and_traffic_still_flows() {
    let guest = Guest::start();
    let slirp = Slirp::start(&guest, &["--enable-sandbox", "--enable-seccomp"]);
    let pid = slirp.pid();
    // The filter is installed (mode 2) and covers every thread, started after it.
    assert_eq!(status_field(pid, "Seccomp"), "2");
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().file_name().into_string().unwrap();
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).unwrap();
        assert!(s.contains("Seccomp:\t2\n"), "thread {t} unfiltered");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    // Only CAP_NET_BIND_SERVICE (bit 10) is left, in every set.
    assert_eq!(status_field(pid, "CapEff"), "0000000000000400");
    assert_eq!(status_field(pid, "CapBnd"), "0000000000000400");
    // Its root is a tmpfs holding etc and run only, not this world's /.
    use std::os::unix::fs::MetadataExt;
    let root = format!("/proc/{pid}/root");
    let (theirs, ours) = (
        std::fs::metadata(format!("{root}/")).unwrap(),
        std::fs::metadata("/").unwrap(),
    );
    assert_ne!((theirs.dev(), theirs.ino()), (ours.dev(), ours.ino()));
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["etc", "run"]);
    assert!(Path::new(&format!("{root}/etc/passwd")).exists());
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "a mount namespace of its own"
    );
    // Traffic still flows: a hostfwd both ways over TCP and UDP, and outbound.
    let (tp, up) = (free_port(), free_port());
    assert_eq!(
        api(
            &slirp.sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_addr":"127.0.0.1","host_port":{tp},"guest_port":8080}}}}"#
            )
        ),
        r#"{"return":{"id":1}}"#
    );
    assert_eq!(tcp_round_trip(tp, b"abc"), b"ABC");
    assert_eq!(
        api(
            &slirp.sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"127.0.0.1","host_port":{up},"guest_port":5353}}}}"#
            )
        ),
        r#"{"return":{"id":2}}"#
    );
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        u.send_to(b"x", ("127.0.0.1", up)).unwrap();
        let mut b = [0u8; 4];
        if let Ok((n, _)) = u.recv_from(&mut b) {
            got = b[..n].to_vec();
            break;
        }
    }
    assert_eq!(got, b"X");
    outbound_from_guest(&guest);
    let sock = slirp.sock.clone();
    slirp.stop();
    assert!(!sock.exists(), "API socket removed from inside the sandbox");
}

/// `--macaddress` (with `-c`): the tap nsnet configures carries that address, and traffic
/// flows through it.
#[test]
fn macaddress_sets_the_taps_address() {
    let guest = Guest::start();
    let _slirp = Slirp::start(&guest, &["--macaddress=02:5a:11:22:33:44"]);
    let o = output(
        Command::new("nsenter")
            .args(["--preserve-credentials", "-U", "-n", "-t"])
            .arg(guest.pid().to_string())
            .args(["ip", "-o", "link", "show", "tap0"]),
    );
    assert!(
        stdout(&o).contains("link/ether 02:5a:11:22:33:44 "),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
    outbound_from_guest(&guest);
}

/// `--disable-dns` (slirp4netns's test-slirp4netns-disable-dns.sh): CIDR+3 is no longer the
/// DNS forwarder but an outside address like any other. Behind a dead-end default route the
/// guest's connect to 10.0.2.3:53 hangs until its own time-out (it is not refused at once
/// with "Network is unreachable"); once the host itself holds 10.0.2.3, the same connect
/// reaches that host's listener, which shows the flow went to 10.0.2.3 as a real address.
#[test]
fn disable_dns_sends_cidr_plus_3_to_the_real_network() {
    let host = DeadEnd::start();
    let guest = Guest::start_in(Some(&host));
    let _slirp = Slirp::start_in(Some(&host), &guest, &["--disable-dns"]);
    let o = in_guest(
        &guest,
        CONNECT,
        &["--timeout=3", "--elapsed", "10.0.2.3", "53"],
    );
    let out = stdout(&o);
    assert!(out.starts_with("timeout "), "{out} {}", stderr(&o));
    let secs: f64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 2.5, "gave up after {secs} s, not at the time-out");
    // The host takes 10.0.2.3 and listens on it: the guest now reaches that listener.
    let o = host.sh("ip addr add 10.0.2.3/32 dev lo");
    assert!(o.status.success(), "{}", stderr(&o));
    // It never accepts: the kernel completes handshakes into its backlog. (The first flow's
    // host socket, still sending SYNs, may land there too once the address exists.)
    let mut server = in_host(Some(&host), "/usr/bin/python3")
        .args(["-c", BACKLOG_LISTENER, "10.0.2.3", "53"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let o = in_guest(
        &guest,
        CONNECT,
        &["--timeout=3", "--elapsed", "10.0.2.3", "53"],
    );
    assert!(
        stdout(&o).starts_with("connected "),
        "{} {}",
        stdout(&o),
        stderr(&o)
    );
    drop(server.stdin.take());
    assert!(server.wait().unwrap().success());
}

/// `--outbound-addr` and `--outbound-addr6` (slirp4netns's test-slirp4netns-outbound-addr.sh):
/// every outbound socket is bound to the address, including the gateway's flows that land
/// on the host's loopback, so a server there sees the connection come from that address;
/// the interface-name form binds to that interface's address.
#[test]
fn outbound_addr_binds_flows_to_the_gateway_too() {
    let host = DeadEnd::start();
    // (flags, the guest's gateway, where the server's UDP listens, the source it sees)
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (
            &["--outbound-addr=127.0.0.1"],
            "10.0.2.2",
            "127.0.0.1",
            "127.0.0.1",
        ),
        (
            &["--outbound-addr=192.0.2.1"],
            "10.0.2.2",
            "127.0.0.1",
            "192.0.2.1",
        ),
        (
            &["--outbound-addr=dead0"],
            "10.0.2.2",
            "127.0.0.1",
            "192.0.2.1",
        ),
        (
            &["-6", "--outbound-addr6=2001:db8::1"],
            "fd00::2",
            "::1",
            "2001:db8::1",
        ),
        (
            &["-6", "--outbound-addr6=dead0"],
            "fd00::2",
            "::1",
            "2001:db8::1",
        ),
    ];
    for (flags, gateway, udp_at, seen) in cases {
        let guest = Guest::start_in(Some(&host));
        let _slirp = Slirp::start_in(Some(&host), &guest, flags);
        let mut server = in_host(Some(&host), "/usr/bin/python3")
            .args(["-c", SOURCE_SERVER, udp_at])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap();
        let o = in_guest(&guest, TCP_UDP_CLIENT, &[gateway, &port]);
        assert_eq!(stdout(&o), "udp answered\n", "{flags:?}: {}", stderr(&o));
        let got: Vec<String> = lines.map(Result::unwrap).collect();
        assert_eq!(
            got,
            [format!("tcp {seen}"), format!("udp {seen}")],
            "{flags:?}"
        );
        assert!(server.wait().unwrap().success());
    }
    // No such interface: slirp4netns's one line, before anything starts.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("slirp4netns");
    std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
    for (flag, family) in [("--outbound-addr", "ipv4"), ("--outbound-addr6", "ipv6")] {
        let o = output(Command::new(&link).args([&format!("{flag}=nosuch0"), "1"]));
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stderr(&o),
            format!(
                "{} has to be valid {family} address or interface name.\n",
                &flag[2..]
            )
        );
    }
}
