//! Published ports (builtin port driver), the REST API on api.sock and the `rootlessctl`
//! personality, with real listeners, real namespaces and servers running inside the child's
//! network namespace. Every address is loopback, on the world's side or the child's.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const SERVER: &str = include_str!("fixtures/echo_server.py");

/// A running instance with the echo servers inside its child netns.
fn start(extra: &[&str]) -> Instance {
    let mut run = Command::new(nsnet_bin());
    run.arg("run");
    start_with(run, extra)
}

/// [`start`] through any launcher (the rootlesskit personality).
fn start_with(launcher: Command, extra: &[&str]) -> Instance {
    let mut b = Instance::launcher(launcher);
    // The directory must be reachable by the namespace's root, which is the same user.
    let script = b.file("server.py", SERVER);
    // slirp4netns forwards to the child's uplink address, not to its loopback.
    let also = if extra.contains(&"--port-driver=slirp4netns") {
        "10.0.2.100"
    } else {
        ""
    };
    let inner = if extra.contains(&"--detach-netns") {
        format!(
            "exec nsenter --net=\"$ROOTLESSKIT_STATE_DIR/netns\" python3 {} \"$READY\" {also}",
            script.display()
        )
    } else {
        format!("exec python3 {} \"$READY\" {also}", script.display())
    };
    // Defaults, unless the test names its own drivers.
    if !extra.iter().any(|a| a.starts_with("--net=")) {
        b = b.args(["--net=none"]);
    }
    if !extra.iter().any(|a| a.starts_with("--port-driver=")) {
        b = b.args(["--port-driver=builtin"]);
    }
    b.args(extra).script(&inner).start()
}

fn echo_tcp(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(payload)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    s.read_to_end(&mut back)?;
    Ok(back)
}

fn echo_udp(bind: &str, to: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let s = UdpSocket::bind(bind)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.send_to(payload, to)?;
    let mut buf = vec![0u8; 70000];
    let (n, from) = s.recv_from(&mut buf)?;
    assert_eq!(from, to, "the reply comes from the published address");
    buf.truncate(n);
    Ok(buf)
}

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

#[test]
fn tcp_and_udp_round_trips_over_v4_and_v6() {
    let inst = start(&[
        "-p",
        "127.0.0.1:18080:80/tcp",
        "-p",
        "[::1]:18086:80/tcp",
        "-p",
        "18081:81/udp",
        "-p",
        "[::1]:18087:[::1]:81/udp6",
    ]);
    let data = pattern(3 << 20, 1);
    assert!(echo_tcp("127.0.0.1:18080".parse().unwrap(), &data).unwrap() == data);
    assert!(echo_tcp("[::1]:18086".parse().unwrap(), &data[..100_000]).unwrap() == data[..100_000]);
    assert_eq!(
        echo_udp("127.0.0.1:0", "127.0.0.1:18081".parse().unwrap(), b"v4").unwrap(),
        b"v4"
    );
    assert_eq!(
        echo_udp("[::1]:0", "[::1]:18081".parse().unwrap(), b"dual stack").unwrap(),
        b"dual stack"
    );
    let big = pattern(65507, 2);
    assert!(echo_udp("[::1]:0", "[::1]:18087".parse().unwrap(), &big).unwrap() == big);
    drop(inst);
}

#[test]
fn tcp_tcp4_and_tcp6_listen_where_rootlesskit_does() {
    let _inst = start(&[
        "-p",
        "18180:80/tcp",
        "-p",
        "18184:80/tcp4",
        "-p",
        "18186:80/tcp6",
    ]);
    let ok = |a: &str| echo_tcp(a.parse().unwrap(), b"x").is_ok();
    assert!(
        ok("127.0.0.1:18180") && ok("[::1]:18180"),
        "tcp is dual-stack"
    );
    assert!(
        ok("127.0.0.1:18184") && !ok("[::1]:18184"),
        "tcp4 is IPv4 only"
    );
    assert!(
        ok("[::1]:18186") && !ok("127.0.0.1:18186"),
        "tcp6 is IPv6 only"
    );
}

