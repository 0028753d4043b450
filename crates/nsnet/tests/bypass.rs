//! `nsnet container run --bypass`: busybox containers under runc whose outbound connects are
//! swapped for host sockets by the seccomp-notify service in their monitor.
//!
//! The proof that a connection bypassed is where its client socket lives: the server (this
//! test, on the world's 192.0.2.10) looks up its peer in the world's `/proc/net/tcp` and finds
//! the process holding that socket. Bypassed, it is the container's `wget` — a process of the
//! container's netns holding a socket of the world's; on the normal path it is the nsnet
//! instance (its user-mode stack's host socket). Each never-bypass rule has a case that fails if
//! the bypass opens it: where a bypassed connect would reach something, a world server that must
//! stay untouched; everywhere, the service's own count of swapped sockets, which must stay 0.
//! The world has no IPv6 address but `::1`, so IPv6 is tested in `nsnet-bypass`'s own tests
//! (an AF_INET6 socket to a v4-mapped world address) and by the policy's unit tests.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

const APPLETS: &[&str] = &[
    "sh",
    "httpd",
    "wget",
    "sleep",
    "sha256sum",
    "cat",
    "true",
    "nc",
    "tftp",
];

/// The world address that is not loopback (scripts/test puts it on the world's lo).
const WORLD: &str = "192.0.2.10";

struct Env {
    data: tempfile::TempDir,
    run: tempfile::TempDir,
    rootfs: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        world();
        let e = Env {
            data: tempfile::tempdir().unwrap(),
            run: tempfile::tempdir().unwrap(),
            rootfs: tempfile::tempdir().unwrap(),
        };
        let dir = e.rootfs.path();
        for d in ["bin", "etc", "www"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::copy("/usr/bin/busybox", dir.join("bin/busybox"))
            .expect("/usr/bin/busybox (Debian package busybox-static)");
        for a in APPLETS {
            symlink("busybox", dir.join("bin").join(a)).unwrap();
        }
        std::fs::write(dir.join("www/index.html"), "hello from nsnet\n").unwrap();
        e
    }

    fn nsnet(&self) -> Command {
        let mut c = nsnet();
        c.env("XDG_DATA_HOME", self.data.path())
            .env("XDG_RUNTIME_DIR", self.run.path());
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        let mut c = self.nsnet();
        c.arg("container").args(args);
        output(&mut c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "nsnet container {args:?} failed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    fn rootfs(&self) -> &str {
        self.rootfs.path().to_str().unwrap()
    }

    /// `nsnet container run --name NAME [EXTRA…] --rootfs R -- sh -c SCRIPT`, in the foreground.
    fn run_sh(&self, name: &str, extra: &[&str], script: &str) -> Output {
        let mut args = vec!["run", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", self.rootfs(), "--", "sh", "-c", script]);
        self.out(&args)
    }

    /// The bypass counts of a container: (enabled, bypassed, normal).
    fn counts(&self, name: &str) -> (bool, u64, u64) {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", "-f", "{{json .NsnetBypass}}", name]))
                .unwrap();
        (
            v["Enabled"].as_bool().unwrap(),
            v["Bypassed"].as_u64().unwrap_or(0),
            v["Normal"].as_u64().unwrap_or(0),
        )
    }

    fn bypass_dir(&self) -> PathBuf {
        self.run.path().join("nsnet/bypass")
    }

    fn instance_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.run.path().join("nsnet/default.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.out(&["ps", "-aq"]);
        for id in stdout(&ids).split_whitespace() {
            let _ = self.out(&["rm", "-f", id]);
        }
        if let Some(pid) = self.instance_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            assert!(
                wait_gone(pid, Duration::from_secs(10)),
                "the instance {pid} did not stop"
            );
        }
    }
}

/// Who held the client end of a connection the server accepted.
#[derive(Debug, Clone)]
struct Seen {
    comm: String,
    /// The holder's network namespace is the world's.
    holder_in_world: bool,
}

/// `/proc/net/tcp`'s form of an IPv4 socket address.
fn proc_addr(a: std::net::SocketAddr) -> String {
    let std::net::IpAddr::V4(ip) = a.ip() else {
        panic!("IPv4 only")
    };
    format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port())
}

