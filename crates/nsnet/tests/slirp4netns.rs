//! The `slirp4netns` personality on its own: nsnet linked as `slirp4netns`, pointed at a
//! network namespace the test made with `unshare` (a user namespace too, so the same test
//! runs as root and as the unprivileged user), serving slirp4netns's API socket. Host ports
//! forwarded into the guest reach servers inside that namespace; nothing leaves the world.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A guest: python3 in a new user + network namespace, serving TCP 8080 and UDP 5353 (both
/// answer with the request upper-cased) until killed.
const GUEST_SERVERS: &str = r#"
import socket, threading, sys
def tcp():
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", 8080)); l.listen(16)
    while True:
        c, _ = l.accept()
        data = b""
        while True:
            b = c.recv(65536)
            if not b: break
            data += b
        c.sendall(data.upper()); c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
    while True:
        d, a = u.recvfrom(65536); u.sendto(d.upper(), a)
threading.Thread(target=udp, daemon=True).start()
t = threading.Thread(target=tcp, daemon=True); t.start()
print("ready", flush=True)
sys.stdin.read()
"#;

pub struct Guest {
    child: Child,
}

impl Guest {
    pub fn start() -> Guest {
        world();
        let mut child = Command::new("unshare")
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
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("slirp4netns");
        std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
        let sock = dir.path().join("api.sock");
        let child = Command::new(&link)
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
            if s.sock.exists() {
                // The socket file appears before the sandbox, the seccomp filter and the
                // stack; its first answer comes after all three (the API thread starts last).
                let list = api(&s.sock, r#"{"execute":"list_hostfwd"}"#);
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

/// One API request over its own connection (the client half-closes, as slirp4netns wants).
pub fn api(sock: &Path, req: &str) -> String {
    let mut c = UnixStream::connect(sock).unwrap();
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        c.write_all(&b).unwrap();
    });
    let script = format!(
        "import socket; s=socket.create_connection(('10.0.2.2',{port}),timeout=10); s.sendall(b'hello'); print(s.recv(5).decode())"
    );
    let o = output(
        Command::new("nsenter")
            .args(["--preserve-credentials", "-U", "-n", "-t"])
            .arg(guest.pid().to_string())
            .args(["/usr/bin/python3", "-c", &script]),
    );
    assert_eq!(stdout(&o), "hello\n", "stderr: {}", stderr(&o));
    server.join().unwrap();
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
