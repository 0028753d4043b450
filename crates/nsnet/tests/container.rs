//! `nsnet container`: busybox containers run by runc inside an nsnet instance that the front
//! end starts on first use, networked by the OCI hooks on the default bridge. The seed
//! scenario end to end (httpd published on the world's loopback), exec, two containers talking,
//! images built by the test (OCI layout, docker archive with a whiteout), a crash, and bad
//! input. Each test stops everything it started: its containers, then the instance, by PID.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const APPLETS: &[&str] = &[
    "sh", "httpd", "ip", "wget", "sleep", "cat", "echo", "hostname", "ls", "true",
];

/// A busybox-static root filesystem in `dir`.
fn busybox_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::copy("/usr/bin/busybox", dir.join("bin/busybox"))
        .expect("/usr/bin/busybox (Debian package busybox-static)");
    for a in APPLETS {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    std::fs::write(dir.join("www/index.html"), "hello from nsnet\n").unwrap();
}

/// The test's own data and runtime dirs, so that the default instance and the containers are
/// this test's alone.
struct Env {
    data: tempfile::TempDir,
    run: tempfile::TempDir,
    rootfs: tempfile::TempDir,
    /// Without XDG_RUNTIME_DIR (a login without a systemd user session): `run` is $TMPDIR.
    no_xdg: bool,
}

impl Env {
    fn new() -> Env {
        world();
        let e = Env {
            data: tempfile::tempdir().unwrap(),
            run: tempfile::tempdir().unwrap(),
            rootfs: tempfile::tempdir().unwrap(),
            no_xdg: false,
        };
        busybox_rootfs(e.rootfs.path());
        e
    }

    fn without_xdg_runtime_dir() -> Env {
        let mut e = Env::new();
        e.no_xdg = true;
        e
    }

    /// Where the default instance lives: `$XDG_RUNTIME_DIR/nsnet`, else `$TMPDIR/nsnet-UID`.
    fn base(&self) -> PathBuf {
        if self.no_xdg {
            self.run
                .path()
                .join(format!("nsnet-{}", nix::unistd::geteuid()))
        } else {
            self.run.path().join("nsnet")
        }
    }

    /// Any nsnet command, in this test's environment.
    fn nsnet(&self) -> Command {
        let mut c = nsnet();
        c.env("XDG_DATA_HOME", self.data.path());
        if self.no_xdg {
            c.env_remove("XDG_RUNTIME_DIR")
                .env("TMPDIR", self.run.path());
        } else {
            c.env("XDG_RUNTIME_DIR", self.run.path());
        }
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.nsnet();
        c.arg("container").args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        output(&mut self.cmd(args))
    }

    /// Runs and asserts success; returns stdout.
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