/// Go's listener semantics, which RootlessKit's builtin driver inherits from `net.Listen` and
/// `net.ListenPacket`: each `-p` form (TCP; `PORT` is the parent port) and whether a client
/// from the world's 127.0.0.1 and from its ::1 gets through. The wildcard with `tcp` is
/// dual-stack whichever family spells it; `tcp4` is IPv4 only (and takes `[::]` as
/// `0.0.0.0`); `tcp6` is IPv6 only; a specific address is that address only.
const GO_LISTEN: [(&str, bool, bool); 15] = [
    ("PORT:80/tcp", true, true),
    ("0.0.0.0:PORT:80/tcp", true, true),
    ("[::]:PORT:80/tcp", true, true),
    ("0.0.0.0:PORT:80/tcp4", true, false),
    ("[::]:PORT:80/tcp4", true, false),
    ("PORT:80/tcp6", false, true),
    ("[::]:PORT:80/tcp6", false, true),
    ("[::]:PORT:[::1]:80/tcp6", false, true),
    ("[::]:PORT:[::1]:80/tcp", true, true),
    ("[::]:PORT:[127.0.0.1]:80/tcp6", false, true),
    ("[::]:PORT:[127.0.0.1]:80/tcp", true, true),
    ("0.0.0.0:PORT:[::1]:80/tcp4", true, false),
    ("0.0.0.0:PORT:[::1]:80/tcp", true, true),
    ("127.0.0.1:PORT:80/tcp", true, false),
    ("[::1]:PORT:80/tcp", false, true),
];

/// The same form for UDP (the echo server's UDP port is 81).
fn as_udp(form: &str) -> String {
    form.replace(":80/tcp", ":81/udp")
}

fn tcp_reaches(addr: SocketAddr) -> bool {
    let payload = addr.to_string().into_bytes();
    matches!(echo_tcp(addr, &payload), Ok(b) if b == payload)
}

/// A connected UDP socket gets ECONNREFUSED at once where nothing listens, so a refusal needs
/// no time-out; a datagram that is lost is sent again.
fn udp_reaches(addr: SocketAddr) -> bool {
    let s = UdpSocket::bind(if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .unwrap();
    s.connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let payload = addr.to_string().into_bytes();
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        if s.send(&payload).is_err() {
            return false;
        }
        match s.recv(&mut buf) {
            Ok(n) => return buf[..n] == payload[..],
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return false,
            Err(_) => continue,
        }
    }
    false
}

/// Every `GO_LISTEN` form, for TCP from `base` and for UDP from `base + 100`, one port each,
/// plus `tcp4` and `tcp6` (and `udp4` and `udp6`) on one shared port: (spec, port, from v4,
/// from v6).
fn go_listen_specs(base: u16) -> Vec<(String, u16, bool, bool)> {
    let mut specs = Vec::new();
    for (i, (form, v4, v6)) in GO_LISTEN.iter().enumerate() {
        let port = base + i as u16;
        specs.push((form.replace("PORT", &port.to_string()), port, *v4, *v6));
        let port = port + 100;
        specs.push((
            as_udp(form).replace("PORT", &port.to_string()),
            port,
            *v4,
            *v6,
        ));
    }
    for (shared, t) in [(base + 50, "tcp"), (base + 150, "udp")] {
        let c = if t == "tcp" { 80 } else { 81 };
        specs.push((format!("0.0.0.0:{shared}:{c}/{t}4"), shared, true, true));
        specs.push((format!("[::]:{shared}:{c}/{t}6"), shared, true, true));
    }
    specs
}

