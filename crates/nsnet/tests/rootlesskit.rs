//! The `rootlesskit` personality against RootlessKit's observable behaviour: the checks of
//! RootlessKit's own hack/integration-exit-code.sh, -restart.sh, -pdeathsig.sh and -port.sh,
//! its help and version output, and its error lines.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn help_lists_every_flag() {
    let p = Personalities::new();
    let o = output(p.command("rootlesskit").arg("--help"));
    assert!(o.status.success());
    let help = stdout(&o);
    for flag in [
        "--debug",
        "--state-dir",
        "--net",
        "--mtu",
        "--cidr",
        "--ifname",
        "--disable-host-loopback",
        "--ipv6",
        "--detach-netns",
        "--copy-up",
        "--copy-up-mode",
        "--propagation",
        "--slirp4netns-binary",
        "--slirp4netns-sandbox",
        "--slirp4netns-seccomp",
        "--pasta-binary",
        "--vpnkit-binary",
        "--lxc-user-nic-binary",
        "--lxc-user-nic-bridge",
        "--port-driver",
        "--publish",
        "--pidns",
        "--cgroupns",
        "--utsns",
        "--ipcns",
        "--reaper",
        "--evacuate-cgroup2",
        "--subid-source",
        "--source-ip-transparent",
        "--source-ip-transparent-backend",
        "--print-semver",
        "--version",
        "--help",
    ] {
        assert!(
            help.split(|c: char| c.is_whitespace() || ",=[".contains(c))
                .any(|w| w == flag),
            "--help lacks {flag}"
        );
    }
    assert!(help.contains("-p, --publish"));
    // The v3 driver names integrators look for (Docker's and nerdctl's scripts pick
    // gvisor-tap-vsock when neither slirp4netns nor pasta is installed).
    for name in ["gvisor-tap-vsock", "pesto", "implicit", "nft", "iptables"] {
        assert!(help.contains(name), "--help lacks {name}");
    }
}