    /// `run -d --name NAME [-p PUBLISH]` of busybox's httpd serving /www on port 80;
    /// returns what run printed (the id).
    fn run_httpd(&self, name: &str, publish: Option<&str>) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        if let Some(p) = publish {
            args.extend(["-p", p]);
        }
        args.extend(["--rootfs", self.rootfs(), "--"]);
        args.extend(["httpd", "-f", "-p", "80", "-h", "/www"]);
        self.ok(&args)
    }

    fn state_dir(&self) -> PathBuf {
        self.base().join("default")
    }

    fn instance_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.base().join("default.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The inode of the instance's child netns (reached through its child's root).
    fn child_netns_inode(&self) -> u64 {
        let child: i32 = std::fs::read_to_string(self.state_dir().join("child_pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let p = format!(
            "/proc/{child}/root{}",
            self.state_dir().join("netns").display()
        );
        std::fs::metadata(&p).unwrap().ino()
    }

    /// A command in the instance's child netns.
    fn in_child(&self, cmd: &[&str]) -> String {
        let mut c = nsnet();
        c.args(["ns", "exec", "--child", "--state-dir"])
            .arg(self.state_dir())
            .arg("--")
            .args(cmd);
        let o = output(&mut c);
        assert!(o.status.success(), "{cmd:?} in the child: {}", stderr(&o));
        stdout(&o)
    }

    /// The addresses the bridge's IPAM has handed out.
    fn allocations(&self) -> Vec<String> {
        match std::fs::read_dir(self.data.path().join("nsnet/ipam/bridge")) {
            Err(_) => Vec::new(),
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                .collect(),
        }
    }

    fn containers_dir_entries(&self) -> Vec<String> {
        match std::fs::read_dir(self.data.path().join("nsnet/containers")) {
            Err(_) => Vec::new(),
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Containers first (they outlive the instance otherwise), then the instance.
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

/// An HTTP/1.0 GET of `/` on 127.0.0.1:port, retried while the server starts.
fn get_index(port: u16) -> String {
    http_get(port, Duration::from_secs(10), |b| b.contains("200 OK"))
}

fn ns_inode(pid: i32) -> u64 {
    let l = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let s = l.to_string_lossy();
    s.trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

#[test]
fn seed_scenario_httpd_published_inspected_execed_and_removed_without_trace() {
    let env = Env::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = env.run_httpd("web", Some(&publish));
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the id: {id:?}");

    // curl from the host side of the world.
    let page = get_index(port);
    assert!(page.ends_with("hello from nsnet\n"), "{page}");

    let ps = env.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{ps}");
    }
    let row = ps.lines().find(|l| l.starts_with(&id[..12])).expect(&ps);
    assert!(row.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert!(
        row.contains("Up ") && row.trim_end().ends_with("web"),
        "{ps}"
    );

    let pid: i32 = env
        .ok(&["inspect", "--format", "{{.State.Pid}}", "web"])
        .trim()
        .parse()
        .unwrap();
    let child = env.child_netns_inode();
    assert_ne!(ns_inode(pid), child, "the container has its own netns");
    assert_ne!(ns_inode(pid), ns_inode(std::process::id() as i32));
    let ip = env.ok(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        &id[..8],
    ]);
    let ip: Ipv4Addr = ip.trim().parse().unwrap();
    assert_eq!(ip.octets()[..3], [10, 4, 0]);
    let full: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "web"])).unwrap();
    assert_eq!(full[0]["State"]["Status"], "running");
    assert_eq!(
        full[0]["NetworkSettings"]["SandboxKey"],
        format!("/proc/{pid}/ns/net")
    );
    assert_eq!(
        full[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string()
    );

    let ipa = env.ok(&["exec", "web", "ip", "a"]);
    assert!(ipa.contains("eth0"), "{ipa}");
    assert!(ipa.contains(&format!("inet {ip}/24")), "{ipa}");
    let etc = env.ok(&[
        "exec",
        "web",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/hostname",
    ]);
    assert!(etc.contains("nameserver 10.0.2.3"), "{etc}");
    assert!(etc.contains(&format!("{ip}\t{}", &id[..12])), "{etc}");

    // The veth's host end is on nerdctl0 in the child netns.
    let links = env.in_child(&["ip", "-o", "link"]);
    assert!(
        links.lines().any(|l| l.contains("master nerdctl0")),
        "{links}"
    );
    assert_eq!(env.allocations(), vec![ip.to_string()]);
    // `nsnet ns` knows the container by name: its role, the veth pair, and `ns exec NAME`.
    let mut ns = nsnet();
    ns.env("XDG_DATA_HOME", env.data.path()).args(["ns", "net"]);
    let net = stdout(&output(&mut ns));
    // Named as the engine names it: nsnet/NAME (short id).
    let label = format!("nsnet/web ({})", &id[..12]);
    assert!(net.contains(&format!("container  {label}")), "{net}");
    assert!(
        net.contains(&format!(
            "port of nerdctl0; veth peer eth0 in container {label}"
        )),
        "{net}"
    );
    let mut ns = nsnet();
    ns.env("XDG_DATA_HOME", env.data.path()).args([
        "ns", "exec", "web", "--", "ip", "-o", "-4", "addr", "show", "eth0",
    ]);
    let o = output(&mut ns);
    assert!(
        stdout(&o).contains(&format!("inet {ip}/24")),
        "{}",
        stderr(&o)
    );

    assert_eq!(env.ok(&["stop", "-t", "2", "web"]).trim(), "web");
    assert!(wait_gone(pid, Duration::from_secs(5)));
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited ("), "{ps}");
    assert_eq!(env.ok(&["rm", "web"]).trim(), "web");
    // No process, link, address, IPAM record, published port or state left.
    assert!(env.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(env.containers_dir_entries().is_empty());
    assert!(env.allocations().is_empty(), "{:?}", env.allocations());
    let links = env.in_child(&["ip", "-o", "link"]);
    assert!(!links.contains("master nerdctl0"), "{links}");
    let addrs = env.in_child(&["ip", "-o", "-4", "addr"]);
    assert!(!addrs.contains(&format!("inet {ip}/")), "{addrs}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn two_containers_talk_by_ip_and_a_foreground_run_exits_with_its_code() {
    let env = Env::new();
    env.run_httpd("server", None);
    let ip = env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "server"]);
    let url = format!("http://{}/index.html", ip.trim());
    // Retry inside: httpd may still be starting.
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1"
    );
    let got = env.ok(&[
        "run",
        "--rm",
        "--name",
        "client",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(got, "hello from nsnet\n");
    // The default instance keeps the user's loopback closed to containers (as rootless
    // Docker does): a server on this world's 127.0.0.1 is not reached through 10.0.2.2.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://10.0.2.2:{}/", host.local_addr().unwrap().port());
    // It answers, so that only a closed path can make the fetch fail.
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in host.incoming().flatten() {
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nopen\n");
        }
    });
    let o = env.out(&[
        "run",
        "--rm",
        "--rootfs",
        env.rootfs(),
        "--",
        // (No -T: busybox-static's wget crashes with a timeout set.)
        "wget",
        "-q",
        "-O",
        "-",
        &url,
    ]);
    assert!(
        !o.status.success() && !stdout(&o).contains("open"),
        "reached host loopback: {}",
        stdout(&o)
    );
    // --rm removed the client; its address is free again.
    assert_eq!(env.allocations().len(), 1);
    let o = env.out(&[
        "run",
        "--network",
        "none",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (7)"), "{ps}");
    assert!(!ps.contains("client"), "{ps}");
}

/// `run -it` and `exec -it` under a real terminal (`script` gives the front end a pty, as a
/// user's terminal would): the container's stdin/stdout are a terminal of its own, and the
/// exit code comes back through it.
#[test]
fn run_it_and_exec_it_give_the_container_a_terminal() {
    let env = Env::new();
    let under_pty = |args: &[&str]| -> Output {
        let mut line = format!("exec {}", nsnet_bin().display());
        for a in ["container"].iter().chain(args) {
            line.push_str(&format!(" '{a}'"));
        }
        output(
            Command::new("script")
                .args(["-q", "-e", "-c", &line, "/dev/null"])
                .env("XDG_DATA_HOME", env.data.path())
                .env("XDG_RUNTIME_DIR", env.run.path()),
        )
    };
    let o = under_pty(&[
        "run",
        "-it",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "/bin/busybox tty; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("/dev/pts/"), "{}", stdout(&o));
    env.ok(&[
        "run",
        "-d",
        "--name",
        "idle",
        "--network",
        "none",
        "--rootfs",
        env.rootfs(),
        "--",
        "sleep",
        "1000",
    ]);
    let o = under_pty(&[
        "exec",
        "-it",
        "idle",
        "sh",
        "-c",
        "/bin/busybox tty; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("/dev/pts/"), "{}", stdout(&o));
    // Without -t the same command has no terminal.
    let o = env.out(&["exec", "idle", "sh", "-c", "/bin/busybox tty; exit 0"]);
    assert!(
        stdout(&o).contains("not a tty"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    env.ok(&["rm", "-f", "idle"]);
    // Detached with -t: the terminal is the monitor's pty, its output goes to the log.
    env.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "tty",
        "--network",
        "none",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "/bin/busybox tty; echo hello; sleep 1000",
    ]);
    let mut logs = String::new();
    for _ in 0..100 {
        logs = env.ok(&["logs", "tty"]);
        if logs.contains("hello") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        logs.contains("/dev/pts/") && logs.contains("hello\r\n"),
        "{logs:?}"
    );
    env.ok(&["rm", "-f", "tty"]);
}

fn sha256(path: &Path) -> String {
    let o = output(Command::new("sha256sum").arg(path));
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

/// A tar.gz of `root` (through the system tar: an image is a plain archive).
fn tar_gz(root: &Path, out: &Path, gzip: bool) {
    let flag = if gzip { "-czf" } else { "-cf" };
    let o = output(
        Command::new("tar")
            .arg("--numeric-owner")
            .arg(flag)
            .arg(out)
            .arg("-C")
            .arg(root)
            .arg("."),
    );
    assert!(o.status.success(), "tar: {}", stderr(&o));
}

fn blob(layout: &Path, file: &Path) -> (String, u64) {
    let d = sha256(file);
    let size = std::fs::metadata(file).unwrap().len();
    std::fs::rename(file, layout.join("blobs/sha256").join(&d)).unwrap();
    (d, size)
}

#[test]
fn an_oci_image_layout_built_by_the_test_runs_with_its_config() {
    let env = Env::new();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = t.path().join("layer.tar.gz");
    tar_gz(env.rootfs.path(), &layer, true);
    let (ld, ls) = blob(&layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "GREETING=from-the-image"], "Cmd": ["sh", "-c", "echo $GREETING in $(pwd)"], "WorkingDir": "/www"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{ld}")]}
    });
    let cfile = t.path().join("config.json");
    std::fs::write(&cfile, config.to_string()).unwrap();
    let (cd, cs) = blob(&layout, &cfile);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{ld}"), "size": ls}]
    });
    let mfile = t.path().join("manifest.json");
    std::fs::write(&mfile, manifest.to_string()).unwrap();
    let (md, ms) = blob(&layout, &mfile);
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"), "size": ms}]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let out = env.ok(&["run", "--rm", layout.to_str().unwrap()]);
    assert_eq!(out, "from-the-image in /www\n");
    // -e and a command override the image's.
    let out = env.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=given",
        "-w",
        "/",
        layout.to_str().unwrap(),
        "sh",
        "-c",
        "echo $GREETING in $(pwd)",
    ]);
    assert_eq!(out, "given in /\n");
    assert!(env.containers_dir_entries().is_empty());
}

#[test]
fn a_docker_archive_with_a_whiteout_runs_without_the_deleted_file() {
    let env = Env::new();
    let t = tempfile::tempdir().unwrap();
    let arch = t.path().join("arch");
    std::fs::create_dir_all(arch.join("l1")).unwrap();
    std::fs::create_dir_all(arch.join("l2")).unwrap();
    std::fs::write(env.rootfs.path().join("www/secret"), "lower").unwrap();
    tar_gz(env.rootfs.path(), &arch.join("l1/layer.tar"), false);
    let upper = t.path().join("upper");
    std::fs::create_dir_all(upper.join("www")).unwrap();
    std::fs::write(upper.join("www/.wh.secret"), "").unwrap();
    std::fs::write(upper.join("www/added"), "upper").unwrap();
    tar_gz(&upper, &arch.join("l2/layer.tar"), false);
    std::fs::write(
        arch.join("config.json"),
        r#"{"config":{"Cmd":["ls","/www"],"Env":["PATH=/bin"]}}"#,
    )
    .unwrap();
    std::fs::write(
        arch.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["test:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
    )
    .unwrap();
    let archive = t.path().join("image.tar");
    tar_gz(&arch, &archive, false);
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(out, "added\nindex.html\n");
}

#[test]
fn a_crashed_container_reads_as_exited_and_rm_cleans_its_network() {
    let env = Env::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    env.run_httpd("doomed", Some(&publish));
    get_index(port);
    let pid: i32 = env
        .ok(&["inspect", "-f", "{{.State.Pid}}", "doomed"])
        .trim()
        .parse()
        .unwrap();
    // Kill the monitor and runc first, so that no postStop hook runs: a crash.
    let id = env.ok(&["ps", "-q", "--no-trunc"]).trim().to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            env.data
                .path()
                .join("nsnet/containers")
                .join(&id)
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
    let kids = std::fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children"))
        .unwrap_or_default();
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(monitor), Signal::SIGKILL).unwrap();
    for k in kids.split_whitespace() {
        let _ = kill(Pid::from_raw(k.parse().unwrap()), Signal::SIGKILL);
    }
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert!(wait_gone(monitor, Duration::from_secs(5)));
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (unknown)"), "{ps}");
    assert_eq!(env.allocations().len(), 1, "the crash left its address");
    assert_eq!(env.ok(&["rm", "doomed"]).trim(), "doomed");
    assert!(env.allocations().is_empty());
    let ports = output(
        nsnet()
            .args(["port", "--state-dir"])
            .arg(env.state_dir())
            .args(["ls", "--json"]),
    );
    assert_eq!(stdout(&ports).trim(), "[]", "{}", stderr(&ports));
    assert!(env.containers_dir_entries().is_empty());
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "/nonexistent/image"], "no such file"),
        (&["run", "-p", "80", "--rootfs", "/", "true"], "-p \"80\""),
        (
            &["run", "--rootfs", "/nonexistent", "true"],
            "--rootfs /nonexistent",
        ),
        (
            &[
                "run",
                "--network",
                "none",
                "-p",
                "8080:80",
                "--rootfs",
                "/",
                "true",
            ],
            "bridge network",
        ),
        (&["rm", "nope"], "no such container: nope"),
        (&["inspect", "nope"], "no such container: nope"),
        (
            &[
                "run",
                "--runtime",
                "/nonexistent/runc",
                "--rootfs",
                "/",
                "true",
            ],
            "runtime /nonexistent/runc",
        ),
    ];
    for (args, want) in cases {
        let o = env.out(args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(
        env.instance_pid().is_none(),
        "bad input started no instance"
    );
    assert!(env.containers_dir_entries().is_empty());
}

#[test]
fn an_unknown_network_fails_the_start_with_the_hooks_reason_and_leaves_nothing() {
    let env = Env::new();
    for detach in [true, false] {
        let mut args = vec!["run", "--network", "nosuch", "--rootfs", env.rootfs()];
        if detach {
            args.insert(1, "-d");
        }
        args.extend(["--", "sleep", "10"]);
        let o = env.out(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("network nosuch not found"), "{err}");
        assert!(env.containers_dir_entries().is_empty(), "{args:?}");
        assert!(env.allocations().is_empty());
        assert!(env.ok(&["ps", "-aq"]).trim().is_empty());
    }
    // A detached command that exits at once still ran: its id, then Exited (3).
    let id = env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "echo out; exit 3",
    ]);
    let t0 = Instant::now();
    while !env.ok(&["ps", "-a"]).contains("Exited (3)") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{}",
            env.ok(&["ps", "-a"])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(env.ok(&["logs", id.trim()]), "out\n");
}