/// Checks each published spec from 127.0.0.1 and ::1; every failure is listed at once.
fn check_go_listen(specs: &[(String, u16, bool, bool)]) {
    let mut wrong = Vec::new();
    for (spec, port, v4, v6) in specs {
        let reaches = if spec.contains("/udp") {
            udp_reaches
        } else {
            tcp_reaches
        };
        let got = (
            reaches(SocketAddr::from(([127, 0, 0, 1], *port))),
            reaches(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, *port))),
        );
        if got != (*v4, *v6) {
            wrong.push(format!(
                "{spec}: (127.0.0.1, ::1) reached {got:?}, expected {:?}",
                (*v4, *v6)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn nsnet_run_p_listens_as_go_does_for_every_form() {
    let specs = go_listen_specs(20000);
    let mut args: Vec<&str> = Vec::new();
    for (spec, ..) in &specs {
        args.extend(["-p", spec]);
    }
    let _inst = start(&args);
    check_go_listen(&specs);
}

#[test]
fn ports_added_at_run_time_listen_as_go_does_for_every_form() {
    let inst = start(&[]);
    let specs = go_listen_specs(20400);
    let p = Personalities::new();
    let o = output(
        p.command("rootlessctl")
            .arg(format!("--socket={}", inst.api_socket().display()))
            .arg("add-ports")
            .args(specs.iter().map(|s| s.0.as_str())),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), specs.len());
    check_go_listen(&specs);
}

#[test]
fn ports_added_and_removed_at_run_time_take_effect_at_once() {
    let inst = start(&[]);
    let api = inst.api_socket();
    let (st, _, body) = unix_http(
        &api,
        "POST",
        "/v1/ports",
        r#"{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18280,"childPort":80}"#,
    );
    assert_eq!(st, "HTTP/1.1 201 Created");
    assert_eq!(
        body,
        r#"{"id":1,"spec":{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18280,"childPort":80}}"#
    );
    assert_eq!(
        echo_tcp("127.0.0.1:18280".parse().unwrap(), b"hi").unwrap(),
        b"hi"
    );
    let (st, _, body) = unix_http(&api, "DELETE", "/v1/ports/1", "");
    assert_eq!((st.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    let refused = TcpStream::connect("127.0.0.1:18280").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let (_, _, body) = unix_http(
        &api,
        "POST",
        "/v1/ports",
        r#"{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18280,"childPort":80}"#,
    );
    assert!(
        body.starts_with(r#"{"id":2,"#),
        "ids are never reused: {body}"
    );
}

/// `n` connections opened at once to `addr`, each sending 64 KiB and more of its own pattern
/// and reading the echo back: how many lost or altered data (60 s each at most).
fn burst(addr: &'static str, n: u32) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tasks = Vec::new();
        for i in 0..n {
            tasks.push(tokio::spawn(async move {
                let data = pattern(64 * 1024 + i as usize, i);
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                let (mut r, mut w) = s.split();
                let send = async {
                    w.write_all(&data).await?;
                    w.shutdown().await
                };
                let mut back = Vec::new();
                let (a, b) = tokio::join!(send, r.read_to_end(&mut back));
                a?;
                b?;
                Ok::<bool, std::io::Error>(back == data)
            }));
        }
        let mut bad = 0;
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(60), t).await {
                Ok(Ok(Ok(true))) => {}
                _ => bad += 1,
            }
        }
        bad
    })
}

#[test]
fn a_thousand_concurrent_connections_lose_nothing() {
    let _inst = start(&["-p", "127.0.0.1:18380:80/tcp"]);
    assert_eq!(
        burst("127.0.0.1:18380", 1000),
        0,
        "connections that lost or altered data"
    );
}

/// With the launcher's descriptors limited to 2,048 (a relayed connection holds six), a
/// burst of 1,000 connections waits for places in the relay instead of being accepted and
/// reset: before the connection budget, connections failed here with EMFILE.
#[test]
fn a_burst_beyond_the_descriptor_limit_waits_and_loses_nothing() {
    let mut limited = Command::new("prlimit");
    limited
        .args(["--nofile=2048:2048", "--"])
        .arg(nsnet_bin())
        .arg("run");
    let _inst = start_with(limited, &["-p", "127.0.0.1:18381:80/tcp"]);
    assert_eq!(
        burst("127.0.0.1:18381", 1000),
        0,
        "connections that lost or altered data"
    );
}

#[test]
fn api_contract_byte_for_byte() {
    let inst = start(&["-p", "127.0.0.1:18480:80/tcp"]);
    let api = inst.api_socket();
    let (st, ct, body) = unix_http(&api, "GET", "/v1/info", "");
    assert_eq!(
        (st.as_str(), ct.as_str()),
        ("HTTP/1.1 200 OK", "application/json")
    );
    let child_pid = std::fs::read_to_string(inst.state_dir().join("child_pid")).unwrap();
    assert_eq!(
        body,
        format!(
            r#"{{"apiVersion":"1.1.2","version":"3.2.0+nsnet.{}","stateDir":"{}","childPID":{child_pid},"networkDriver":{{"driver":"none"}},"portDriver":{{"driver":"builtin","protos":["tcp","tcp4","tcp6","udp","udp4","udp6"],"extra":{{"sourceIPTransparentBackend":"netlink"}}}}}}"#,
            env!("CARGO_PKG_VERSION"),
            inst.state_dir().display()
        )
    );
    let (st, _, body) = unix_http(&api, "GET", "/v1/ports", "");
    assert_eq!(st, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        r#"[{"id":1,"spec":{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18480,"childPort":80}}]"#
    );
    let bad = |body: &str| {
        let (st, ct, b) = unix_http(&api, "POST", "/v1/ports", body);
        assert_eq!(st, "HTTP/1.1 400 Bad Request", "{body}");
        assert_eq!(ct, "text/plain; charset=utf-8");
        b
    };
    assert_eq!(
        bad(r#"{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18480,"childPort":81}"#),
        "{\"message\":\"conflict with ID 1\"}\n"
    );
    assert_eq!(
        bad(r#"{"proto":"bogus","parentIP":"127.0.0.1","parentPort":18481,"childPort":81}"#),
        "{\"message\":\"unknown proto: \\\"bogus\\\"\"}\n"
    );
    assert!(bad("{bad").starts_with("{\"message\":"));
    assert!(
        bad(r#"{"proto":"tcp","parentPort":70000,"childPort":1}"#).contains("invalid ParentPort")
    );
    let (st, _, body) = unix_http(&api, "DELETE", "/v1/ports/99", "");
    assert_eq!(st, "HTTP/1.1 400 Bad Request");
    assert_eq!(body, "{\"message\":\"unknown id: 99\"}\n");
    let (st, _, body) = unix_http(&api, "DELETE", "/v1/ports/abc", "");
    assert_eq!(st, "HTTP/1.1 400 Bad Request");
    assert!(body.starts_with("{\"message\":\"bad id abc: "), "{body}");
    let (st, _, body) = unix_http(&api, "GET", "/v1/nothing", "");
    assert_eq!(
        (st.as_str(), body.as_str()),
        ("HTTP/1.1 404 Not Found", "404 page not found\n")
    );
    unix_http(&api, "DELETE", "/v1/ports/1", "");
    let (_, _, body) = unix_http(&api, "GET", "/v1/ports", "");
    assert_eq!(
        body, "null",
        "an empty list is null, as Go marshals a nil slice"
    );
    // The instance still serves after all that.
    let (st, _, _) = unix_http(&api, "GET", "/v1/info", "");
    assert_eq!(st, "HTTP/1.1 200 OK");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&api).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "api.sock is owner-only");
}

#[test]
fn bad_port_requests_are_refused_and_the_instance_keeps_serving() {
    let inst = start(&[]);
    let api = inst.api_socket();
    let add = |spec: &str| {
        let body = format!(
            r#"{{"proto":"tcp","parentIP":"127.0.0.1","parentPort":{spec},"childPort":80}}"#
        );
        unix_http(&api, "POST", "/v1/ports", &body)
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:18580").unwrap();
    let (st, _, body) = add("18580");
    assert_eq!(st, "HTTP/1.1 400 Bad Request");
    assert_eq!(
        body,
        "{\"message\":\"listen tcp 127.0.0.1:18580: bind: address already in use\"}\n"
    );
    drop(busy);
    let (st, _, body) = add("80");
    if is_root() {
        assert_eq!(st, "HTTP/1.1 201 Created", "root may bind port 80: {body}");
    } else {
        assert_eq!(st, "HTTP/1.1 400 Bad Request");
        assert!(
            body.contains("cannot expose privileged port 80, you can add 'net.ipv4.ip_unprivileged_port_start=80'"),
            "{body}"
        );
    }
    let (st, _, _) = add("18581");
    assert_eq!(st, "HTTP/1.1 201 Created");
    assert_eq!(
        echo_tcp("127.0.0.1:18581".parse().unwrap(), b"ok").unwrap(),
        b"ok"
    );
}

#[test]
fn a_refused_target_resets_the_client() {
    // Nothing listens on port 9 inside the child.
    let _inst = start(&["-p", "127.0.0.1:18680:9/tcp"]);
    // The driver accepts, finds the target refused and resets. On a loaded machine the
    // reset can reach the client before its connect() returns, and the kernel then reports
    // it from connect() itself: both are the reset this test asks for.
    let r = TcpStream::connect("127.0.0.1:18680").and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 1];
        s.read(&mut buf)
    });
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "want a reset, got {r:?}"
    );
}