/// `/proc/net/tcp6`'s form of an IPv4 socket address on a dual-stack socket: v4-mapped, but
/// the unspecified address stays `::`.
fn proc_addr6(a: std::net::SocketAddr) -> String {
    let std::net::IpAddr::V4(ip) = a.ip() else {
        panic!("IPv4 only")
    };
    let v6 = if ip.is_unspecified() {
        std::net::Ipv6Addr::UNSPECIFIED
    } else {
        ip.to_ipv6_mapped()
    };
    let words: String = v6
        .octets()
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_le_bytes(w.try_into().unwrap())))
        .collect();
    format!("{words}:{:04X}", a.port())
}

/// The process holding the world TCP socket with local address `local` and peer `peer`, an
/// IPv4 socket or a dual-stack IPv6 one (busybox's servers make those).
fn holder(local: std::net::SocketAddr, peer: std::net::SocketAddr) -> Option<Seen> {
    holder_in("/proc/net/tcp", &proc_addr(local), &proc_addr(peer))
        .or_else(|| holder_in("/proc/net/tcp6", &proc_addr6(local), &proc_addr6(peer)))
}

fn holder_in(table: &str, l: &str, p: &str) -> Option<Seen> {
    let tcp = std::fs::read_to_string(table).unwrap();
    let (l, p) = (l.to_string(), p.to_string());
    let inode = tcp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&l.as_str()) && f.get(2) == Some(&p.as_str()))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    inode_holder(&inode)
}

/// Every process holding the world UDP socket (IPv4) whose local port is `port`, whatever its
/// address. All of them: while the bypass service sends a datagram for a container, its
/// monitor holds the socket too, for a moment.
fn udp_holders(port: u16) -> Vec<Seen> {
    let udp = std::fs::read_to_string("/proc/net/udp").unwrap();
    let suffix = format!(":{port:04X}");
    let inode = udp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.get(1)
            .is_some_and(|l| l.ends_with(&suffix))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    });
    inode.map(|i| inode_holders(&i)).unwrap_or_default()
}

fn inode_holder(inode: &str) -> Option<Seen> {
    inode_holders(inode).into_iter().next()
}

fn inode_holders(inode: &str) -> Vec<Seen> {
    let want = format!("socket:[{inode}]");
    let world = own_ns("net");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == want) {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                let ns = std::fs::read_link(e.path().join("ns/net"))
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(Seen {
                    comm: comm.trim().to_string(),
                    holder_in_world: ns == world,
                });
                break;
            }
        }
    }
    out
}

/// 1 MiB that no two offsets repeat within a short window.
fn blob() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn sha256_of(data: &[u8]) -> String {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), data).unwrap();
    let o = output(Command::new("sha256sum").arg(f.path()));
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// An HTTP server on `addr` that answers every GET with [`blob`], after finding out who holds
/// the client's socket (reported on the channel, one per connection).
fn blob_server(addr: &str) -> (u16, mpsc::Receiver<Option<Seen>>) {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let body = blob();
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            // The client waits for the answer: its socket is still open.
            let seen = holder(c.peer_addr().unwrap(), c.local_addr().unwrap());
            let _ = tx.send(seen);
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
        }
    });
    (port, rx)
}

/// A server on `addr` that counts its connections (the way a bypass would leak out).
fn counting_server(addr: &str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let n = std::sync::Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            n2.fetch_add(1, Ordering::SeqCst);
            let mut c = c;
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nHOST\n");
        }
    });
    (port, n)
}

fn fetch_hash(port: u16) -> String {
    format!("wget -q -O - http://{WORLD}:{port}/blob | sha256sum")
}

