//! The conformance suite every port driver runs (RootlessKit's `pkg/port/testsuite`): TCP and
//! UDP over IPv4 and IPv6, add, list and remove, conflicts and ids, and where a published port
//! listens (Go's `net.Listen` semantics for the builtin driver, IPv4 host forwards for
//! slirp4netns).
//!
//! The builtin driver runs it as a unit test on loopback, its child side in the test's own
//! netns ([`crate::HostSockets`]); the slirp4netns and pesto drivers run it from the
//! integration tests, against a real slirp4netns and against nsnet's pasta. The suite needs echo servers on the child side ([`Child`]) and
//! listens on the parent side on free ports of the netns it runs in. Clients connect only to
//! loopback. A failed check panics with the case it was.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{PortSpec, Ports};

/// The echo servers on the child side: TCP and UDP echo on the address the driver dials by
/// default (127.0.0.1 for builtin, the child IP for slirp4netns), and, for a driver that
/// forwards IPv6, on the child's `::1`.
pub struct Child {
    pub tcp: u16,
    pub udp: u16,
    /// (TCP, UDP) echo ports on `::1` in the child.
    pub v6: Option<(u16, u16)>,
}

/// A port free for TCP and UDP on both families in the caller's netns (a dual-stack bind on
/// `[::]` holds it for both while it is checked).
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("[::]:0").expect("bind [::]:0");
        let port = l.local_addr().expect("local addr").port();
        if std::net::UdpSocket::bind(("::", port)).is_ok() {
            return port;
        }
    }
}

async fn tcp_reaches(addr: SocketAddr) -> bool {
    let payload = format!("tcp to {addr}").into_bytes();
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(&payload).await?;
        s.shutdown().await?;
        let mut back = Vec::new();
        s.read_to_end(&mut back).await?;
        std::io::Result::Ok(back)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Ok(back)) if back == payload
    )
}

/// A connected socket sees ECONNREFUSED at once where nothing listens; a lost datagram is
/// sent again.
async fn udp_reaches(addr: SocketAddr) -> bool {
    let local = if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = tokio::net::UdpSocket::bind(local).await.expect("bind UDP");
    s.connect(addr).await.expect("connect UDP");
    let payload = format!("udp to {addr}").into_bytes();
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        if s.send(&payload).await.is_err() {
            return false;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.recv(&mut buf)).await {
            Ok(Ok(n)) => return buf[..n] == payload[..],
            Ok(Err(_)) => return false,
            Err(_) => continue,
        }
    }
    false
}

async fn reaches(proto: &str, addr: SocketAddr) -> bool {
    if proto.starts_with("udp") {
        udp_reaches(addr).await
    } else {
        tcp_reaches(addr).await
    }
}