#[test]
fn publishing_into_a_detached_netns() {
    let _inst = start(&[
        "--detach-netns",
        "-p",
        "127.0.0.1:18780:80/tcp",
        "-p",
        "127.0.0.1:18781:81/udp",
    ]);
    assert_eq!(
        echo_tcp("127.0.0.1:18780".parse().unwrap(), b"detached").unwrap(),
        b"detached"
    );
    assert_eq!(
        echo_udp("127.0.0.1:0", "127.0.0.1:18781".parse().unwrap(), b"udp").unwrap(),
        b"udp"
    );
}

/// The builtin port driver over each network driver that gives the child a netns of its
/// own, attached and detached.
#[test]
fn builtin_ports_work_with_every_network_driver() {
    for (i, net) in ["--net=none", "--net=builtin", "--net=slirp4netns"]
        .into_iter()
        .enumerate()
    {
        for (j, detach) in [false, true].into_iter().enumerate() {
            let port = 19600 + 10 * i as u16 + 2 * j as u16;
            let tcp = format!("127.0.0.1:{port}:80/tcp");
            let udp = format!("127.0.0.1:{}:81/udp", port + 1);
            let mut args = vec![net, "-p", &tcp, "-p", &udp];
            if detach {
                args.push("--detach-netns");
            }
            let _inst = start(&args);
            let to = SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(
                echo_tcp(to, net.as_bytes()).unwrap(),
                net.as_bytes(),
                "{args:?}"
            );
            let to = SocketAddr::from(([127, 0, 0, 1], port + 1));
            assert_eq!(
                echo_udp("127.0.0.1:0", to, b"udp").unwrap(),
                b"udp",
                "{args:?}"
            );
        }
    }
}