#[test]
fn version_and_semver() {
    let p = Personalities::new();
    let o = output(p.command("rootlesskit").arg("--version"));
    // RootlessKit v3.2's behaviour, with nsnet's own version as build metadata.
    assert_eq!(
        stdout(&o),
        format!(
            "rootlesskit version 3.2.0+nsnet.{}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let semver: Vec<String> = ["major", "minor", "patch"]
        .iter()
        .map(|c| {
            let o = output(p.command("rootlesskit").args(["--print-semver", c]));
            assert!(o.status.success());
            stdout(&o).trim().to_string()
        })
        .collect();
    assert_eq!(semver, ["3", "2", "0"]);
    let o = output(p.command("rootlesskit").args(["--print-semver", "bogus"]));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn exit_codes_as_integration_exit_code_sh() {
    let p = Personalities::new();
    for args in [
        &["--pidns=false"][..],
        &["--pidns=true", "--reaper=auto"][..],
        &["--pidns=true", "--reaper=true"][..],
        &["--pidns=true", "--reaper=false"][..],
    ] {
        for code in [0, 42] {
            let o = output(p.command("rootlesskit").args(args).args([
                "sh",
                "-exc",
                &format!("exit {code}"),
            ]));
            assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        }
        let o = output(
            p.command("rootlesskit")
                .args(args)
                .args(["sh", "-c", "exit 42"]),
        );
        assert_eq!(
            errors(&o),
            "[rootlesskit:child ] error: command [sh -c exit 42] exited: exit status 42\n\
             [rootlesskit:parent] error: child exited: exit status 42\n"
        );
    }
}

#[test]
fn sigusr1_to_child_pid_as_integration_exit_code_sh() {
    let p = Personalities::new();
    for args in [
        &["--pidns=false"][..],
        &["--pidns=true", "--reaper=auto"][..],
        &["--pidns=true", "--reaper=true"][..],
        &["--pidns=true", "--reaper=false"][..],
    ] {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("state");
        let job = p
            .command("rootlesskit")
            .arg(format!("--state-dir={}", state.display()))
            .args(args)
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child: i32 = wait_for_file(&state.join("child_pid"), Duration::from_secs(30))
            .parse()
            .unwrap();
        kill(Pid::from_raw(child), Signal::SIGUSR1).unwrap();
        let o = job.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(255), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("user defined signal 1"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn error_lines_match_rootlesskit() {
    let p = Personalities::new();
    let cases: &[(&[&str], &str)] = &[
        (&[], "[rootlesskit:parent] error: no command specified\n"),
        (
            &["--net=bogus", "true"],
            "[rootlesskit:parent] error: unknown network mode: bogus\n",
        ),
        (
            &["--port-driver=builtin", "true"],
            "[rootlesskit:parent] error: port driver requires non-host network\n",
        ),
        (
            &["-p", "8080:80/tcp", "true"],
            "[rootlesskit:parent] error: port driver \"none\" does not support publishing ports\n",
        ),
        (
            &["--mtu", "70000", "true"],
            "[rootlesskit:parent] error: mtu must be <= 65521, got 70000\n",
        ),
        (
            &["nsnet-no-such-command"],
            "[rootlesskit:child ] error: command [nsnet-no-such-command] exited: exec: \"nsnet-no-such-command\": executable file not found in $PATH\n\
             [rootlesskit:parent] error: child exited: exit status 1\n",
        ),
    ];
    for (args, want) in cases {
        let o = output(p.command("rootlesskit").args(*args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(&errors(&o), want, "{args:?}");
    }
}

#[test]
fn detach_netns_as_containerd_rootless_uses_it() {
    let p = Personalities::new();
    let host_net = own_ns("net");
    let o = output(p.command("rootlesskit").args([
        "--net=none",
        "--copy-up=/etc",
        "--copy-up=/run",
        "--propagation=rslave",
        "--detach-netns",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; nsenter --net=$ROOTLESSKIT_STATE_DIR/netns readlink /proc/self/ns/net; touch /run/nsnet-probe && echo run-writable",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], host_net);
    assert!(lines[1].starts_with("net:[") && lines[1] != host_net);
    assert_eq!(lines[2], "run-writable");
    assert!(!std::path::Path::new("/run/nsnet-probe").exists());
}

/// Starts `rootlesskit ARGS… sleep infinity` on a fresh state dir, SIGKILLs its parent, checks
/// the child died with it (PDEATHSIG), then runs `rootlesskit ARGS… THEN…` on the same dir.
fn restart_after_sigkill(args: &[&str], then: &[&str]) -> std::process::Output {
    let p = Personalities::new();
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let sd = format!("--state-dir={}", state.display());
    let mut job = p
        .command("rootlesskit")
        .arg(&sd)
        .args(args)
        .args(["sleep", "infinity"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child: i32 = wait_for_file(&state.join("child_pid"), Duration::from_secs(30))
        .parse()
        .unwrap();
    kill(Pid::from_raw(job.id() as i32), Signal::SIGKILL).unwrap();
    job.wait().unwrap();
    assert!(
        wait_gone(child, Duration::from_secs(15)),
        "pdeathsig: child survived"
    );
    output(p.command("rootlesskit").arg(&sd).args(args).args(then))
}

#[test]
fn restart_after_sigkill_as_integration_restart_sh() {
    let o = restart_after_sigkill(&[], &["cat", "/proc/self/uid_map"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// RootlessKit's hack/integration-restart.sh (issue 220) itself: slirp4netns and the builtin
/// port driver, and the API used from inside after the restart.
#[test]
fn integration_restart_sh_with_slirp4netns_and_builtin_ports() {
    let o = restart_after_sigkill(
        &["--port-driver=builtin", "--net=slirp4netns"],
        &["rootlessctl", "list-ports"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "ID    PROTO    PARENTIP    PARENTPORT    CHILDIP    CHILDPORT    \n"
    );
}

const HTTPD: &str = include_str!("fixtures/httpd.py");

/// A `rootlesskit` personality instance serving HTTP on port 80 inside its child netns;
/// SIGTERMed and waited for on drop.
struct HttpInstance {
    job: std::process::Child,
    dir: tempfile::TempDir,
}

impl HttpInstance {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for HttpInstance {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.job.id() as i32), Signal::SIGTERM);
        let _ = self.job.wait();
    }
}

/// RootlessKit's hack/integration-port.sh `test_port PORT_DRIVER URL EXPECTATION ARGS…`:
/// `rootlesskit --net=slirp4netns --disable-host-loopback --copy-up=/etc
/// --port-driver=PORT_DRIVER ARGS… <httpd on port 80>`, then `curl -fsSL URL` from the
/// world's loopback must succeed (and return the page) or fail. `net` replaces the script's
/// `--net=slirp4netns` (and may add `--slirp4netns-binary=…`).
fn test_port(
    p: &Personalities,
    net: &[&str],
    port_driver: &str,
    url: &str,
    ok: bool,
    args: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("html");
    std::fs::create_dir(&html).unwrap();
    let page = format!("test_port ({port_driver} {url} {args:?})\n");
    std::fs::write(html.join("index.html"), &page).unwrap();
    let script = dir.path().join("httpd.py");
    std::fs::write(&script, HTTPD).unwrap();
    let ready = dir.path().join("ready");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let job = p
        .command("rootlesskit")
        .arg(format!(
            "--state-dir={}",
            dir.path().join("state").display()
        ))
        .args(net)
        .args(["--disable-host-loopback", "--copy-up=/etc"])
        .arg(format!("--port-driver={port_driver}"))
        .args(args)
        .arg("python3")
        .arg(&script)
        .arg(&html)
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let inst = HttpInstance { job, dir };
    wait_for_file(&ready, Duration::from_secs(30));
    let o = output(std::process::Command::new("curl").args(["-fsSL", "--max-time", "10", url]));
    let what = format!("{net:?} --port-driver={port_driver} {args:?}: curl {url}");
    if ok {
        assert!(
            o.status.success(),
            "{what} should succeed: {}\n{}",
            stderr(&o),
            inst.log()
        );
        assert_eq!(stdout(&o), page, "{what}");
    } else {
        assert!(
            !o.status.success(),
            "{what} should fail, got {:?}",
            stdout(&o)
        );
    }
}

/// Each case of integration-port.sh for the builtin port driver, over `--net=slirp4netns` as
/// the script runs it and over nsnet's own `--net=builtin`. `PORT` in a URL or spec is the
/// parent port (one per network driver, so an instance never waits for its predecessor's).
fn builtin_cases(cases: &[(&str, bool, &[&str])]) {
    let p = Personalities::new();
    for (i, net) in ["--net=slirp4netns", "--net=builtin"]
        .into_iter()
        .enumerate()
    {
        let port = (8080 + i).to_string();
        for (url, ok, args) in cases {
            let args: Vec<String> = args.iter().map(|a| a.replace("PORT", &port)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            test_port(
                &p,
                &[net],
                "builtin",
                &url.replace("PORT", &port),
                *ok,
                &args,
            );
        }
    }
}

#[test]
fn integration_port_sh_tcp_listens_on_both_v4_and_v6() {
    builtin_cases(&[
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "0.0.0.0:PORT:80/tcp"],
        ),
        ("http://[::1]:PORT", true, &["-p", "0.0.0.0:PORT:80/tcp"]),
        // Go's net.Listen("tcp", "[::]:…") is as dual-stack as "0.0.0.0:…".
        ("http://127.0.0.1:PORT", true, &["-p", "[::]:PORT:80/tcp"]),
        ("http://[::1]:PORT", true, &["-p", "[::]:PORT:80/tcp"]),
    ]);
}

#[test]
fn integration_port_sh_tcp4_is_strictly_v4_only() {
    builtin_cases(&[
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "0.0.0.0:PORT:80/tcp4"],
        ),
        ("http://[::1]:PORT", false, &["-p", "0.0.0.0:PORT:80/tcp4"]),
    ]);
}

#[test]
fn integration_port_sh_tcp6_is_strictly_v6_only() {
    builtin_cases(&[
        ("http://127.0.0.1:PORT", false, &["-p", "[::]:PORT:80/tcp6"]),
        ("http://[::1]:PORT", true, &["-p", "[::]:PORT:80/tcp6"]),
    ]);
}

#[test]
fn integration_port_sh_v6_to_v6() {
    builtin_cases(&[
        (
            "http://[::1]:PORT",
            true,
            &["-p", "[::]:PORT:[::1]:80/tcp6"],
        ),
        ("http://[::1]:PORT", true, &["-p", "[::]:PORT:[::1]:80/tcp"]),
        // Beyond the script: "tcp" on [::] takes IPv4 clients too (Go's dual-stack wildcard).
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "[::]:PORT:[::1]:80/tcp"],
        ),
    ]);
}

#[test]
fn integration_port_sh_v6_to_v4() {
    builtin_cases(&[
        (
            "http://[::1]:PORT",
            true,
            &["-p", "[::]:PORT:[127.0.0.1]:80/tcp6"],
        ),
        (
            "http://[::1]:PORT",
            true,
            &["-p", "[::]:PORT:[127.0.0.1]:80/tcp"],
        ),
        // Beyond the script, as for v6-to-v6.
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "[::]:PORT:[127.0.0.1]:80/tcp"],
        ),
    ]);
}

#[test]
fn integration_port_sh_v4_to_v6() {
    builtin_cases(&[
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "0.0.0.0:PORT:[::1]:80/tcp4"],
        ),
        (
            "http://127.0.0.1:PORT",
            true,
            &["-p", "0.0.0.0:PORT:[::1]:80/tcp"],
        ),
        // Beyond the script: "tcp4" refuses IPv6 clients, "tcp" on 0.0.0.0 takes them.
        (
            "http://[::1]:PORT",
            false,
            &["-p", "0.0.0.0:PORT:[::1]:80/tcp4"],
        ),
        (
            "http://[::1]:PORT",
            true,
            &["-p", "0.0.0.0:PORT:[::1]:80/tcp"],
        ),
    ]);
}

#[test]
fn integration_port_sh_tcp4_and_tcp6_do_not_conflict() {
    let both: &[&str] = &["-p", "0.0.0.0:PORT:80/tcp4", "-p", "[::]:PORT:80/tcp6"];
    builtin_cases(&[
        ("http://127.0.0.1:PORT", true, both),
        ("http://[::1]:PORT", true, both),
    ]);
}

/// The slirp4netns port driver (IPv4 only): with Debian's slirp4netns, as the script runs it,
/// and with nsnet linked as `slirp4netns`.
#[test]
fn integration_port_sh_slirp4netns_port_driver_is_ipv4_only() {
    use std::os::unix::fs::PermissionsExt;
    let p = Personalities::new();
    let ours = tempfile::tempdir().unwrap();
    std::fs::set_permissions(ours.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = ours.path().join("slirp4netns");
    std::os::unix::fs::symlink(nsnet_bin(), &link).unwrap();
    let ours = format!("--slirp4netns-binary={}", link.display());
    for (i, net) in [
        &["--net=slirp4netns"][..],
        &["--net=slirp4netns", &ours][..],
    ]
    .into_iter()
    .enumerate()
    {
        let port = 8080 + i;
        let url4 = format!("http://127.0.0.1:{port}");
        let url6 = format!("http://[::1]:{port}");
        let tcp = format!("0.0.0.0:{port}:80/tcp");
        let tcp4 = format!("0.0.0.0:{port}:80/tcp4");
        // "tcp" listens on v4 (slirp4netns's host forward is IPv4).
        test_port(&p, net, "slirp4netns", &url4, true, &["-p", &tcp]);
        test_port(&p, net, "slirp4netns", &url6, false, &["-p", &tcp]);
        // "tcp4" is strictly v4-only.
        test_port(&p, net, "slirp4netns", &url4, true, &["-p", &tcp4]);
        test_port(&p, net, "slirp4netns", &url6, false, &["-p", &tcp4]);
    }
}

/// An echo server on the world's loopback (one line back per line), for the child to reach
/// through its gateway.
fn loopback_line_echo() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut c, &mut buf) {
                    if n == 0 || std::io::Write::write_all(&mut c, &buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `--net=gvisor-tap-vsock --port-driver=gvisor-tap-vsock`, as Docker's and nerdctl's scripts
/// fall back to it: nsnet's own stack with that network's plan (10.0.2.100/24, gateway and
/// DNS 10.0.2.1, the gateway reaching the host's loopback, no IPv6), the builtin driver
/// publishing under the asked name, and `/v1/info` saying so.
#[test]
fn gvisor_tap_vsock_network_and_port_driver() {
    let p = Personalities::new();
    let port = loopback_line_echo();
    let script = format!(
        "cat /sys/class/net/tap0/mtu; ip -o -4 addr show tap0 | awk '{{print $4}}'; \
         ip route show default | cut -d' ' -f1-3; cat /etc/resolv.conf; \
         ip -o -6 addr show scope global | wc -l; \
         exec 3<>/dev/tcp/10.0.2.1/{port}; echo through-gvisor-plan >&3; head -n1 <&3; \
         curl -s --unix-socket \"$ROOTLESSKIT_STATE_DIR/api.sock\" http://rootlesskit/v1/info; echo; \
         rootlessctl add-ports 127.0.0.1:19380:80/tcp; rootlessctl list-ports"
    );
    let o = output(p.command("rootlesskit").args([
        "--net=gvisor-tap-vsock",
        "--port-driver=gvisor-tap-vsock",
        "--copy-up=/etc",
        "--disable-host-loopback=false",
        "bash",
        "-c",
        &script,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "65520",
            "10.0.2.100/24",
            "default via 10.0.2.1",
            "nameserver 10.0.2.1",
            "0",
            "through-gvisor-plan"
        ],
        "{out}"
    );
    let info = lines[6];
    let tail = r#","networkDriver":{"driver":"gvisor-tap-vsock","dns":["10.0.2.1"],"childIP":"10.0.2.100"},"portDriver":{"driver":"gvisor-tap-vsock","protos":["tcp","tcp4","tcp6","udp","udp4","udp6"],"extra":{"sourceIPTransparentBackend":"netlink"}}}"#;
    assert!(
        info.starts_with(&format!(
            r#"{{"apiVersion":"1.1.2","version":"3.2.0+nsnet.{}","stateDir":""#,
            env!("CARGO_PKG_VERSION")
        )) && info.ends_with(tail),
        "{info}"
    );
    assert_eq!(lines[7], "1", "{out}");
    let row: Vec<&str> = lines[9].split_whitespace().collect();
    assert_eq!(row, ["1", "tcp", "127.0.0.1", "19380", "80"], "{out}");
}

/// RootlessKit's own rule for that network, and the pesto port driver's: it needs
/// `--net=pasta`, and a pasta with the forwarding-table socket (Debian's has none).
#[test]
fn gvisor_tap_vsock_and_pesto_refusals_are_one_line() {
    let p = Personalities::new();
    for (args, want) in [
        (
            &["--net=gvisor-tap-vsock", "--ipv6", "true"][..],
            "[rootlesskit:parent] error: --ipv6 is not supported for gvisor-tap-vsock\n",
        ),
        (
            &["--net=slirp4netns", "--port-driver=pesto", "true"][..],
            "[rootlesskit:parent] error: port driver requires pasta network\n",
        ),
        (
            &[
                "--net=pasta",
                "--pasta-binary=/usr/bin/pasta",
                "--port-driver=pesto",
                "true",
            ][..],
            "[rootlesskit:parent] error: --port-driver=pesto: /usr/bin/pasta has no forwarding-table socket (-c, --conf-path) for the driver to edit; use nsnet's pasta personality (nsnet linked as pasta, given with --pasta-binary) or pasta from passt 2026_07_16 or later\n",
        ),
        (
            &["--net=none", "--source-ip-transparent-backend=bpf", "true"][..],
            "[rootlesskit:parent] error: unknown source-ip-transparent-backend: \"bpf\" (want auto, nft or iptables)\n",
        ),
    ] {
        let o = output(p.command("rootlesskit").args(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(errors(&o), want, "{args:?}");
    }
}
