//! `nsnet run`: the launcher, end to end, with real namespaces, as whichever user runs the
//! suite (scripts/test runs it as root and as an unprivileged user with subordinate ids).

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn maps_root_to_the_user_and_the_rest_to_subordinate_ids() {
    let o = output(nsnet().args([
        "run",
        "--",
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let parts: Vec<&str> = out.split("--\n").collect();
    let (uid_map, gid_map, full) = expected_maps();
    assert_eq!(normalise_map(parts[0]), uid_map);
    assert_eq!(normalise_map(parts[1]), gid_map);
    assert_eq!(parts[2].trim(), "0");
    let warned = stderr(&o).contains("no subordinate id ranges");
    assert_eq!(
        warned,
        !full,
        "warn exactly when falling back to a single-id map: {}",
        stderr(&o)
    );
}

#[test]
fn subid_source_static_matches_the_files() {
    let o = output(nsnet().args([
        "run",
        "--subid-source=static",
        "--",
        "cat",
        "/proc/self/uid_map",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(normalise_map(&stdout(&o)), expected_maps().0);
}

#[test]
fn default_command_reports_the_namespaces() {
    let o = output(nsnet().arg("run"));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("user") && l.ends_with("new")),
        "{out}"
    );
    // The default network is builtin: a new network namespace with tap0.
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("net") && l.ends_with("new")),
        "{out}"
    );
    assert!(out.contains("uid_map: 0 "), "{out}");
}

#[test]
fn copy_up_etc_is_writable_and_the_host_etc_is_untouched() {
    let probe = format!("/etc/nsnet-copyup-probe-{}", std::process::id());
    let script = format!(
        "set -e; echo written > {probe}; cat {probe}; test -L /etc/passwd; grep -q '^root:' /etc/passwd; \
         stat -c %a /etc"
    );
    let o = output(nsnet().args(["run", "--copy-up=/etc", "--", "sh", "-c", &script]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("written"));
    let host_mode = format!(
        "{:o}",
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata("/etc").unwrap().permissions())
            & 0o7777
    );
    assert_eq!(
        lines.next(),
        Some(host_mode.as_str()),
        "the tmpfs keeps /etc's mode"
    );
    assert!(
        !Path::new(&probe).exists(),
        "copy-up must not write to the host's /etc"
    );
}

#[test]
fn copy_up_of_tmp_is_refused_and_leaves_nothing() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let o = output(nsnet().args([
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        "--copy-up=/tmp",
        "--",
        "true",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "nsnet: error: /tmp cannot be copied up\n");
    assert!(!state.exists(), "a refused launch creates no state");
}

/// Propagation seen from inside: the world's `/` is shared, and a mount namespace owned by a
/// new user namespace turns shared mounts into slaves; rslave keeps the master link, rprivate
/// drops it.
#[test]
fn propagation_rslave_keeps_receiving_and_rprivate_does_not() {
    let world_root = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_line = world_root
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_line.contains("shared:"),
        "the test world's / must be shared (scripts/test makes it so): {root_line}"
    );
    let root_tags = |prop: &str| {
        let o = output(nsnet().args([
            "run",
            &format!("--propagation={prop}"),
            "--",
            "sh",
            "-c",
            "awk '$5 == \"/\" {print}' /proc/self/mountinfo",
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert!(root_tags("rslave").contains("master:"));
    let private = root_tags("rprivate");
    assert!(
        !private.contains("master:") && !private.contains("shared:"),
        "{private}"
    );
}

/// The RootlessKit integration script's check, which needs a mount on the host side: as
/// root the test makes one after the instance started and looks for it through
/// /proc/CHILD/root.
/// Unprivileged, nothing can be mounted on the host side, so scripts/test runs this one only
/// as root (the rootless half is propagation_rslave_keeps_receiving_and_rprivate_does_not).
#[test]
fn root_only_propagation_of_a_later_host_mount() {
    assert!(
        is_root(),
        "root-only test: scripts/test skips it for the unprivileged run"
    );
    for (prop, visible) in [("rslave", true), ("rprivate", false)] {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("state");
        let a = base.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("before_mount"), "").unwrap();
        let inst = start_sleeper(&state, &[&format!("--propagation={prop}")]);
        let pid = inst.child_pid();
        nix::mount::mount(
            Some("tmpfs"),
            &a,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(a.join("after_mount"), "").unwrap();
        let inside = Path::new(&format!("/proc/{pid}/root")).join(a.strip_prefix("/").unwrap());
        let seen_after = inside.join("after_mount").exists();
        let seen_before = inside.join("before_mount").exists();
        nix::mount::umount(&a).unwrap();
        drop(inst);
        assert_eq!(seen_after, visible, "{prop}: host mount visible inside");
        assert_eq!(
            seen_before, !visible,
            "{prop}: pre-mount file visible inside"
        );
    }
}

#[test]
fn detached_netns_is_reachable_while_the_command_stays_in_the_host_netns() {
    let host_net = own_ns("net");
    // The command stays until the test has looked: it says it is ready, then waits for a
    // line on the fifo $GO.
    let script = "readlink /proc/self/ns/net; \
        nsenter --net=\"$ROOTLESSKIT_STATE_DIR/netns\" readlink /proc/self/ns/net; \
        nsenter --net=\"$ROOTLESSKIT_STATE_DIR/netns\" ip -o link show; \
        echo \"$ROOTLESSKIT_STATE_DIR\"; echo ready > \"$READY\"; read _ < \"$GO\"";
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let go = base.path().join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let inst = Instance::run()
        .args(["--net=none", "--detach-netns"])
        .state_dir(&state)
        .env("GO", &go)
        .script(script)
        .start();
    // While it runs: from the host mount namespace $STATE/netns is a plain empty file, and
    // through the child's root it is the namespace itself.
    let pid = inst.child_pid();
    let host_view = std::fs::metadata(state.join("netns")).unwrap();
    assert!(host_view.is_file() && host_view.len() == 0);
    let via_child = format!("/proc/{pid}/root{}/netns", state.display());
    let magic = nix::sys::statfs::statfs(via_child.as_str())
        .unwrap()
        .filesystem_type();
    assert_eq!(magic, nix::sys::statfs::NSFS_MAGIC);
    let inode = std::fs::metadata(&via_child).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    std::fs::write(&go, "go\n").unwrap();
    let o = inst.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], host_net, "the command stays in the host netns");
    assert_ne!(lines[1], host_net);
    assert_eq!(lines[1], format!("net:[{}]", inode.unwrap()));
    let links: Vec<&str> = lines[2..lines.len() - 1].to_vec();
    assert_eq!(links.len(), 1, "only lo in the detached netns: {links:?}");
    assert!(
        links[0].contains(": lo:") && links[0].contains(",UP"),
        "{}",
        links[0]
    );
    assert!(!state.exists(), "state dir removed on exit");
}

#[test]
fn net_none_gives_only_lo_and_its_own_resolv_conf() {
    let script = "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
        ls /sys/class/net; cat /etc/resolv.conf; \
        test -f \"$ROOTLESSKIT_STATE_DIR/resolv.conf\" && test -f \"$ROOTLESSKIT_STATE_DIR/hosts\" && echo state-ok; \
        grep -q localhost /etc/hosts && echo hosts-ok";
    let o = output(nsnet().args([
        "run",
        "--net=none",
        "--copy-up=/etc",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "lo\nlo\n# nsnet: this network has no DNS server\nstate-ok\nhosts-ok\n"
    );
    assert!(
        !stderr(&o).contains("resolv.conf"),
        "no resolv.conf warning with /etc copied up: {}",
        stderr(&o)
    );
}

#[test]
fn pid_namespace_makes_the_child_init() {
    let o = output(nsnet().args([
        "run",
        "--pidns",
        "--",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("2"),
        "the command is PID 2, the child PID 1"
    );
    assert!(lines.next().unwrap().contains("(child)"));
}

#[test]
fn pid_namespace_reaper_collects_orphans() {
    // An orphaned grandchild exits while the command still runs; PID 1 must reap it.
    let script = "sh -c 'sleep 0.1 & exit 0'; sleep 0.6; \
        for s in /proc/[0-9]*/stat; do cut -d' ' -f3 \"$s\"; done | grep -c Z || true";
    let o = output(nsnet().args(["run", "--pidns", "--", "sh", "-c", script]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "0", "no zombies under the reaper");
}

#[test]
fn uts_ipc_and_cgroup_namespaces_on_request() {
    let script =
        "readlink /proc/self/ns/uts /proc/self/ns/ipc /proc/self/ns/cgroup /proc/self/ns/net";
    let o = output(nsnet().args([
        "run",
        "--net=host",
        "--utsns",
        "--ipcns",
        "--cgroupns",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    assert_ne!(got[0], own_ns("uts"));
    assert_ne!(got[1], own_ns("ipc"));
    assert_ne!(got[2], own_ns("cgroup"));
    assert_eq!(got[3], own_ns("net"));
    let o = output(nsnet().args(["run", "--", "readlink", "/proc/self/ns/uts"]));
    assert_eq!(stdout(&o).trim(), own_ns("uts"), "not unshared by default");
}

#[test]
fn exit_codes_pass_through() {
    for pidns in ["--pidns=false", "--pidns=true"] {
        for code in [0, 1, 42] {
            let o = output(nsnet().args(["run", pidns, "--", "sh", "-c", &format!("exit {code}")]));
            assert_eq!(o.status.code(), Some(code), "{pidns}: {}", stderr(&o));
            assert!(
                !stderr(&o).contains("error"),
                "nsnet run is quiet about a command's exit status: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn a_command_killed_by_a_signal_gives_128_plus_n_and_names_it() {
    for pidns in ["--pidns=false", "--pidns=true"] {
        let o = output(nsnet().args(["run", pidns, "--", "sh", "-c", "kill -TERM $$"]));
        assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
        assert_eq!(
            errors(&o),
            "nsnet: command killed by signal SIGTERM (terminated)\n"
        );
    }
}

#[test]
fn command_not_found_is_127_with_one_line() {
    let o = output(nsnet().args(["run", "--", "nsnet-no-such-command"]));
    assert_eq!(o.status.code(), Some(127));
    assert_eq!(errors(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(errors(&o).contains("cannot run nsnet-no-such-command"));
}

/// `nsnet run --state-dir=STATE EXTRA -- sleep 30`, ready once child_pid is written.
fn start_sleeper(state: &Path, extra: &[&str]) -> Instance {
    Instance::run()
        .state_dir(state)
        .args(extra)
        .command(["sleep", "30"])
        .ready(Ready::ChildPid)
        .start()
}

#[test]
fn signals_to_the_parent_reach_the_command() {
    for extra in [&[][..], &["--pidns"][..]] {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("state");
        let inst = start_sleeper(&state, extra);
        inst.signal(Signal::SIGTERM);
        let o = inst.wait();
        assert_eq!(o.status.code(), Some(143), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("SIGTERM"));
        assert!(!state.exists(), "state dir removed");
    }
}

#[test]
fn killing_the_parent_takes_the_child_and_command_down() {
    for extra in [&[][..], &["--pidns"][..]] {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("state");
        let inst = start_sleeper(&state, extra);
        let child = inst.child_pid();
        inst.signal(Signal::SIGKILL);
        inst.wait();
        assert!(
            wait_gone(child, Duration::from_secs(15)),
            "{extra:?}: child {child} outlived its parent"
        );
        // The command (the child's child) dies of its own PDEATHSIG, a moment after the
        // child: wait for every process that carries our state dir in its environment.
        let carries_state = |e: &std::fs::DirEntry| {
            std::fs::read(e.path().join("environ"))
                .map(|env| {
                    env.windows(state.as_os_str().len())
                        .any(|w| w == state.as_os_str().as_encoded_bytes())
                })
                .unwrap_or(false)
        };
        let survivors = || -> Vec<i32> {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().parse::<i32>().is_ok())
                .filter(carries_state)
                .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                .filter(|pid| !pid_gone(*pid))
                .collect()
        };
        let leftovers: Vec<i32> = survivors()
            .into_iter()
            .filter(|pid| !wait_gone(*pid, Duration::from_secs(15)))
            .collect();
        assert!(leftovers.is_empty(), "processes left behind: {leftovers:?}");
    }
}

#[test]
fn a_second_instance_on_the_same_state_dir_is_refused_and_a_restart_works() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    let first = start_sleeper(&state, &["--net=host"]);
    let child = first.child_pid();
    let o = output(nsnet().args([
        "run",
        "--net=host",
        "--state-dir",
        state.to_str().unwrap(),
        "--",
        "true",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("failed to lock"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(state.join("child_pid")).unwrap(),
        child.to_string(),
        "the refused instance leaves the running one's state alone"
    );
    // RootlessKit issue 220: after SIGKILL of the parent, a restart on the same dir works.
    first.signal(Signal::SIGKILL);
    first.wait();
    assert!(wait_gone(child, Duration::from_secs(15)));
    let o = output(nsnet().args([
        "run",
        "--state-dir",
        state.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "cat $ROOTLESSKIT_STATE_DIR/child_pid",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!state.exists());
}

#[test]
fn environment_and_state_files() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    // On the host network: no resolv.conf or hosts of our own in the state dir.
    let o = output(nsnet().args([
        "run",
        "--net=host",
        "--state-dir",
        state.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo $ROOTLESSKIT_STATE_DIR $ROOTLESSKIT_PARENT_EUID $ROOTLESSKIT_PARENT_EGID; \
         ls $ROOTLESSKIT_STATE_DIR | sort | tr '\\n' ' '; echo; env | grep -c _NSNET_ || true",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{} {uid} {gid}", state.display())
    );
    // child_pid and api.sock exist before the command starts.
    assert_eq!(lines.next(), Some("api.sock child_pid lock "));
    assert_eq!(lines.next(), Some("0"), "internal variables do not leak");
    assert!(!state.exists());
}

#[test]
fn the_default_state_dir_is_temporary() {
    let o = output(nsnet().args(["run", "--", "sh", "-c", "echo $ROOTLESSKIT_STATE_DIR"]));
    assert!(o.status.success());
    let dir = stdout(&o).trim().to_string();
    assert!(
        dir.starts_with(std::env::temp_dir().to_str().unwrap()),
        "{dir}"
    );
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
}

#[test]
fn socket_activation_descriptors_pass_through() {
    let (r, w) = nix::unistd::pipe().unwrap();
    let w_raw = w.as_raw_fd();
    let mut cmd = nsnet();
    cmd.args([
        "run",
        "--pidns",
        "--",
        "sh",
        "-c",
        "test \"$LISTEN_PID\" = $$ && echo \"fds=$LISTEN_FDS\" >&3",
    ])
    .env("LISTEN_FDS", "1")
    .env("LISTEN_PID", "1")
    .stdin(Stdio::null());
    // SAFETY: dup2 in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w_raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    drop(w);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got = String::new();
    // SAFETY: r is the read end we own.
    let mut f = std::fs::File::from(unsafe {
        OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(r))
    });
    f.read_to_string(&mut got).unwrap();
    assert_eq!(got, "fds=1\n");
}

/// Every invalid flag or combination: one line on stderr, a non-zero exit, no state left.
#[test]
fn invalid_flags_fail_with_one_line_and_leave_nothing() {
    let cases: &[&[&str]] = &[
        &["--net=bogus"],
        &["--mtu=70000"],
        &["--mtu=-1"],
        &["--net=none", "--cidr=10.0.2.100/24"],
        &["--net=none", "--cidr=nonsense"],
        &["--net=host", "--cidr=10.0.2.0/24"],
        &["--net=host", "--ifname=eth0"],
        &["--net=none", "--ifname=a/b"],
        &["--net=host", "--detach-netns"],
        &["--net=host", "-p", "8080:80/tcp"],
        &["--net=host", "--port-driver=builtin"],
        &["--port-driver=bogus"],
        &["--net=none", "--port-driver=slirp4netns"],
        &["--net=none", "--port-driver=implicit"],
        &["--propagation=bogus"],
        &["--propagation=rshared", "--copy-up=/etc"],
        &["--copy-up=/tmp"],
        &["--copy-up=relative"],
        &["--copy-up=/nonexistent-dir"],
        &["--copy-up-mode=overlay"],
        &["--reaper=true"],
        &["--reaper=maybe"],
        &["--evacuate-cgroup2=x"],
        &["--subid-source=ldap"],
        &["--slirp4netns-sandbox=perhaps"],
        &["--pidns=maybe"],
        &["--no-such-flag"],
    ];
    for case in cases {
        let base = tempfile::tempdir().unwrap();
        let state = base.path().join("state");
        let mut args = vec!["run", "--state-dir", state.to_str().unwrap()];
        args.extend_from_slice(case);
        args.extend_from_slice(&["--", "true"]);
        let o = output(nsnet().args(&args));
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{case:?} was accepted");
        assert_eq!(err.lines().count(), 1, "{case:?}: {err}");
        assert!(err.starts_with("nsnet: error: "), "{case:?}: {err}");
        assert!(!state.exists(), "{case:?} left {}", state.display());
    }
}

#[test]
fn drivers_of_later_issues_are_named_not_faked() {
    let o = output(nsnet().args(["run", "--net=vpnkit", "--", "true"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "nsnet: error: --net=vpnkit is not available in this nsnet build (available: host, none, builtin, slirp4netns, pasta, gvisor-tap-vsock)\n"
    );
}

#[test]
fn slirp4netns_gives_tap0_and_reaches_the_host_loopback_via_the_gateway() {
    let (port, _) = echo_server("127.0.0.1:0", Echo::Stream);
    let script = format!(
        "cat /sys/class/net/tap0/mtu; ip -o -4 addr show tap0 | awk '{{print $4}}'; \
         ip route show default | cut -d' ' -f1-3; cat /etc/resolv.conf; \
         exec 3<>/dev/tcp/10.0.2.2/{port}; echo through-slirp >&3; head -n1 <&3"
    );
    let o = output(nsnet().args([
        "run",
        "--net=slirp4netns",
        "--copy-up=/etc",
        "--",
        "bash",
        "-c",
        &script,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "65520\n10.0.2.100/24\ndefault via 10.0.2.2\nnameserver 10.0.2.3\nthrough-slirp\n"
    );
}

#[test]
fn slirp4netns_with_a_detached_netns_and_published_port() {
    let script = "nsenter --net=\"$ROOTLESSKIT_STATE_DIR/netns\" sh -c \
        'ip -o -4 addr show tap0 | awk \"{print \\$4}\"'";
    let o = output(nsnet().args([
        "run",
        "--net=slirp4netns",
        "--detach-netns",
        "--port-driver=builtin",
        "-p",
        "127.0.0.1:19280:80/tcp",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "10.0.2.100/24\n");
}

/// `nsnet run`'s default (builtin network, no copy-up) launches without RootlessKit's two
/// advisory warnings; the rootlesskit personality keeps them.
#[test]
fn the_default_launch_is_quiet_and_rootlesskit_keeps_its_warnings() {
    let o = output(nsnet().args(["run", "--", "true"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        !err.contains("--disable-host-loopback") && !err.contains("resolv.conf"),
        "{err}"
    );
    let p = Personalities::new();
    let o = output(p.command("rootlesskit").args(["--net=slirp4netns", "true"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("specifying --disable-host-loopback is highly recommended"),
        "{}",
        stderr(&o)
    );
}