/// RootlessKit's `--port-driver=slirp4netns`: ports are slirp4netns host forwards made over
/// its API socket, to the child's address 10.0.2.100; the API and rootlessctl see the same
/// contract as with the builtin driver, with slirp4netns's ids and protocols.
#[test]
fn slirp4netns_port_driver_forwards_through_slirp4netns() {
    let inst = start(&[
        "--net=slirp4netns",
        "--port-driver=slirp4netns",
        "-p",
        "127.0.0.1:18980:80/tcp",
        "-p",
        "127.0.0.1:18981:81/udp",
    ]);
    assert_eq!(
        echo_tcp("127.0.0.1:18980".parse().unwrap(), b"via slirp4netns").unwrap(),
        b"via slirp4netns"
    );
    assert_eq!(
        echo_udp("127.0.0.1:0", "127.0.0.1:18981".parse().unwrap(), b"udp").unwrap(),
        b"udp"
    );
    let (_, _, info) = unix_http(&inst.api_socket(), "GET", "/v1/info", "");
    assert!(
        info.contains(
            r#""portDriver":{"driver":"slirp4netns","protos":["tcp","tcp4","udp","udp4"],"disallowLoopbackChildIP":true}"#
        ),
        "{info}"
    );
    let (_, _, list) = unix_http(&inst.api_socket(), "GET", "/v1/ports", "");
    assert!(
        list.contains(r#""parentPort":18980"#) && list.contains(r#""parentPort":18981"#),
        "{list}"
    );
    // Added at run time, then removed: the forward comes and goes with it.
    let (st, _, body) = unix_http(
        &inst.api_socket(),
        "POST",
        "/v1/ports",
        r#"{"proto":"tcp","parentIP":"127.0.0.1","parentPort":18982,"childPort":80}"#,
    );
    assert_eq!(st, "HTTP/1.1 201 Created", "{body}");
    assert_eq!(
        echo_tcp("127.0.0.1:18982".parse().unwrap(), b"late").unwrap(),
        b"late"
    );
    let id: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (st, _, _) = unix_http(
        &inst.api_socket(),
        "DELETE",
        &format!("/v1/ports/{}", id["id"]),
        "",
    );
    assert_eq!(st, "HTTP/1.1 200 OK");
    assert!(TcpStream::connect("127.0.0.1:18982").is_err());
    // IPv6 is not slirp4netns's (RootlessKit's message), and the instance keeps serving.
    let (st, _, body) = unix_http(
        &inst.api_socket(),
        "POST",
        "/v1/ports",
        r#"{"proto":"tcp6","parentIP":"::1","parentPort":18983,"childPort":80}"#,
    );
    assert_eq!(
        (st.as_str(), body.as_str()),
        (
            "HTTP/1.1 400 Bad Request",
            "{\"message\":\"unsupported protocol \\\"tcp6\\\"\"}\n"
        )
    );
    assert_eq!(
        echo_tcp("127.0.0.1:18980".parse().unwrap(), b"still").unwrap(),
        b"still"
    );
}

/// nsnet-port's conformance suite against the slirp4netns port driver: the driver is made here,
/// in the test, over the API socket of an instance's slirp4netns (Debian's, then nsnet linked
/// as `slirp4netns`), and forwards to the instance's echo servers on 10.0.2.100.
#[test]
fn the_slirp4netns_port_driver_passes_the_conformance_suite() {
    use std::os::unix::fs::PermissionsExt;
    let ours = tempfile::tempdir().unwrap();
    std::fs::set_permissions(ours.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = ours.path().join("slirp4netns");
    std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
    let ours = format!("--slirp4netns-binary={}", link.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for binary in [&[][..], &[ours.as_str()][..]] {
        let mut args = vec!["--net=slirp4netns", "--port-driver=slirp4netns"];
        args.extend(binary);
        let inst = start(&args);
        let driver =
            nsnet_port::Ports::Slirp4netns(nsnet_port::slirp4netns::Slirp4netnsPorts::new(
                inst.state_dir().join(".s4nn.sock"),
                std::net::Ipv4Addr::new(10, 0, 2, 100),
            ));
        let child = nsnet_port::testsuite::Child {
            tcp: 80,
            udp: 81,
            v6: None,
        };
        rt.block_on(nsnet_port::testsuite::run(&driver, &child));
        assert!(
            driver.list().is_empty(),
            "{binary:?}: the suite leaves nothing"
        );
    }
}

#[test]
fn debian_rootlessctl_and_ours_speak_to_nsnet_alike() {
    let inst = start(&["-p", "127.0.0.1:18880:80/tcp"]);
    let p = Personalities::new();
    let sock = inst.api_socket();
    let debian = Path::new("/usr/bin/rootlessctl");
    assert!(
        debian.exists(),
        "Debian's rootlessctl (package rootlesskit) is required; scripts/test installs it"
    );
    let run = |bin: &Path, args: &[&str]| {
        let o = output(
            std::process::Command::new(bin)
                .arg(format!("--socket={}", sock.display()))
                .args(args),
        );
        (o.status.code(), stdout(&o), stderr(&o))
    };
    let ours = p.dir.path().join("rootlessctl");
    let table = run(debian, &["list-ports"]);
    assert_eq!(table, run(&ours, &["list-ports"]));
    assert_eq!(
        table.1,
        "ID    PROTO    PARENTIP     PARENTPORT    CHILDIP    CHILDPORT    \n\
         1     tcp      127.0.0.1    18880                    80           \n"
    );
    let added = run(
        debian,
        &[
            "add-ports",
            "127.0.0.1:18881:80/tcp",
            "127.0.0.1:18882:81/udp",
        ],
    );
    assert_eq!(added, (Some(0), "2\n3\n".into(), String::new()));
    assert_eq!(
        echo_tcp("127.0.0.1:18881".parse().unwrap(), b"a").unwrap(),
        b"a"
    );
    assert_eq!(
        run(debian, &["list-ports", "--json"]),
        run(&ours, &["list-ports", "--json"])
    );
    assert_eq!(run(debian, &["info"]), run(&ours, &["info"]));
    // Debian's rootlessctl is 1.1.0: it decodes /v1/info into its own struct and prints that,
    // so the field API 1.1.2 added (portDriver.extra, which ours, as RootlessKit 3.2's, prints)
    // is the only difference.
    let theirs: serde_json::Value =
        serde_json::from_str(&run(debian, &["info", "--json"]).1).unwrap();
    let mut mine: serde_json::Value =
        serde_json::from_str(&run(&ours, &["info", "--json"]).1).unwrap();
    let extra = mine["portDriver"]
        .as_object_mut()
        .unwrap()
        .remove("extra")
        .unwrap();
    assert_eq!(extra["sourceIPTransparentBackend"], "netlink");
    assert_eq!(theirs, mine);
    assert_eq!(
        run(debian, &["remove-ports", "2"]),
        (Some(0), "2\n".into(), String::new())
    );
    assert_eq!(
        run(&ours, &["remove-ports", "3"]),
        (Some(0), "3\n".into(), String::new())
    );
    let e = run(debian, &["remove-ports", "99"]);
    assert_eq!(e, run(&ours, &["remove-ports", "99"]));
    assert_eq!((e.0, e.2.as_str()), (Some(1), "error: unknown id: 99\n"));
}

#[test]
fn rootlesskit_personality_publishes_with_p() {
    let p = Personalities::new();
    let inst = start_with(
        Command::new(p.dir.path().join("rootlesskit")),
        &["-p", "127.0.0.1:18980:80/tcp"],
    );
    assert_eq!(
        echo_tcp("127.0.0.1:18980".parse().unwrap(), b"rk").unwrap(),
        b"rk"
    );
    let o = output(std::process::Command::new(nsnet_bin()).args([
        "port",
        "ls",
        &format!("--state-dir={}", inst.state_dir().display()),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("127.0.0.1:18980"), "{}", stdout(&o));
}

#[test]
fn nsnet_port_cli_adds_lists_and_removes() {
    let inst = start(&[]);
    let sd = format!("--state-dir={}", inst.state_dir().display());
    let nsnet_port = |args: &[&str]| {
        output(
            std::process::Command::new(nsnet_bin())
                .arg("port")
                .args(args)
                .arg(&sd),
        )
    };
    let o = nsnet_port(&["add", "127.0.0.1:19080:80/tcp"]);
    assert_eq!(stdout(&o), "1 127.0.0.1:19080:80/tcp\n", "{}", stderr(&o));
    assert_eq!(
        echo_tcp("127.0.0.1:19080".parse().unwrap(), b"cli").unwrap(),
        b"cli"
    );
    let o = nsnet_port(&["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["spec"]["parentPort"], 19080);
    let o = nsnet_port(&["rm", "1"]);
    assert!(o.status.success());
    let o = nsnet_port(&["rm", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "nsnet: error: unknown id: 1\n");
}

#[test]
fn a_port_that_cannot_be_published_at_start_fails_the_launch_cleanly() {
    world();
    let busy = std::net::TcpListener::bind("127.0.0.1:19180").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let o = output(std::process::Command::new(nsnet_bin()).args([
        "run",
        &format!("--state-dir={}", state.display()),
        "--net=none",
        "--port-driver=builtin",
        "-p",
        "127.0.0.1:19180:80/tcp",
        "--",
        "true",
    ]));
    drop(busy);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        errors(&o),
        "nsnet: error: failed to expose port 127.0.0.1:19180:80/tcp: listen tcp 127.0.0.1:19180: bind: address already in use\n"
    );
    assert!(!state.exists(), "nothing left behind");
}

/// The address the server inside (port 82 answers with its peer's address) sees for a client
/// bound to `from`.
fn seen_from(from: &str, to: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(from.parse().unwrap()).unwrap();
        let mut c = s.connect(to.parse().unwrap()).await.unwrap();
        let mut line = String::new();
        c.read_to_string(&mut line).await.unwrap();
        line.trim().to_string()
    })
}

#[test]
fn tcp_clients_keep_their_source_address() {
    let _inst = start(&["-p", "19380:82/tcp", "-p", "127.0.0.1:19381:82/tcp4"]);
    assert_eq!(
        seen_from("192.0.2.10:0", "192.0.2.10:19380"),
        "192.0.2.10",
        "a client's own address reaches the server (through the dual-stack listener)"
    );
    assert_eq!(
        seen_from("127.0.0.1:0", "127.0.0.1:19381"),
        "127.0.0.1",
        "loopback clients stay the child's loopback, as in RootlessKit"
    );
}

/// What the UDP server inside (port 83 answers with its client's "address port") sees for a
/// client bound to `from`, and the client's own address.
fn udp_seen_from(from: &str, to: &str) -> (String, SocketAddr) {
    let s = UdpSocket::bind(from).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.send_to(b"who", to).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    (
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        s.local_addr().unwrap(),
    )
}

/// `ip rule` of the instance's child netns.
fn child_rules(inst: &Instance) -> String {
    inst.child_ok(&["ip", "rule"])
}

#[test]
fn udp_clients_keep_their_source_address() {
    let inst = start(&["-p", "19382:83/udp", "-p", "127.0.0.1:19383:83/udp4"]);
    for _ in 0..2 {
        // Twice: the second datagram goes through the flow the first one made.
        let (seen, me) = udp_seen_from("192.0.2.10:0", "192.0.2.10:19382");
        assert_eq!(
            seen,
            format!("{} {}", me.ip(), me.port()),
            "the server sees the client's own address and port"
        );
    }
    let (seen, _) = udp_seen_from("127.0.0.1:0", "127.0.0.1:19383");
    assert!(
        seen.starts_with("127.0.0.1 "),
        "loopback clients stay the child's loopback: {seen}"
    );
    let rules = child_rules(&inst);
    assert_eq!(
        rules.matches("ipproto udp sport 83").count(),
        1,
        "one reply rule for the two ports of child port 83:\n{rules}"
    );
    for id in ["1", "2"] {
        let (status, _, body) =
            unix_http(&inst.api_socket(), "DELETE", &format!("/v1/ports/{id}"), "");
        assert!(status.contains("200"), "{status} {body}");
    }
    let rules = child_rules(&inst);
    assert!(
        !rules.contains("sport 83"),
        "the reply rule leaves with the last port:\n{rules}"
    );
}

#[test]
fn source_ip_transparent_false_dials_from_inside() {
    let _inst = start(&["--source-ip-transparent=false", "-p", "19480:82/tcp"]);
    assert_eq!(seen_from("192.0.2.10:0", "192.0.2.10:19480"), "127.0.0.1");
}

/// schemathesis from PyPI, installed by scripts/test into a venv every user can run.
const SCHEMATHESIS: &str = "/opt/nsnet-venv/bin/schemathesis";

/// `api.sock` bridged to a loopback TCP port of this test's netns, since schemathesis speaks
/// TCP only: a thread accepting, two copying per connection (the test ends the process).
fn tcp_bridge(sock: &Path) -> u16 {
    use std::net::{Shutdown, TcpListener};
    use std::os::unix::net::UnixStream;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sock = sock.to_path_buf();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            // Unreachable api.sock: the client sees its connection closed, and the run fails.
            let Ok(unix) = UnixStream::connect(&sock) else {
                continue;
            };
            let (mut t_in, mut u_out) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t_in, &mut u_out);
                let _ = u_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut u_in, mut t_out) = (unix, tcp);
                let _ = std::io::copy(&mut u_in, &mut t_out);
                let _ = t_out.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// schemathesis against a live instance's api.sock, described by nsnet-api's openapi.yaml:
/// every phase (the description's examples, boundary values, random and invalid inputs,
/// sequences following the POST → DELETE link), every check but one — schema-valid specs
/// the kernel or RootlessKit's rules refuse are 400 by contract (a port below 1024 as the
/// user, an address the host lacks, a conflict, an unknown id), which
/// `positive_data_acceptance` would call a failure. No 5xx, no response off the description,
/// no crash, and the instance still serves `/v1/info` after. Bounded: 40 cases per operation.
fn schemathesis_against(flags: &[&str]) {
    assert!(
        Path::new(SCHEMATHESIS).exists(),
        "{SCHEMATHESIS} is missing: scripts/test installs it (python3 -m venv /opt/nsnet-venv, pip install schemathesis)"
    );
    let mut b = Instance::run().args(flags.iter().copied());
    if flags.contains(&"--port-driver=pesto") {
        // pesto edits the table of nsnet's pasta personality (Debian's pasta has no -c).
        std::os::unix::fs::symlink(nsnet_bin(), b.dir().join("pasta")).unwrap();
        let pasta = format!("--pasta-binary={}", b.dir().join("pasta").display());
        b = b.args([pasta]);
    }
    let description = b.file("openapi.yaml", nsnet_api::rest::OPENAPI);
    let inst = b.start();
    let port = tcp_bridge(&inst.api_socket());
    let run = output(
        Command::new(SCHEMATHESIS)
            .arg("run")
            .arg(&description)
            .arg(format!("--url=http://127.0.0.1:{port}/v1"))
            .args([
                "--checks=all",
                "--exclude-checks=positive_data_acceptance",
                "--max-examples=40",
                "--request-timeout=10",
                "--generation-database=none",
                "--no-color",
            ])
            .current_dir(inst.dir()),
    );
    let report = format!("{}{}", stdout(&run), stderr(&run));
    assert!(run.status.success(), "schemathesis found:\n{report}");
    assert!(
        report.contains("No issues found"),
        "schemathesis ran no case:\n{report}"
    );
    let (status, ctype, body) = unix_http(&inst.api_socket(), "GET", "/v1/info", "");
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(ctype, "application/json");
    let info: nsnet_api::Info = serde_json::from_str(&body).unwrap();
    assert_eq!(info.child_pid, inst.child_pid() as i64);
    assert!(!pid_gone(inst.pid()), "the launcher is gone");
    let log = inst.stderr();
    assert!(!log.contains("panicked"), "the launcher panicked:\n{log}");
}

#[test]
fn schemathesis_finds_nothing_against_the_builtin_port_driver() {
    schemathesis_against(&["--net=builtin", "--port-driver=builtin"]);
}

#[test]
fn schemathesis_finds_nothing_against_the_slirp4netns_port_driver() {
    schemathesis_against(&["--net=slirp4netns", "--port-driver=slirp4netns"]);
}

#[test]
fn schemathesis_finds_nothing_against_the_pesto_port_driver() {
    schemathesis_against(&["--net=pasta", "--port-driver=pesto"]);
}
