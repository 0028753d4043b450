//! Docker 28/29 against the `rootlesskit` personality, replayed from the daemon's side: the
//! API calls its port mapper makes, the commands it runs in the detached netns, and the
//! source addresses a published port keeps (fixtures/docker_flow.py stands in for dockerd,
//! fixtures/proxy_standin.py for docker-proxy), and the launch command lines of
//! dockerd-rootless.sh (Docker 29), containerd-rootless.sh (nerdctl) and Debian's own
//! dockerd-rootless.sh (Docker 20.10, run unchanged) with fixtures/daemon_probe.sh as the daemon.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
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

// ---- The launch command lines of today's scripts, replayed ----
//
// Each replay runs the `rootlesskit` personality with the argv a script execs, and in the
// daemon's place fixtures/daemon_probe.sh, which prints what the daemon relies on. Which
// slirp4netns or pasta runs is decided by PATH, as for the scripts (they pass no
// --*-binary): Debian's in /usr/bin, or nsnet linked under that name first on PATH.

const PROBE: &str = include_str!("fixtures/daemon_probe.sh");

/// Which program serves a network that runs one.
#[derive(Clone, Copy, PartialEq)]
enum Helper {
    Debian,
    Nsnet,
}

/// A replay's world: a directory with the personalities (and, with [`Helper::Nsnet`],
/// nsnet linked as slirp4netns and pasta), the probe, and an XDG_RUNTIME_DIR.
struct Replay {
    p: Personalities,
    dir: tempfile::TempDir,
    tag: String,
}