/// (reached from 127.0.0.1, reached from ::1) for a published parent port.
async fn reached(proto: &str, port: u16) -> (bool, bool) {
    (
        reaches(proto, SocketAddr::from(([127, 0, 0, 1], port))).await,
        reaches(proto, SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await,
    )
}

fn spec(proto: &str, parent_ip: &str, parent_port: u16, child_ip: &str, child: u16) -> PortSpec {
    PortSpec {
        proto: proto.into(),
        parent_ip: parent_ip.into(),
        parent_port: parent_port.into(),
        child_port: child.into(),
        child_ip: child_ip.into(),
    }
}

/// Whether the driver forwards IPv6 (it lists a `6` proto in `/v1/info`).
fn forwards_v6(ports: &Ports) -> bool {
    ports.protos().iter().any(|p| p.ends_with('6'))
}

/// Runs every case against `ports`.
pub async fn run(ports: &Ports, child: &Child) {
    round_trips(ports, child).await;
    conflicts_and_ids(ports, child).await;
    listeners(ports, child).await;
}

/// Each transport and family: add, traffic, list, remove, and the port is closed after.
pub async fn round_trips(ports: &Ports, child: &Child) {
    let mut cases = vec![
        spec("tcp", "127.0.0.1", free_port(), "", child.tcp),
        spec("udp", "127.0.0.1", free_port(), "", child.udp),
    ];
    if let Some((tcp6, udp6)) = child.v6 {
        cases.push(spec("tcp6", "::1", free_port(), "::1", tcp6));
        cases.push(spec("udp6", "::1", free_port(), "::1", udp6));
    }
    for s in cases {
        let what = format!("{} driver, {s:?}", ports.driver());
        let st = ports
            .add(s.clone())
            .await
            .unwrap_or_else(|e| panic!("{what}: add: {e}"));
        assert_eq!(st.spec, s, "{what}: the status keeps the spec");
        assert!(ports.list().contains(&st), "{what}: listed");
        let to = SocketAddr::new(s.parent_ip.parse().unwrap(), s.parent_port as u16);
        assert!(reaches(&s.proto, to).await, "{what}: traffic through {to}");
        ports
            .remove(st.id)
            .await
            .unwrap_or_else(|e| panic!("{what}: remove: {e}"));
        assert!(
            !ports.list().iter().any(|p| p.id == st.id),
            "{what}: unlisted"
        );
        assert!(!reaches(&s.proto, to).await, "{what}: closed after removal");
    }
}

/// The same proto and parent address twice is RootlessKit's conflict; another proto on the
/// same port is not; ids are not reused and an unknown id is an error.
pub async fn conflicts_and_ids(ports: &Ports, child: &Child) {
    let d = ports.driver();
    let port = free_port();
    let tcp = spec("tcp", "127.0.0.1", port, "", child.tcp);
    let a = ports.add(tcp.clone()).await.expect("add tcp");
    let e = ports
        .add(tcp.clone())
        .await
        .expect_err("the same spec twice");
    assert_eq!(
        e.to_string(),
        format!("conflict with ID {}", a.id),
        "{d} driver"
    );
    let other_child = PortSpec {
        child_port: child.udp.into(),
        ..tcp.clone()
    };
    let e = ports.add(other_child).await.expect_err("same listener");
    assert_eq!(
        e.to_string(),
        format!("conflict with ID {}", a.id),
        "{d} driver"
    );
    let b = ports
        .add(spec("udp", "127.0.0.1", port, "", child.udp))
        .await
        .expect("udp on the tcp port is another listener");
    assert_ne!(a.id, b.id, "{d} driver");
    ports.remove(a.id).await.expect("remove tcp");
    assert!(
        ports.remove(a.id).await.is_err(),
        "{d} driver: removed twice"
    );
    let c = ports.add(tcp).await.expect("re-add after removal");
    assert!(
        c.id != a.id && c.id != b.id,
        "{d} driver: ids are not reused"
    );
    for id in [b.id, c.id] {
        ports.remove(id).await.expect("remove");
    }
}

/// Where each form listens: the builtin driver as Go's `net.Listen`/`ListenPacket` (the
/// wildcard with `tcp`/`udp` is dual-stack however it is spelt; `tcp4` IPv4 only; `tcp6` IPv6
/// only; `tcp4` and `tcp6` on one port do not conflict); slirp4netns and pesto (without
/// `--ipv6`) on IPv4 only, refusing the `6` protos.
pub async fn listeners(ports: &Ports, child: &Child) {
    let d = ports.driver();
    let v6 = forwards_v6(ports);
    for t in ["tcp", "udp"] {
        let c = if t == "tcp" { child.tcp } else { child.udp };
        let forms: Vec<(&str, String, (bool, bool))> = if v6 {
            vec![
                ("", t.to_string(), (true, true)),
                ("0.0.0.0", t.to_string(), (true, true)),
                ("::", t.to_string(), (true, true)),
                ("0.0.0.0", format!("{t}4"), (true, false)),
                ("::", format!("{t}4"), (true, false)),
                ("::", format!("{t}6"), (false, true)),
                ("127.0.0.1", t.to_string(), (true, false)),
            ]
        } else {
            vec![
                ("", t.to_string(), (true, false)),
                ("0.0.0.0", t.to_string(), (true, false)),
                ("0.0.0.0", format!("{t}4"), (true, false)),
            ]
        };
        for (ip, proto, want) in forms {
            let s = spec(&proto, ip, free_port(), "", c);
            let st = ports
                .add(s.clone())
                .await
                .unwrap_or_else(|e| panic!("{d} driver, {s:?}: add: {e}"));
            assert_eq!(
                reached(t, s.parent_port as u16).await,
                want,
                "{d} driver, {s:?}: (127.0.0.1, ::1) reached"
            );
            ports.remove(st.id).await.expect("remove");
        }
        let port = free_port();
        let four = spec(&format!("{t}4"), "0.0.0.0", port, "", c);
        let six = spec(&format!("{t}6"), "::", port, "", c);
        if v6 {
            let a = ports.add(four).await.expect("the IPv4 half");
            let b = ports
                .add(six)
                .await
                .expect("the IPv6 half on the same port");
            assert_eq!(
                reached(t, port).await,
                (true, true),
                "{d} driver: {t}4 + {t}6"
            );
            ports.remove(a.id).await.expect("remove");
            ports.remove(b.id).await.expect("remove");
        } else {
            let e = ports.add(six).await.expect_err("no IPv6");
            // Each driver's own words (RootlessKit's): slirp4netns has no IPv6 at all, pesto
            // has it only with --ipv6.
            let want = match ports {
                Ports::Pesto(_) => format!(
                    "IPv6 port forwarding (proto \"{t}6\", parent IP \"::\") requires --ipv6"
                ),
                _ => format!("unsupported protocol \"{t}6\""),
            };
            assert_eq!(e.to_string(), want, "{d}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{HostSockets, PortManager};

    async fn echo_servers(ip: &str) -> (u16, u16) {
        let tcp = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        let udp = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&buf[..n], from).await;
            }
        });
        (tcp_port, udp_port)
    }

    /// The builtin driver with its child side in this netns: every case, on loopback.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_builtin_driver_passes_the_suite() {
        let (tcp, udp) = echo_servers("127.0.0.1").await;
        let v6 = echo_servers("::1").await;
        let pm = PortManager::new(Arc::new(HostSockets), tokio::runtime::Handle::current());
        let ports = Ports::Builtin(pm);
        run(
            &ports,
            &Child {
                tcp,
                udp,
                v6: Some(v6),
            },
        )
        .await;
        assert!(
            ports.list().is_empty(),
            "the suite leaves nothing published"
        );
    }
}