#[test]
fn bypass_outbound_tcp_runs_on_a_host_socket_with_hash_checked_bytes() {
    let env = Env::new();
    let (port, seen) = blob_server(&format!("{WORLD}:0"));
    let want = sha256_of(&blob());

    // The normal path first: the client socket the server sees is the instance's.
    let o = env.run_sh("plain", &[], &fetch_hash(port));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).split_whitespace().next(), Some(want.as_str()));
    let s = seen.recv().unwrap().expect("the client socket's holder");
    assert!(s.comm == "nsnet" && s.holder_in_world, "normal path: {s:?}");
    assert_eq!(env.counts("plain"), (false, 0, 0));

    // Bypassed: the container's wget holds a socket of the world's netns.
    let o = env.run_sh("fast", &["--bypass"], &fetch_hash(port));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).split_whitespace().next(), Some(want.as_str()));
    let s = seen.recv().unwrap().expect("the client socket's holder");
    assert!(s.comm == "wget" && !s.holder_in_world, "bypass: {s:?}");
    let (on, bypassed, _) = env.counts("fast");
    assert!(on && bypassed == 1, "{:?}", env.counts("fast"));

    // Detached, then removed: nothing of the service stays (listener, monitor, host socket).
    let script = format!("{} >/tmp/sum; sleep 600", fetch_hash(port));
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "--bypass",
            "--rootfs",
            env.rootfs(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .trim()
        .to_string();
    let s = seen.recv().unwrap().expect("the client socket's holder");
    assert!(
        s.comm == "wget" && !s.holder_in_world,
        "detached bypass: {s:?}"
    );
    // `exec`: runc hands over a second notify fd, for the new process's own filter.
    let got = env.ok(&["exec", "bg", "sh", "-c", &fetch_hash(port)]);
    assert_eq!(got.split_whitespace().next(), Some(want.as_str()));
    let s = seen.recv().unwrap().expect("the client socket's holder");
    assert!(s.comm == "wget" && !s.holder_in_world, "exec bypass: {s:?}");
    assert_eq!(env.counts("bg").1, 2);
    let sock = env.bypass_dir().join(format!("{id}.sock"));
    assert!(sock.exists(), "{} is missing", sock.display());
    env.ok(&["rm", "-f", "bg"]);
    assert!(!sock.exists(), "{} is left", sock.display());
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|c| c.contains("container-monitor") && c.contains(&id))
        .collect();
    assert!(left.is_empty(), "monitors left: {left:?}");
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let peer = format!(":{port:04X}");
    let open: Vec<&str> = tcp
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Established (01) towards the server; TIME_WAIT has no socket left to hold.
            f.get(2).is_some_and(|r| r.ends_with(&peer)) && f.get(3) == Some(&"01")
        })
        .collect();
    assert!(open.is_empty(), "host sockets left: {open:?}");
}

