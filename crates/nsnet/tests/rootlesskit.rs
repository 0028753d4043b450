//! The `rootlesskit` personality against RootlessKit's observable behaviour: the checks of
//! RootlessKit's own hack/integration-exit-code.sh, -restart.sh and -pdeathsig.sh, its help
//! and version output, and its error lines.

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
}

#[test]
fn version_and_semver() {
    let p = Personalities::new();
    let o = output(p.command("rootlesskit").arg("--version"));
    assert!(
        stdout(&o).starts_with("rootlesskit version 2."),
        "{}",
        stdout(&o)
    );
    let semver: Vec<String> = ["major", "minor", "patch"]
        .iter()
        .map(|c| {
            let o = output(p.command("rootlesskit").args(["--print-semver", c]));
            assert!(o.status.success());
            stdout(&o).trim().to_string()
        })
        .collect();
    assert!(stdout(&o).contains(&semver.join(".")));
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
