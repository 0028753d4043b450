//! RootlessKit v3's `--port-driver=pesto` with `--net=pasta`: the `rootlesskit` personality
//! runs pasta (nsnet linked as `pasta`, given with `--pasta-binary`, as tests/pasta.rs and
//! tests/docker.rs run it) with `-c $STATE/pasta.sock`, and each published port is a rule in
//! that pasta's forwarding table. Clients speak to the REST API on api.sock, Debian's
//! `rootlessctl` among them; connections come from the world's loopback and reach servers
//! bound to the namespace's address only (fixtures/echo_server.py --only: TCP 80, UDP 81), so a
//! forward that went anywhere else would be refused. Debian's `/usr/bin/pasta`, which has no
//! such socket, is refused before anything starts.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const ECHO_SERVER: &str = include_str!("fixtures/echo_server.py");

/// The namespace's address (`--cidr` 10.0.2.0/24's .100): what pasta forwards to, and the
/// only child IP the driver accepts.
const CHILD_IP: &str = "10.0.2.100";

/// A directory (readable by everyone: the launcher's child runs as the namespace's root)
/// holding nsnet linked as `pasta` and as `pesto`.
fn links() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["pasta", "pesto"] {
        std::os::unix::fs::symlink(nsnet_bin(), d.path().join(name)).unwrap();
    }
    d
}

/// `rootlesskit --net=pasta --pasta-binary=OURS --port-driver=pesto EXTRA -- SERVERS`, the
/// echo servers running in the namespace (entered with nsenter when it is detached); the
/// state dir is `state` when given (to look at it once the instance is gone).
fn start(p: &Personalities, links: &Path, state: Option<&Path>, extra: &[&str]) -> Instance {
    let mut b = Instance::launcher(Command::new(p.dir.path().join("rootlesskit")));
    if let Some(s) = state {
        b = b.state_dir(s);
    }
    let script = b.file("echo_server.py", ECHO_SERVER);
    let enter = if extra.contains(&"--detach-netns") {
        "nsenter --net=\"$ROOTLESSKIT_STATE_DIR/netns\" "
    } else {
        ""
    };
    b.args([
        "--net=pasta".to_string(),
        format!("--pasta-binary={}", links.join("pasta").display()),
        "--port-driver=pesto".into(),
        "--disable-host-loopback".into(),
    ])
    .args(extra)
    .script(&format!(
        "exec {enter}python3 {} \"$READY\" --only {CHILD_IP}",
        script.display()
    ))
    .start()
}

fn echo_tcp(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(payload)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    s.read_to_end(&mut back)?;
    Ok(back)
}