#[test]
fn without_xdg_runtime_dir_port_network_and_ns_find_the_default_instance() {
    // The default instance then lives under $TMPDIR/nsnet-UID; every front end must look
    // there, as `nsnet container run` does when it starts it.
    let env = Env::without_xdg_runtime_dir();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    env.run_httpd("web", Some(&publish));
    assert!(
        env.state_dir().join("child_pid").exists(),
        "the default instance is under $TMPDIR/nsnet-UID"
    );
    assert!(get_index(port).contains("hello from nsnet"));
    let ls = output(env.nsnet().args(["port", "ls", "--json"]));
    assert!(ls.status.success(), "nsnet port ls: {}", stderr(&ls));
    let ports: serde_json::Value = serde_json::from_str(&stdout(&ls)).unwrap();
    assert_eq!(
        ports[0]["spec"]["parentPort"].as_u64(),
        Some(port as u64),
        "{ports}"
    );
    let nets = output(env.nsnet().args(["network", "ls"]));
    assert!(
        nets.status.success() && stdout(&nets).contains("bridge"),
        "nsnet network ls: {}{}",
        stdout(&nets),
        stderr(&nets)
    );
    let ip = output(
        env.nsnet()
            .args(["ns", "exec", "--child", "--", "ip", "-o", "link"]),
    );
    assert!(
        ip.status.success() && stdout(&ip).contains("nerdctl0"),
        "nsnet ns exec --child: {}{}",
        stdout(&ip),
        stderr(&ip)
    );
}