impl Replay {
    fn new(helper: Helper, tag: &str) -> Replay {
        use std::os::unix::fs::PermissionsExt;
        let p = Personalities::new();
        if helper == Helper::Nsnet {
            for name in ["slirp4netns", "pasta"] {
                std::os::unix::fs::symlink(nsnet_bin(), p.dir.path().join(name)).unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Named dockerd so that a script that execs `dockerd` finds the probe first on PATH.
        let probe_dir = dir.path().join("bin");
        std::fs::create_dir(&probe_dir).unwrap();
        std::fs::write(probe_dir.join("dockerd"), PROBE).unwrap();
        std::fs::set_permissions(
            probe_dir.join("dockerd"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("runtime")).unwrap();
        std::fs::set_permissions(
            dir.path().join("runtime"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Replay {
            p,
            dir,
            tag: format!("{tag}-{}", std::process::id()),
        }
    }

    fn runtime(&self) -> String {
        self.dir.path().join("runtime").display().to_string()
    }

    fn probe(&self) -> String {
        self.dir.path().join("bin/dockerd").display().to_string()
    }

    /// Runs `program args…` with the probe's environment. `template` puts it in a world of
    /// its own holding pasta's template interface (a veth with 192.0.2.1/24 and a default
    /// route), in a new user namespace when not root. The probe takes the namespaces of the
    /// process that starts the launcher as "the host's".
    fn run(
        &self,
        program: &str,
        args: &[String],
        detached: bool,
        copy_up: &str,
        template: bool,
        env: &[(&str, &str)],
    ) -> (Output, Vec<String>) {
        world();
        let out = self.dir.path().join("probe.out");
        let setup = if template {
            "ip link set lo up && ip link add dummy0 type veth peer name dummy1 && \
             ip link set dummy1 up && ip addr add 192.0.2.1/24 dev dummy0 && \
             ip link set dummy0 up && ip route add default via 192.0.2.254 dev dummy0 && "
        } else {
            ""
        };
        let mut c = Command::new("unshare");
        if template {
            if !is_root() {
                c.args(["--user", "--map-root-user"]);
            }
            c.args(["--net", "--"]);
        } else {
            // No new namespace: only the same way of starting the launcher.
            c.args(["--"]);
        }
        let path = std::env::var("PATH").unwrap_or_default();
        c.arg("sh")
            .arg("-c")
            .arg(format!(
                "{setup}PROBE_HOST_NS=\"$(readlink /proc/self/ns/user) $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net)\" exec \"$@\""
            ))
            .arg("sh")
            .arg(program)
            .args(args)
            .env(
                "PATH",
                format!(
                    "{}:{}:{path}",
                    self.dir.path().join("bin").display(),
                    self.p.dir.path().display()
                ),
            )
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("PROBE_DETACHED", if detached { "1" } else { "0" })
            .env("PROBE_COPY_UP", copy_up)
            .env("PROBE_TAG", &self.tag)
            .env("PROBE_OUT", &out)
            .current_dir("/");
        for (k, v) in env {
            c.env(k, v);
        }
        let o = output(&mut c);
        let lines = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        // What the probe wrote into copied-up directories stayed in the child's mount ns.
        for d in copy_up.split_whitespace() {
            let f = format!("{d}/nsnet-probe-{}", self.tag);
            assert!(!Path::new(&f).exists(), "{f} reached the host's {d}");
        }
        assert!(!Path::new(&format!("/run/nsnet-probe-{}.d", self.tag)).exists());
        (o, lines)
    }
}

/// The probe's lines every replay must print, around the network's own (`addr`, `default
/// via`, `info`).
fn expected(
    args: &str,
    detached: bool,
    addr: &str,
    gateway: &str,
    info: &str,
    copy_up: &[&str],
) -> Vec<String> {
    let mut v = vec![
        format!("args {args}"),
        "uid 0".into(),
        "own user ns yes".into(),
        "own mount ns yes".into(),
        "state dir yes".into(),
    ];
    if detached {
        v.push("own net ns no".into());
        v.push("netns is another ns yes".into());
    } else {
        v.push("own net ns yes".into());
    }
    v.push(format!("addr {addr}"));
    v.push(format!("default via {gateway}"));
    v.push("forward net.ipv4.ip_forward = 1 read back 1".into());
    v.push(format!("info {info}"));
    v.push("child_pid in our user ns yes".into());
    v.push("root mount slave".into());
    for d in copy_up {
        v.push(format!("copy-up {d} writable tmpfs"));
    }
    v.push("run writable".into());
    v.push("end".into());
    v
}

/// Docker 29's `dockerd-rootless.sh` execs RootlessKit with this argv (its defaults:
/// state dir under XDG_RUNTIME_DIR, sandbox and seccomp `auto`, `--detach-netns`).
fn dockerd_rootless_argv(r: &Replay, net: &str, mtu: &str, pd: &str) -> Vec<String> {
    vec![
        format!("--state-dir={}/dockerd-rootless", r.runtime()),
        format!("--net={net}"),
        format!("--mtu={mtu}"),
        "--slirp4netns-sandbox=auto".into(),
        "--slirp4netns-seccomp=auto".into(),
        "--disable-host-loopback".into(),
        format!("--port-driver={pd}"),
        "--copy-up=/etc".into(),
        "--copy-up=/run".into(),
        "--propagation=rslave".into(),
        "--detach-netns".into(),
        r.probe(),
        "--config-file=/dev/null".into(),
    ]
}

fn docker29_replay(
    helper: Helper,
    net: &str,
    mtu: &str,
    pd: &str,
    addr: &str,
    gw: &str,
    info: &str,
) {
    let r = Replay::new(helper, net);
    let argv = dockerd_rootless_argv(&r, net, mtu, pd);
    let template = net == "pasta";
    let (o, lines) = r.run(
        &r.p.dir.path().join("rootlesskit").display().to_string(),
        &argv,
        true,
        "/etc /run",
        template,
        &[],
    );
    assert!(o.status.success(), "{}{lines:?}", stderr(&o));
    assert_eq!(
        lines,
        expected(
            "--config-file=/dev/null",
            true,
            addr,
            gw,
            info,
            &["/etc", "/run"]
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn docker29_launch_slirp4netns_debian() {
    docker29_replay(
        Helper::Debian,
        "slirp4netns",
        "65520",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.2",
        "200 1.1.2 slirp4netns 10.0.2.100 builtin None",
    );
}

#[test]
fn docker29_launch_slirp4netns_nsnet() {
    docker29_replay(
        Helper::Nsnet,
        "slirp4netns",
        "65520",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.2",
        "200 1.1.2 slirp4netns 10.0.2.100 builtin None",
    );
}

#[test]
fn docker29_launch_pasta_debian() {
    docker29_replay(
        Helper::Debian,
        "pasta",
        "65520",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.2",
        "200 1.1.2 pasta 10.0.2.100 builtin None",
    );
}

#[test]
fn docker29_launch_pasta_nsnet() {
    docker29_replay(
        Helper::Nsnet,
        "pasta",
        "65520",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.2",
        "200 1.1.2 pasta 10.0.2.100 builtin None",
    );
}

#[test]
fn docker29_launch_gvisor_tap_vsock() {
    docker29_replay(
        Helper::Nsnet,
        "gvisor-tap-vsock",
        "1500",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.1",
        "200 1.1.2 gvisor-tap-vsock 10.0.2.100 builtin None",
    );
}

#[test]
fn docker29_launch_builtin() {
    docker29_replay(
        Helper::Nsnet,
        "builtin",
        "65520",
        "builtin",
        "tap0 10.0.2.100/24",
        "10.0.2.2",
        "200 1.1.2 builtin 10.0.2.100 builtin None",
    );
}

// ---- containerd (nerdctl's containerd-rootless.sh) ----

/// nerdctl's `containerd-rootless.sh` execs RootlessKit with Docker's flags plus
/// `--copy-up=/var/lib`, and `--detach-netns` when `rootlesskit --help` lists it (`grep -qw`);
/// `CONTAINERD_ROOTLESS_ROOTLESSKIT_IPV6=true` adds `--ipv6`.
fn containerd_replay(
    net: &str,
    mtu: &str,
    ipv6: bool,
    addr: &str,
    addr6: &str,
    gw: &str,
    info: &str,
) {
    let r = Replay::new(Helper::Debian, &format!("containerd-{net}"));
    let rootlesskit = r.p.dir.path().join("rootlesskit").display().to_string();
    // The script's probe, as it runs it.
    let help = output(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{rootlesskit} --help | grep -qw -- --detach-netns")),
    );
    assert!(help.status.success(), "--help does not list --detach-netns");
    let mut argv = vec![
        format!("--state-dir={}/containerd-rootless", r.runtime()),
        format!("--net={net}"),
        format!("--mtu={mtu}"),
        "--slirp4netns-sandbox=auto".into(),
        "--slirp4netns-seccomp=auto".into(),
        "--disable-host-loopback".into(),
        "--port-driver=builtin".into(),
        "--copy-up=/etc".into(),
        "--copy-up=/run".into(),
        "--copy-up=/var/lib".into(),
        "--propagation=rslave".into(),
        "--detach-netns".into(),
    ];
    if ipv6 {
        argv.push("--ipv6".into());
    }
    argv.push(r.probe());
    argv.push("--config=/dev/null".into());
    let (o, lines) = r.run(
        &rootlesskit,
        &argv,
        true,
        "/etc /run /var/lib",
        false,
        &[("PROBE_IPV6", if ipv6 { "1" } else { "0" })],
    );
    assert!(o.status.success(), "{}{lines:?}", stderr(&o));
    // slirp4netns's IPv6 address is SLAAC's: fd00::/64 and an interface id from a random MAC.
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| {
            if l.starts_with("addr6 tap0 fd00::") && l.ends_with("/64") {
                "addr6 tap0 fd00::/64 (SLAAC)".into()
            } else {
                l
            }
        })
        .collect();
    let mut want = expected(
        "--config=/dev/null",
        true,
        addr,
        gw,
        info,
        &["/etc", "/run", "/var/lib"],
    );
    if ipv6 {
        let at = want
            .iter()
            .position(|l| l.starts_with("default via"))
            .unwrap();
        want.insert(at, format!("addr6 {addr6}"));
    }
    assert_eq!(lines, want, "{}", stderr(&o));
}

#[test]
fn containerd_launch_slirp4netns() {
    containerd_replay(
        "slirp4netns",
        "65520",
        false,
        "tap0 10.0.2.100/24",
        "",
        "10.0.2.2",
        "200 1.1.2 slirp4netns 10.0.2.100 builtin None",
    );
}

#[test]
fn containerd_launch_slirp4netns_ipv6() {
    containerd_replay(
        "slirp4netns",
        "65520",
        true,
        "tap0 10.0.2.100/24",
        "tap0 fd00::/64 (SLAAC)",
        "10.0.2.2",
        "200 1.1.2 slirp4netns 10.0.2.100 builtin None",
    );
}

#[test]
fn containerd_launch_gvisor_tap_vsock() {
    containerd_replay(
        "gvisor-tap-vsock",
        "1500",
        false,
        "tap0 10.0.2.100/24",
        "",
        "10.0.2.1",
        "200 1.1.2 gvisor-tap-vsock 10.0.2.100 builtin None",
    );
}

// ---- Debian's dockerd-rootless.sh (Docker 20.10), run unchanged ----

const DEBIAN_SCRIPT: &str = "/usr/share/docker.io/contrib/dockerd-rootless.sh";

/// The script re-execs itself under `rootlesskit` (nsnet, first on PATH) and then execs
/// `dockerd` (the probe, earlier on PATH). It picks slirp4netns itself when `slirp4netns
/// --help` lists `--netns-type`. As root it refuses before starting anything.
fn debian_script(helper: Helper) {
    let r = Replay::new(helper, "debian-script");
    let script = |r: &Replay| {
        r.run(
            DEBIAN_SCRIPT,
            &["--experimental".into(), "--iptables=false".into()],
            false,
            "/etc /run",
            false,
            &[],
        )
    };
    if is_root() {
        let (o, lines) = script(&r);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "This script must be executed as a non-privileged user\n"
        );
        assert!(lines.is_empty(), "the probe ran: {lines:?}");
        return;
    }
    let (o, lines) = script(&r);
    assert!(o.status.success(), "{}{lines:?}", stderr(&o));
    assert_eq!(
        lines,
        expected(
            "--experimental --iptables=false",
            false,
            "tap0 10.0.2.100/24",
            "10.0.2.2",
            "200 1.1.2 slirp4netns 10.0.2.100 builtin None",
            &["/etc", "/run"],
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn debian_dockerd_rootless_sh_with_debians_slirp4netns() {
    debian_script(Helper::Debian);
}

#[test]
fn debian_dockerd_rootless_sh_with_nsnet_as_slirp4netns() {
    debian_script(Helper::Nsnet);
}
