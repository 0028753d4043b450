//! Docker 28/29 against the `rootlesskit` personality, replayed from the daemon's side: the
//! API calls its port mapper makes, the commands it runs in the detached netns, and the
//! source addresses a published port keeps (fixtures/docker_flow.py stands in for dockerd,
//! fixtures/proxy_standin.py for docker-proxy).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DOCKER_FLOW: &str = include_str!("fixtures/docker_flow.py");
const PROXY: &str = include_str!("fixtures/proxy_standin.py");

/// `dockerd-rootless.sh`'s launch (builtin network and port driver) with the Docker flow in
/// the daemon's place; a client from 192.0.2.10 (not loopback) then uses the published TCP
/// port (through the docker-proxy stand-in, bound by the daemon inside the detached netns)
/// and the UDP port published to a container behind a bridge. Both must see 192.0.2.10.
#[test]
fn docker_port_flow_keeps_client_addresses_with_detach_netns() {
    let p = Personalities::new();
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("docker_flow.py");
    let proxy = dir.path().join("proxy_standin.py");
    std::fs::write(&flow, DOCKER_FLOW).unwrap();
    std::fs::write(&proxy, PROXY).unwrap();
    let (tcp_port, udp_port) = (19480u16, 19481u16);
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let job = p
        .command("rootlesskit")
        .arg(format!(
            "--state-dir={}",
            dir.path().join("state").display()
        ))
        .args([
            "--net=builtin",
            "--mtu=65520",
            "--disable-host-loopback",
            "--port-driver=builtin",
            "--copy-up=/etc",
            "--copy-up=/run",
            "--propagation=rslave",
            "--detach-netns",
            "python3",
        ])
        .arg(&flow)
        .arg(dir.path())
        .arg(tcp_port.to_string())
        .arg(udp_port.to_string())
        .arg(&proxy)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = job.id() as i32;
    let guard = KillOnDrop(pid);
    wait_for_file(&dir.path().join("ready"), Duration::from_secs(60));

    // TCP: the client's address reaches docker-proxy, which runs in the detached netns.
    let mut c = std::net::TcpStream::connect(("192.0.2.10", tcp_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"hello\n").unwrap();
    let mut got = String::new();
    BufReader::new(&c).read_line(&mut got).unwrap();
    let f: Vec<&str> = got.split_whitespace().collect();
    assert_eq!((f[0], f[1], f[2]), ("proxy", "saw", "192.0.2.10"), "{got}");
    assert_eq!(f[4], "hello", "{got}");
    let proxy_netns = f[3].to_string();

    // UDP to a container IP inside the child netns: the container sees the client.
    let u = std::net::UdpSocket::bind("192.0.2.10:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut reply = None;
    for _ in 0..5 {
        u.send_to(b"ping", ("192.0.2.10", udp_port)).unwrap();
        let mut buf = [0u8; 256];
        if let Ok((n, _)) = u.recv_from(&mut buf) {
            reply = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    assert_eq!(reply.as_deref(), Some("container saw 192.0.2.10"));

    std::fs::write(dir.path().join("done"), "").unwrap();
    let out = job.wait_with_output().unwrap();
    std::mem::forget(guard);
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert!(out.status.success(), "{log}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "info builtin childIP=127.0.0.1 apiVersion=1.1.2",
            "net.ipv4.ip_forward = 1",
            "daemon outside the detached netns: True",
            "bound on a thread in the detached netns: True",
            "other threads stay out: True",
            &format!(
                r#"POST tcp4 201 {{"id":1,"spec":{{"proto":"tcp4","parentIP":"0.0.0.0","parentPort":{tcp_port},"childPort":{tcp_port},"childIP":"127.0.0.1"}}}}"#
            ),
            &format!(
                r#"POST udp4 201 {{"id":2,"spec":{{"proto":"udp4","parentIP":"0.0.0.0","parentPort":{udp_port},"childPort":{udp_port},"childIP":"203.0.113.2"}}}}"#
            ),
            "DELETE 1 200 ''",
            "DELETE 2 200 ''",
            "GET /ports 200 null",
        ],
        "{log}"
    );
    // docker-proxy ran in the detached netns, not the host's.
    assert_ne!(proxy_netns, own_ns_inode(), "{got}");
    // Unmapped: nothing listens on the host any more.
    assert!(std::net::TcpStream::connect(("192.0.2.10", tcp_port)).is_err());
}

fn own_ns_inode() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .unwrap()
        .ino()
        .to_string()
}

/// Ends the launcher (by its PID) if the test fails before it exits on its own.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGTERM);
    }
}