#[test]
fn a_stale_state_directory_is_reported_not_joined() {
    // A crash leaves child_pid behind; the lock it held is gone with the process.
    let env = Env::new();
    let dir = env.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("child_pid"), std::process::id().to_string()).unwrap();
    std::fs::write(dir.join("lock"), "").unwrap();
    for args in [
        &["port", "ls"][..],
        &["network", "ls"][..],
        &[
            "ns",
            "exec",
            "--child",
            "--state-dir",
            dir.to_str().unwrap(),
            "--",
            "true",
        ][..],
    ] {
        let mut c = env.nsnet();
        if args[0] != "ns" {
            c.arg(args[0]).arg("--state-dir").arg(&dir).args(&args[1..]);
        } else {
            c.args(args);
        }
        let o = output(&mut c);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: one line: {e}");
        assert!(
            e.contains("not running") || e.contains("no running"),
            "{args:?}: {e}"
        );
    }
}

/// A root filesystem the user cannot write, as one unpacked by root is: `/usr` (root-owned,
/// 0755, with busybox-static's `/usr/bin/busybox`; no `/proc`, `/dev` or `/sys`). In
/// the instance's user namespace its files belong to the overflow uid, on which even root
/// there has no DAC override. Root's instance maps real root, so in the root pass the same tree
/// is made read-only another way: a read-only bind mount, unmounted on drop.
struct ReadOnlyRootfs {
    path: PathBuf,
    _mnt: Option<tempfile::TempDir>,
}