/// One datagram to `to` and its echo, which must come from `to`.
fn echo_udp(to: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let s = UdpSocket::bind(if to.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.send_to(payload, to)?;
    let mut buf = vec![0u8; 2048];
    let (n, from) = s.recv_from(&mut buf)?;
    assert_eq!(from, to, "the reply comes from the published address");
    buf.truncate(n);
    Ok(buf)
}

fn post(inst: &Instance, body: &str) -> (String, String) {
    let (st, _, body) = unix_http(&inst.api_socket(), "POST", "/v1/ports", body);
    (st, body)
}

/// `GET /v1/info` with the instance's own state dir and child PID filled in.
fn info_want(inst: &Instance, network_extra: &str, protos: &str) -> String {
    format!(
        r#"{{"apiVersion":"1.1.2","version":"3.2.0+nsnet.{}","stateDir":"{}","childPID":{},"networkDriver":{{"driver":"pasta","dns":["10.0.2.3"],"childIP":"10.0.2.100"{network_extra}}},"portDriver":{{"driver":"pesto","protos":[{protos}],"disallowLoopbackChildIP":true}}}}"#,
        env!("CARGO_PKG_VERSION"),
        inst.state_dir().display(),
        inst.child_pid()
    )
}

/// `rootlessctl` (Debian's, a real client of the API) against the instance.
fn rootlessctl(inst: &Instance, args: &[&str]) -> (Option<i32>, String, String) {
    let o = output(
        Command::new("/usr/bin/rootlessctl")
            .arg(format!("--socket={}", inst.api_socket().display()))
            .args(args),
    );
    (o.status.code(), stdout(&o), stderr(&o))
}

/// What pasta itself holds: its inbound table, through the pesto personality.
fn pasta_rules(inst: &Instance, links: &Path) -> Vec<String> {
    let o = output(Command::new(links.join("pesto")).arg(inst.state_dir().join("pasta.sock")));
    assert!(o.status.success(), "pesto: {}", stderr(&o));
    stdout(&o)
        .lines()
        .skip_while(|l| l.trim() != "HOST")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The detached instance (Docker's `dockerd-rootless.sh` runs RootlessKit so): `/v1/info`
/// byte for byte; TCP ports with `childIP` empty and with the namespace's address carry
/// bytes from the world's loopback to a server on that address only; the rules are in
/// pasta's table; a loopback `childIP` and IPv6 without `--ipv6` are refused in
/// RootlessKit's words; a UDP port delivers a datagram; Debian's `rootlessctl` lists and
/// removes; a deleted port refuses connections; an unknown id is `invalid ID`.
#[test]
fn pesto_port_driver_with_detach_netns_forwards_to_the_namespace_address() {
    world();
    let p = Personalities::new();
    let links = links();
    let own = tempfile::tempdir().unwrap();
    let state = own.path().join("state");
    let inst = start(&p, links.path(), Some(&state), &["--detach-netns"]);
    let (st, ctype, body) = unix_http(&inst.api_socket(), "GET", "/v1/info", "");
    assert_eq!(
        (st.as_str(), ctype.as_str()),
        ("HTTP/1.1 200 OK", "application/json")
    );
    assert_eq!(body, info_want(&inst, "", r#""tcp","tcp4","udp","udp4""#));

    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let (st, body) = post(
        &inst,
        &format!(r#"{{"proto":"tcp4","parentIP":"0.0.0.0","parentPort":{p1},"childPort":80}}"#),
    );
    assert_eq!(st, "HTTP/1.1 201 Created", "{body}");
    assert_eq!(
        body,
        format!(
            r#"{{"id":1,"spec":{{"proto":"tcp4","parentIP":"0.0.0.0","parentPort":{p1},"childPort":80}}}}"#
        )
    );
    let (st, body) = post(
        &inst,
        &format!(
            r#"{{"proto":"tcp4","parentIP":"0.0.0.0","parentPort":{p2},"childIP":"{CHILD_IP}","childPort":80}}"#
        ),
    );
    assert_eq!(st, "HTTP/1.1 201 Created", "{body}");
    assert!(body.starts_with(r#"{"id":2,"#), "{body}");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(echo_tcp(p1, &big).unwrap(), big, "childIP \"\"");
    assert_eq!(
        echo_tcp(p2, b"to the namespace").unwrap(),
        b"to the namespace"
    );
    assert_eq!(
        pasta_rules(&inst, links.path()),
        [
            format!("TCP [0.0.0.0]:{p1}  =>  80"),
            format!("TCP [0.0.0.0]:{p2}  =>  80"),
        ]
    );

    let refused = |body: String, want: &str| {
        let (st, got) = post(&inst, &body);
        assert_eq!(
            (st.as_str(), got.as_str()),
            (
                "HTTP/1.1 400 Bad Request",
                format!("{{\"message\":{}}}\n", serde_json::to_string(want).unwrap()).as_str()
            ),
            "{body}"
        );
    };
    refused(
        format!(r#"{{"proto":"tcp","parentPort":{p3},"childIP":"127.0.0.1","childPort":80}}"#),
        "unsupported ChildIP \"127.0.0.1\": the pesto port driver only supports the namespace address \"10.0.2.100\"",
    );
    refused(
        format!(r#"{{"proto":"tcp6","parentPort":{p3},"childPort":80}}"#),
        "IPv6 port forwarding (proto \"tcp6\", parent IP \"::\") requires --ipv6",
    );
    refused(
        format!(r#"{{"proto":"tcp4","parentIP":"0.0.0.0","parentPort":{p1},"childPort":81}}"#),
        "conflict with ID 1",
    );

    let (st, body) = post(
        &inst,
        &format!(r#"{{"proto":"udp4","parentIP":"127.0.0.1","parentPort":{p3},"childPort":81}}"#),
    );
    assert_eq!(st, "HTTP/1.1 201 Created", "{body}");
    assert_eq!(
        echo_udp(SocketAddr::from(([127, 0, 0, 1], p3)), b"datagram").unwrap(),
        b"datagram"
    );

    let (code, table, err) = rootlessctl(&inst, &["list-ports"]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let rows: Vec<Vec<String>> = table
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        [
            row(&[
                "ID",
                "PROTO",
                "PARENTIP",
                "PARENTPORT",
                "CHILDIP",
                "CHILDPORT"
            ]),
            row(&["1", "tcp4", "0.0.0.0", &p1.to_string(), "80"]),
            row(&["2", "tcp4", "0.0.0.0", &p2.to_string(), CHILD_IP, "80"]),
            row(&["3", "udp4", "127.0.0.1", &p3.to_string(), "81"]),
        ],
        "{table}"
    );

    let (st, _, _) = unix_http(&inst.api_socket(), "DELETE", "/v1/ports/1", "");
    assert_eq!(st, "HTTP/1.1 200 OK");
    assert!(
        TcpStream::connect(("127.0.0.1", p1)).is_err(),
        "a deleted port refuses connections"
    );
    assert_eq!(
        rootlessctl(&inst, &["remove-ports", "3"]),
        (Some(0), "3\n".into(), String::new())
    );
    let (st, _, body) = unix_http(&inst.api_socket(), "DELETE", "/v1/ports/99", "");
    assert_eq!(
        (st.as_str(), body.as_str()),
        (
            "HTTP/1.1 400 Bad Request",
            "{\"message\":\"invalid ID: 99\"}\n"
        )
    );
    assert_eq!(
        pasta_rules(&inst, links.path()),
        [format!("TCP [0.0.0.0]:{p2}  =>  80")]
    );
    assert_eq!(echo_tcp(p2, b"still").unwrap(), b"still");
    assert!(state.join("pasta.sock").exists());
    drop(inst);
    assert!(
        !state.exists(),
        "the state dir, pasta.sock included, is gone"
    );
}

/// Without `--detach-netns`, and with `--ipv6`: `-p` publishes at launch through the driver,
/// `/v1/info` lists the IPv6 protos, and an IPv6 parent address is accepted and forwarded
/// (into the namespace's address: nsnet's pasta has no IPv6 address inside).
#[test]
fn pesto_port_driver_publishes_with_p_and_ipv6() {
    world();
    let p = Personalities::new();
    let links = links();
    let (p1, p2) = (free_port(), free_port());
    let published = format!("127.0.0.1:{p1}:80/tcp");
    let inst = start(&p, links.path(), None, &["--ipv6", "-p", &published]);
    let (_, _, body) = unix_http(&inst.api_socket(), "GET", "/v1/info", "");
    assert_eq!(
        body,
        info_want(
            &inst,
            r#","ipv6":true"#,
            r#""tcp","tcp4","udp","udp4","tcp6","udp6""#
        )
    );
    assert_eq!(
        echo_tcp(p1, b"published at launch").unwrap(),
        b"published at launch"
    );
    let (st, body) = post(
        &inst,
        &format!(r#"{{"proto":"tcp6","parentIP":"::1","parentPort":{p2},"childPort":80}}"#),
    );
    assert_eq!(st, "HTTP/1.1 201 Created", "{body}");
    let mut s = TcpStream::connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p2))).unwrap();
    s.write_all(b"six").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"six");
    assert_eq!(
        pasta_rules(&inst, links.path()),
        [
            format!("TCP [127.0.0.1]:{p1}  =>  80"),
            format!("TCP [::1]:{p2}  =>  80"),
        ]
    );
    // tcp4 with an IPv6 parent is RootlessKit's family mismatch, --ipv6 or not.
    let (st, body) = post(
        &inst,
        &format!(r#"{{"proto":"tcp4","parentIP":"::1","parentPort":{p2},"childPort":80}}"#),
    );
    assert_eq!(
        (st.as_str(), body.as_str()),
        (
            "HTTP/1.1 400 Bad Request",
            "{\"message\":\"unsupported IP: ::1\"}\n"
        )
    );
}

/// nsnet-port's conformance suite against the pesto driver: the driver is made here, in the
/// test, over the socket of an instance's pasta, and forwards to the instance's echo servers
/// on the namespace's address.
#[test]
fn pesto_port_driver_passes_the_conformance_suite() {
    world();
    let p = Personalities::new();
    let links = links();
    let inst = start(&p, links.path(), None, &["--detach-netns"]);
    let driver = nsnet_port::Ports::Pesto(nsnet_port::pesto::PestoPorts::new(
        inst.state_dir().join("pasta.sock"),
        CHILD_IP.parse().unwrap(),
        false,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let child = nsnet_port::testsuite::Child {
        tcp: 80,
        udp: 81,
        v6: None,
    };
    rt.block_on(nsnet_port::testsuite::run(&driver, &child));
    assert!(driver.list().is_empty(), "the suite leaves nothing");
    assert!(pasta_rules(&inst, links.path()).is_empty(), "nor in pasta");
}

/// The processes whose command line mentions `needle` (only this test's own paths).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

/// Debian's pasta (2023) has no forwarding-table socket: the launch fails at once with one
/// line naming the binary and the fix, through both front ends, and leaves no state dir
/// (given or temporary) and no process behind.
#[test]
fn pesto_port_driver_refuses_a_pasta_without_the_socket_and_leaves_nothing() {
    world();
    let p = Personalities::new();
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let state = t.path().join("state");
    let why = "--port-driver=pesto: /usr/bin/pasta has no forwarding-table socket (-c, --conf-path) for the driver to edit; use nsnet's pasta personality (nsnet linked as pasta, given with --pasta-binary) or pasta from passt 2026_07_16 or later";
    let args = |state: Option<&PathBuf>| {
        let mut a = vec![
            "--net=pasta".to_string(),
            "--pasta-binary=/usr/bin/pasta".into(),
            "--port-driver=pesto".into(),
            "--disable-host-loopback".into(),
            "-p".into(),
            "8080:80/tcp".into(),
        ];
        if let Some(s) = state {
            a.push(format!("--state-dir={}", s.display()));
        }
        a.push("true".into());
        a
    };
    for s in [Some(&state), None] {
        let o = output(p.command("rootlesskit").args(args(s)).env("TMPDIR", &tmp));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(errors(&o), format!("[rootlesskit:parent] error: {why}\n"));
        let o = output(nsnet().arg("run").args(args(s)).env("TMPDIR", &tmp));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(errors(&o), format!("nsnet: error: {why}\n"));
    }
    assert!(!state.exists(), "no state dir was made");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "no temporary state dir"
    );
    let left = processes_mentioning(&t.path().display().to_string());
    assert!(left.is_empty(), "left running: {left:?}");
}
