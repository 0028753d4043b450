//! Debian's Podman 4.3, rootless as `nsnet-test`, with nsnet as its slirp4netns
//! (`network_cmd_path` in containers.conf), runtime runc, and a busybox image imported from
//! `/usr/bin/busybox`: a container reaches a server on this world's loopback through
//! 10.0.2.2, and a published port (`port_handler=slirp4netns`, so through the API socket)
//! reaches a server in a container.
//!
//! Everything Podman writes goes under one temporary directory (XDG_RUNTIME_DIR, HOME,
//! storage with `--storage-driver vfs`, containers.conf); the pause process and containers
//! are stopped by PID and `podman rm -f` when the test ends.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "nsnet-test";

struct Podman {
    base: PathBuf,
    _dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        world();
        // Podman's pause process and conmon daemonise: as their subreaper this test reaps
        // them instead of leaving zombies to the machine's init.
        // SAFETY: plain prctl.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let dir = tempfile::Builder::new()
            .prefix("nsnet-podman")
            .tempdir_in("/tmp")
            .unwrap();
        let base = dir.path().to_path_buf();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in [
            "run",
            "home",
            "config",
            "storage",
            "runroot",
            "bin",
            "rootfs/bin",
            "rootfs/www",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::set_permissions(base.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        // The image: busybox and a page for its httpd.
        std::fs::copy("/usr/bin/busybox", base.join("rootfs/bin/busybox")).unwrap();
        for a in ["sh", "nc", "httpd", "echo", "cat"] {
            std::os::unix::fs::symlink("busybox", base.join("rootfs/bin").join(a)).unwrap();
        }
        std::fs::write(
            base.join("rootfs/www/index.html"),
            "hello from the container\n",
        )
        .unwrap();
        // Owned by the image's root, which is the user itself outside: removable afterwards.
        let o = output(
            Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(base.join("rootfs"))
                .arg("-cf")
                .arg(base.join("rootfs.tar"))
                .arg("."),
        );
        assert!(o.status.success(), "tar: {}", stderr(&o));
        // nsnet as slirp4netns, through a wrapper that records how Podman calls it.
        let wrapper = base.join("bin/slirp4netns");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/bash\necho \"$*\" >> {log}\nexec -a slirp4netns {nsnet} \"$@\"\n",
                log = base.join("calls.log").display(),
                nsnet = nsnet_bin().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            base.join("containers.conf"),
            format!(
                r#"[containers]
netns = "slirp4netns"

[engine]
network_cmd_path = "{}"
network_cmd_options = ["allow_host_loopback=true", "port_handler=slirp4netns"]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"#,
                wrapper.display()
            ),
        )
        .unwrap();
        std::fs::write(
            base.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/runroot\"\n",
                base.display()
            ),
        )
        .unwrap();
        if is_root() {
            let o = output(Command::new("chown").args(["-R", USER]).arg(&base));
            assert!(o.status.success(), "chown: {}", stderr(&o));
        }
        Podman { base, _dir: dir }
    }

    /// `podman ARGS` as the test user, with every path under the test's directory.
    fn cmd(&self, args: &[&str]) -> Command {
        let b = self.base.display();
        let env = [
            format!("XDG_RUNTIME_DIR={b}/run"),
            format!("HOME={b}/home"),
            format!("XDG_CONFIG_HOME={b}/config"),
            format!("CONTAINERS_CONF={b}/containers.conf"),
            format!("CONTAINERS_STORAGE_CONF={b}/storage.conf"),
        ];
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", USER, "--", "env"]);
            c.args(&env);
            c.arg("podman");
            c
        } else {
            let mut c = Command::new("env");
            c.args(&env);
            c.arg("podman");
            c
        };
        c.current_dir("/");
        c.arg(format!("--root={b}/storage"))
            .arg(format!("--runroot={b}/runroot"))
            .arg("--storage-driver=vfs")
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let o = output(&mut self.cmd(args));
        assert!(
            o.status.success(),
            "podman {args:?}: {:?}\nstdout: {}\nstderr: {}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        o
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.base.join("calls.log")).unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = output(&mut self.cmd(&["rm", "-f", "-t", "0", "-a"]));
        // Rootless Podman leaves its pause process (catatonit) holding the user namespace.
        let pidfile = self.base.join("run/libpod/tmp/pause.pid");
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Reap what daemonised under us (the pause process, conmon), for up to 5 s.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            // SAFETY: reaping our own (adopted) children.
            let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
            if r < 0 {
                break; // no children left
            }
            if r == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The directory goes with `_dir`; as root, whatever a container created is removable.
        if !is_root() {
            let _ = Command::new("chmod")
                .args(["-R", "u+rwX"])
                .arg(&self.base)
                .status();
        }
    }
}

#[test]
fn rootless_podman_uses_nsnet_as_slirp4netns_outbound_and_published_ports() {
    assert!(
        Path::new("/usr/bin/podman").exists(),
        "podman is not installed (scripts/test installs it)"
    );
    let p = Podman::new();
    p.run(&[
        "import",
        &p.base.join("rootfs.tar").display().to_string(),
        "localhost/nsnet-bb",
    ]);

    // Outbound: a server on this world's loopback, reached as 10.0.2.2.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping\n");
        c.write_all(b"pong from the host\n").unwrap();
    });
    let o = p.run(&[
        "run",
        "--rm",
        "localhost/nsnet-bb",
        "sh",
        "-c",
        &format!("echo ping | nc 10.0.2.2 {port}"),
    ]);
    assert_eq!(stdout(&o), "pong from the host\n");
    server.join().unwrap();

    // A published port, through the API socket.
    let hp = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    p.run(&[
        "run",
        "-d",
        "--name",
        "nsnet-web",
        "-p",
        &format!("127.0.0.1:{hp}:80"),
        "localhost/nsnet-bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let reply = http_get(hp, Duration::from_secs(10), |s| !s.is_empty());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("hello from the container\n"), "{reply}");

    // How Podman called nsnet: its feature probe, then with the flags it found.
    let calls = p.calls();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.first(), Some(&"--help"), "{calls}");
    let run = lines
        .iter()
        .rev()
        .find(|l| l.contains("--api-socket"))
        .expect(&calls);
    for flag in [
        "--enable-sandbox",
        "--enable-seccomp",
        "-c -e 3 -r 4",
        "--netns-type=path",
    ] {
        assert!(run.contains(flag), "{flag} in {run}");
    }
    assert!(!calls.contains("--disable-host-loopback"), "{calls}");
    p.run(&["rm", "-f", "-t", "0", "nsnet-web"]);
}