impl ReadOnlyRootfs {
    fn new() -> ReadOnlyRootfs {
        use nix::mount::{MsFlags, mount};
        if !is_root() {
            let m = std::fs::metadata("/usr").unwrap();
            assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o755));
            return ReadOnlyRootfs {
                path: "/usr".into(),
                _mnt: None,
            };
        }
        let d = tempfile::tempdir().unwrap();
        mount(
            Some("/usr"),
            d.path(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let r = ReadOnlyRootfs {
            path: d.path().to_path_buf(),
            _mnt: Some(d),
        };
        mount(
            None::<&str>,
            &r.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        r
    }
}

impl Drop for ReadOnlyRootfs {
    fn drop(&mut self) {
        if self._mnt.is_some() {
            nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
    }
}

/// Names of a directory's entries, sorted (what a container might have added to it).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Lines of the instance's mount table that name the containers' data directory.
fn container_mounts(env: &Env) -> Vec<String> {
    let child = std::fs::read_to_string(env.state_dir().join("child_pid")).unwrap();
    let table = std::fs::read_to_string(format!("/proc/{}/mountinfo", child.trim())).unwrap();
    let data = env.data.path().to_string_lossy().into_owned();
    table
        .lines()
        .filter(|l| l.contains(&data))
        .map(String::from)
        .collect()
}

/// Runs a container on `rootfs` (whose busybox is `busybox`) detached, then in the foreground
/// with --rm, and checks what they see and that nothing is left: not in the rootfs, not in the
/// data directory, not in the instance's mount table.
fn run_leaving_the_rootfs_as_it_was(env: &Env, rootfs: &Path, busybox: &str) {
    let before = entries(rootfs);
    let r = rootfs.to_str().unwrap();
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--hostname",
        "boxhost",
        "--rootfs",
        r,
        "--",
        busybox,
        "sleep",
        "30",
    ]);
    assert_eq!(
        container_mounts(env).len(),
        1,
        "{:?}",
        container_mounts(env)
    );
    let out = env.ok(&[
        "exec",
        "box",
        busybox,
        "sh",
        "-c",
        "cat /etc/hostname; echo written > /new; cat /new; grep boxhost /etc/hosts",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("boxhost"), "{out}");
    assert_eq!(lines.next(), Some("written"), "{out}");
    let ip = env.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "box"]);
    assert_eq!(
        lines.next(),
        Some(format!("{}\tboxhost", ip.trim()).as_str()),
        "{out}"
    );
    assert_eq!(env.ok(&["rm", "-f", id.trim()]).trim(), id.trim());
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        r,
        "--",
        busybox,
        "sh",
        "-c",
        "cat /new 2>/dev/null; echo fresh > /new; cat /new",
    ]);
    assert_eq!(
        out, "fresh\n",
        "a new container starts from the rootfs as it was"
    );
    assert_eq!(entries(rootfs), before, "the rootfs was written");
    assert!(env.containers_dir_entries().is_empty());
    assert!(
        container_mounts(env).is_empty(),
        "{:?}",
        container_mounts(env)
    );
}