#[test]
fn bypass_never_opens_what_the_normal_path_closes() {
    let env = Env::new();
    // Container to container on the bridge: the normal path carries it.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--rootfs",
        env.rootfs(),
        "--",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let ip = env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "server"]);
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://{}/index.html && exit 0; sleep 0.2; done; exit 1",
        ip.trim()
    );
    let o = env.run_sh("peer", &["--bypass"], &script);
    assert_eq!(stdout(&o), "hello from nsnet\n", "{}", stderr(&o));
    let (on, bypassed, normal) = env.counts("peer");
    assert!(
        on && bypassed == 0 && normal >= 1,
        "{:?}",
        (on, bypassed, normal)
    );

    // The container's loopback is its own: a world server on the same port is never reached.
    let (lo_port, lo_hits) = counting_server("127.0.0.1:0");
    let script = format!(
        "httpd -p 127.0.0.1:{lo_port} -h /www; for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://127.0.0.1:{lo_port}/index.html && exit 0; sleep 0.2; done; exit 1"
    );
    let o = env.run_sh("lo", &["--bypass"], &script);
    assert_eq!(stdout(&o), "hello from nsnet\n", "{}", stderr(&o));
    assert_eq!(env.counts("lo").1, 0);

    // Host loopback through the gateway stays sealed (the default instance runs with
    // --disable-host-loopback), and the DNS forwarder's address is never swapped.
    for (name, dst) in [("gw", "10.0.2.2"), ("dns", "10.0.2.3")] {
        let o = env.run_sh(
            name,
            &["--bypass"],
            &format!("wget -q -O - http://{dst}:{lo_port}/"),
        );
        assert!(!o.status.success(), "{dst}: {}", stdout(&o));
        let (_, bypassed, normal) = env.counts(name);
        assert!(bypassed == 0 && normal == 1, "{dst}: {bypassed} {normal}");
    }
    assert_eq!(
        lo_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the world's loopback was reached"
    );

    // An --internal network reaches nothing outside, bypass or not.
    let o = output(
        env.nsnet()
            .args(["network", "create", "--internal", "sealed"]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (out_port, out_hits) = counting_server(&format!("{WORLD}:0"));
    let o = env.run_sh(
        "internal",
        &["--bypass", "--network", "sealed"],
        &format!("wget -q -O - http://{WORLD}:{out_port}/"),
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    assert_eq!(env.counts("internal").1, 0);
    assert_eq!(out_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Who holds the world's TCP listener on `local` (state LISTEN), if anyone.
fn listener_holder(local: std::net::SocketAddr) -> Option<Seen> {
    holder(local, "0.0.0.0:0".parse().unwrap()).filter(|_| listening(local))
}

fn listening(local: std::net::SocketAddr) -> bool {
    [
        ("/proc/net/tcp", proc_addr(local)),
        ("/proc/net/tcp6", proc_addr6(local)),
    ]
    .iter()
    .any(|(table, l)| {
        let tcp = std::fs::read_to_string(table).unwrap_or_default();
        tcp.lines().skip(1).any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.get(1) == Some(&l.as_str()) && f.get(3) == Some(&"0A")
        })
    })
}

/// A free port of the world's 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One exchange with the app behind `addr`: its banner, then `ping` echoed back. Retried
/// while the app is not listening yet (the relay then closes the connection at once). Also
/// reports who holds the server end while the connection is open.
fn exchange(addr: std::net::SocketAddr, ping: &str) -> (String, Option<Seen>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = std::net::TcpStream::connect(addr).expect("connect to the published port");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        while !got.ends_with(b"\n") {
            match c.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        if got.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the app never answered on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let seen = holder(addr, c.local_addr().unwrap());
        c.write_all(ping.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c.read_to_end(&mut got).unwrap();
        return (String::from_utf8_lossy(&got).into_owned(), seen);
    }
}

#[test]
fn bypass_published_port_is_the_apps_own_listener_on_the_host() {
    let env = Env::new();
    let server = [
        "nc",
        "-l",
        "-p",
        "8080",
        "-e",
        "sh",
        "-c",
        "echo hello-from-app; cat",
    ];
    let run = |name: &str, bypass: bool, hp: u16| {
        let publish = format!("127.0.0.1:{hp}:8080/tcp");
        let mut args = vec!["run", "-d", "--name", name, "-p", &publish];
        if bypass {
            args.push("--bypass");
        }
        args.extend_from_slice(&["--rootfs", env.rootfs(), "--"]);
        args.extend_from_slice(&server);
        env.ok(&args);
    };
    let want = "hello-from-app\nping-4711\n";

    // Bypassed: once nc listens, the listener on the published address is nc's own socket.
    let hp = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{hp}").parse().unwrap();
    run("fast", true, hp);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let held = loop {
        match listener_holder(addr) {
            Some(s) if s.comm != "nsnet" => break s,
            s => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the listener on {addr} stayed {s:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(held.comm == "nc" && !held.holder_in_world, "{held:?}");
    let (got, seen) = exchange(addr, "ping-4711\n");
    assert_eq!(got, want);
    let seen = seen.expect("the server end's holder");
    assert!(
        seen.comm != "nsnet" && !seen.holder_in_world,
        "the accepted socket is the app's: {seen:?}"
    );
    let (on, bypassed, _) = env.counts("fast");
    assert!(on && bypassed == 1, "{:?}", env.counts("fast"));
    env.ok(&["rm", "-f", "fast"]);
    assert!(!listening(addr), "{addr} is still listening after rm");

    // The normal path: the port driver holds the listener and relays.
    let hp = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{hp}").parse().unwrap();
    run("plain", false, hp);
    // Before the exchange: once nc is done the container exits and its forward goes.
    let held = listener_holder(addr).expect("the relay's listener");
    assert!(held.comm == "nsnet" && held.holder_in_world, "{held:?}");
    let (got, seen) = exchange(addr, "ping-4711\n");
    assert_eq!(got, want);
    let seen = seen.expect("the server end's holder");
    assert!(
        seen.comm == "nsnet" && seen.holder_in_world,
        "relay: {seen:?}"
    );
    assert_eq!(env.counts("plain"), (false, 0, 0));
}

/// What the TFTP server saw of one transfer.
struct Transfer {
    /// The file asked for.
    file: String,
    /// Who held the client's socket while the transfer was on.
    holders: Vec<Seen>,
    /// The client's ACK (sent with another `sendto`) arrived.
    acked: bool,
}

/// A one-block TFTP server on the world's address: answers each client's first read request
/// with `payload` and waits for its ACK (a retransmitted request is not served twice).
fn tftp_server(payload: &'static [u8]) -> (u16, mpsc::Receiver<Transfer>) {
    let u = std::net::UdpSocket::bind(format!("{WORLD}:0")).unwrap();
    let port = u.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut served = Vec::new();
        let mut b = [0u8; 1024];
        loop {
            let Ok((n, from)) = u.recv_from(&mut b) else {
                return;
            };
            if n < 4 || b[1] != 1 || served.contains(&from) {
                continue;
            }
            served.push(from);
            let file = b[2..n].split(|c| *c == 0).next().unwrap_or_default();
            let file = String::from_utf8_lossy(file).into_owned();
            let holders = udp_holders(from.port());
            let mut data = vec![0, 3, 0, 1];
            data.extend_from_slice(payload);
            let _ = u.send_to(&data, from);
            u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let acked = loop {
                match u.recv_from(&mut b) {
                    Ok((4, f)) if f == from => break b[..4] == [0, 4, 0, 1],
                    Ok(_) => continue,
                    Err(_) => break false,
                }
            };
            u.set_read_timeout(None).unwrap();
            let _ = tx.send(Transfer {
                file,
                holders,
                acked,
            });
        }
    });
    (port, rx)
}

#[test]
fn bypass_unconnected_udp_runs_on_a_host_socket_and_gets_its_replies() {
    let env = Env::new();
    let payload: &[u8] = b"hello over tftp\n";
    let (port, seen) = tftp_server(payload);
    let script = |file: &str| format!("tftp -g -r {file} -l - {WORLD} {port}");
    let transfer = |file: &str| {
        let t = seen
            .recv_timeout(Duration::from_secs(10))
            .expect("a transfer");
        assert_eq!(t.file, file);
        t
    };

    // The normal path: the datagrams come from the instance's host socket.
    let o = env.run_sh("plain", &[], &script("plain"));
    assert_eq!(stdout(&o).as_bytes(), payload, "{}", stderr(&o));
    let t = transfer("plain");
    assert!(
        !t.holders.is_empty()
            && t.holders
                .iter()
                .all(|s| s.comm == "nsnet" && s.holder_in_world)
            && t.acked,
        "normal path: {:?}",
        t.holders
    );

    // Bypassed: tftp's own socket is a world socket; the reply and the ACK go through it.
    let o = env.run_sh("fast", &["--bypass"], &script("fast"));
    assert_eq!(stdout(&o).as_bytes(), payload, "{}", stderr(&o));
    let t = transfer("fast");
    assert!(
        t.holders
            .iter()
            .any(|s| s.comm == "tftp" && !s.holder_in_world),
        "bypass: {:?}",
        t.holders
    );
    assert!(t.acked, "the ACK, sent on the swapped socket, arrived");
    let (on, bypassed, _) = env.counts("fast");
    assert!(on && bypassed == 1, "{:?}", env.counts("fast"));
}

#[test]
fn bypass_needs_a_container_network_and_says_so() {
    let env = Env::new();
    for net in ["none", "host"] {
        let o = env.out(&[
            "run",
            "--bypass",
            "--network",
            net,
            "--rootfs",
            env.rootfs(),
            "--",
            "true",
        ]);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("--bypass needs a container network"), "{e}");
    }
    assert_eq!(stdout(&env.out(&["ps", "-aq"])), "");
}