#[test]
fn a_writable_rootfs_is_run_on_an_overlay_and_left_as_it_was() {
    let env = Env::new();
    let etc = entries(&env.rootfs.path().join("etc"));
    run_leaving_the_rootfs_as_it_was(&env, env.rootfs.path(), "/bin/busybox");
    assert_eq!(
        entries(&env.rootfs.path().join("etc")),
        etc,
        "mount targets in /etc"
    );
}

#[test]
fn a_rootfs_the_user_cannot_write_runs() {
    let env = Env::new();
    let ro = ReadOnlyRootfs::new();
    let c = std::ffi::CString::new(ro.path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_ne!(
        unsafe { libc::access(c.as_ptr(), libc::W_OK) },
        0,
        "writable"
    );
    run_leaving_the_rootfs_as_it_was(&env, &ro.path, "/bin/busybox");
}

/// Processes whose command line is `argv` (the container's own, which runc starts with the
/// OCI spec's environment, not ours), after waiting up to 10 s for them to go.
fn running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let t0 = Instant::now();
    loop {
        let found: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
            .collect();
        if found.is_empty() || t0.elapsed() > Duration::from_secs(10) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The OCI hook (createRuntime) killed during attach, held where nsnet-bridge waits for `nft`
/// (the bridge made, the address recorded as attaching by the hook's PID, no veth yet;
/// common's `nft_gate`). The start fails with one line, the container and its record are
/// gone, the address the dead hook held is taken over by `nsnet network gc`, no veth is
/// left, and the same container run again serves its published port.
#[test]
fn kill9_the_oci_hook_during_attach() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let gate = nft_gate(dir.path(), "oci-hook");
    let path = format!(
        "{}:{}",
        gate.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let argv = ["httpd", "-f", "-p", "80", "-h", "/www"];
    let mut args = vec!["run", "-d", "--name", "hooked", "-p", &publish];
    args.extend(["--rootfs", env.rootfs(), "--"]);
    args.extend(argv);
    let start = env
        .cmd(&args)
        .env("PATH", &path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (nft, hook) = held(&gate);
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{hook}/cmdline")).unwrap())
        .replace('\0', " ");
    assert!(cmdline.contains("oci-hook createRuntime"), "{cmdline}");
    assert_eq!(
        env.allocations().len(),
        1,
        "the hook has recorded its address"
    );
    kill(Pid::from_raw(hook), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(nft), Signal::SIGKILL).unwrap();
    let o = start.wait_with_output().unwrap();
    assert!(!o.status.success(), "the start failed");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(running(&argv), Vec::<i32>::new(), "the container is gone");
    assert!(env.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(env.containers_dir_entries().is_empty());
    let gc = output(env.nsnet().args(["network", "gc"]));
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(
        env.allocations(),
        Vec::<String>::new(),
        "gc took the address over"
    );
    let links = env.in_child(&["ip", "-o", "link", "show", "type", "veth"]);
    assert!(links.trim().is_empty(), "a veth is left: {links}");
    // The instance serves: the same container, started again.
    let mut again = vec!["run", "-d", "--name", "hooked", "-p", &publish];
    again.extend(["--rootfs", env.rootfs(), "--"]);
    again.extend(argv);
    env.ok(&again);
    assert!(get_index(port).contains("hello from nsnet"));
}
