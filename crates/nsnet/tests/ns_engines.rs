//! `nsnet ns` against real engines: containers named by their engines' own on-disk state,
//! their published ports, and `nsnet ns trace` verdicts, in worlds each test builds (as
//! root and as the unprivileged user; scripts/test runs each test both ways in a fresh
//! network namespace).
//!
//! - rootless Docker 20.10 (Debian's docker.io), started through Debian's own
//!   `/usr/share/docker.io/contrib/dockerd-rootless.sh` (RootlessKit 1.1.0 + slirp4netns,
//!   `--disable-host-loopback`), with `/usr/bin/docker` and a `docker import`ed busybox;
//! - rootless Podman 4.3 (Debian's): a container on its slirp4netns network and one on a
//!   `podman network create` bridge, both with `-p`;
//! - nsnet's own containers on the default network, a second network and an `--internal`
//!   one;
//! - a pasta world (Debian's pasta) whose namespace carries the host's address;
//! - nerdctl 2 (not packaged here): its data store and containerd's `meta.db` written as
//!   nerdctl's and containerd's source lay them out, beside a real namespace and process
//!   standing in for the container; Podman 5's `db.sql` likewise, with libpod's schema.
//!
//! Rootless engines refuse root: in the root pass the engine runs as the test user and root
//! inspects it. Every process a test starts is stopped by PID when it ends (the test is a
//! child subreaper, so what daemonises stays its descendant).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const USER: &str = "nsnet-test";
const PASTA_WORLD: &str = include_str!("fixtures/pasta_world.sh");
const BBOLT_WRITE: &str = include_str!("fixtures/bbolt_write.py");

fn json_of(cmd: &mut Command) -> Value {
    let o = output(cmd);
    assert!(
        o.status.success() || o.status.code() == Some(4),
        "{cmd:?}: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn net_json() -> Value {
    json_of(nsnet().args(["ns", "net", "--json"]))
}

/// This test's world, as a trace's FROM: by our own PID (as root, `host` is the machine's
/// netns, PID 1's, not the world's).
fn me() -> String {
    std::process::id().to_string()
}

fn trace(from: &str, to: &str) -> Value {
    json_of(nsnet().args(["ns", "trace", from, to, "--json"]))
}

/// The netns whose containers include `engine/name`.
fn netns_of<'a>(v: &'a Value, engine: &str, name: &str) -> &'a Value {
    v["netns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["containers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["engine"] == engine && c["name"] == name)
        })
        .unwrap_or_else(|| panic!("{engine}/{name} not named in {v:#}"))
}

fn container<'a>(n: &'a Value, name: &str) -> &'a Value {
    n["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

/// The trace's hops' step texts.
fn steps(t: &Value) -> Vec<&str> {
    t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["step"].as_str().unwrap())
        .collect()
}

/// Asserts that the trace ends in the network namespace `n` (a `netns` entry of the view).
fn assert_ends_in(t: &Value, n: &Value) {
    assert_eq!(
        t["hops"].as_array().unwrap().last().unwrap()["netns"],
        n["inode"],
        "{t:#}"
    );
}

fn verdict(t: &Value) -> (String, String) {
    (
        t["verdict"]["outcome"].as_str().unwrap().to_string(),
        t["verdict"]["reason"].as_str().unwrap().to_string(),
    )
}

/// A directory the test user can use, under /tmp.
fn shared_dir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn chown_to_user(p: &Path) {
    if is_root() {
        let o = output(Command::new("chown").args(["-R", USER]).arg(p));
        assert!(o.status.success(), "chown: {}", stderr(&o));
    }
}

/// A busybox root filesystem with an httpd page, as a tar owned by the image's root.
fn busybox_tar(base: &Path) -> PathBuf {
    let root = base.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "httpd", "sleep", "nc", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "hello from the container\n").unwrap();
    let tar = base.join("rootfs.tar");
    let o = output(
        Command::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    assert!(o.status.success(), "tar: {}", stderr(&o));
    tar
}

/// `program args…` as the test user (directly when the test is that user), with `env`.
fn as_user(env: &[(String, String)], program: &str) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", USER, "--", "env"]);
        c
    } else {
        Command::new("env")
    };
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(program);
    c.current_dir("/");
    c
}

/// Every live descendant of this test process, deepest first.
fn descendants() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut parent: std::collections::BTreeMap<i32, i32> = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((_, rest)) = s.rsplit_once(')')
            && let Some(pp) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
        {
            parent.insert(pid, pp);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![me];
    while let Some(p) = frontier.pop() {
        for (c, pp) in &parent {
            if *pp == p && *c != me {
                out.push(*c);
                frontier.push(*c);
            }
        }
    }
    out.reverse();
    out
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Stops what the test started: SIGTERM to `first` (by comm, among our descendants), up to
/// `grace` for it to take its children down, then SIGKILL to every descendant left; reaps.
fn stop_descendants(first: &str, grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for p in descendants().into_iter().filter(|p| comm(*p) == first) {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
        wait_gone(p, grace);
    }
    for p in descendants() {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        // SAFETY: reaping our own children.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r < 0 {
            break;
        }
        if r == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn subreaper() {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

fn run_ok(c: &mut Command) -> Output {
    let o = output(c);
    assert!(
        o.status.success(),
        "{c:?}: {:?}\n{}\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

// ---- rootless Docker 20.10 ----

struct Docker {
    dir: tempfile::TempDir,
    /// The script (then RootlessKit, which it execs); reaped on drop.
    job: Option<std::process::Child>,
}

impl Docker {
    fn env(&self) -> Vec<(String, String)> {
        let b = self.dir.path().display();
        vec![
            ("HOME".into(), format!("{b}/home")),
            ("XDG_RUNTIME_DIR".into(), format!("{b}/run")),
            ("PATH".into(), "/usr/bin:/usr/sbin:/bin:/sbin".into()),
            ("DOCKER_HOST".into(), format!("unix://{b}/run/docker.sock")),
        ]
    }

    /// Debian's dockerd-rootless.sh, unchanged, as the test user; waits for the API socket.
    fn start() -> Docker {
        world();
        subreaper();
        let dir = shared_dir("nsnet-docker");
        for d in ["home", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        chown_to_user(dir.path());
        let mut d = Docker { dir, job: None };
        let log = std::fs::File::create(d.dir.path().join("dockerd.log")).unwrap();
        let job = as_user(&d.env(), "/usr/share/docker.io/contrib/dockerd-rootless.sh")
            // No systemd and cgroup v1 here: the cgroupfs driver, as Docker's rootless docs say.
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd-rootless.sh (Debian package docker.io)");
        d.job = Some(job);
        let sock = d.dir.path().join("run/docker.sock");
        let until = Instant::now() + Duration::from_secs(60);
        while !(sock.exists() && output(&mut d.docker(&["version"])).status.success()) {
            assert!(
                Instant::now() < until,
                "dockerd did not serve within 60 s: {}",
                std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = as_user(&self.env(), "/usr/bin/docker");
        c.args(args);
        c
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = output(&mut self.docker(&["rm", "-f", "web", "web2"]));
        stop_descendants("rootlesskit", Duration::from_secs(20));
        // stop_descendants has killed and reaped it (waiting again only reports that; no
        // signal is sent to a PID that may have been reused since).
        if let Some(mut j) = self.job.take() {
            let _ = j.try_wait();
        }
        if !is_root() {
            let _ = Command::new("chmod")
                .args(["-R", "u+rwX"])
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
fn rootless_docker_containers_are_named_published_and_traced() {
    let d = Docker::start();
    let tar = busybox_tar(d.dir.path());
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_ok(&mut d.docker(&["import", tar.to_str().unwrap(), "nsnet-bb"]));
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    run_ok(&mut d.docker(&[
        "run", "-d", "--name", "web", "-p", &publish, "nsnet-bb", "httpd", "-f", "-p", "80", "-h",
        "/www",
    ]));
    let id = stdout(&run_ok(&mut d.docker(&["inspect", "-f", "{{.Id}}", "web"])))
        .trim()
        .to_string();
    // Served through RootlessKit's port driver and docker-proxy: the real path works.
    let reply = http_get(port, Duration::from_secs(20), |s| s.contains("200 OK"));
    assert!(reply.ends_with("hello from the container\n"), "{reply}");

    let v = net_json();
    let n = netns_of(&v, "docker", "web");
    assert_eq!(n["role"], "container");
    assert_eq!(n["label"], format!("docker/web ({})", &id[..12]));
    let c = container(n, "web");
    assert_eq!(c["id"], id);
    assert_eq!(c["image"], "nsnet-bb");
    assert_eq!(
        c["ports"],
        serde_json::json!([{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": port, "container_port": 80}])
    );
    let addr = c["networks"][0]["address"].as_str().unwrap().to_string();
    assert_eq!(c["networks"][0]["network"], "bridge");
    let ip = addr.split('/').next().unwrap().to_string();
    assert!(
        n["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["addresses"]
                .as_array()
                .unwrap()
                .contains(&addr.clone().into())),
        "Docker's recorded address is the one on eth0: {n:#}"
    );
    // The data root was found through dockerd (its HOME is the test's, not the inspector's).
    let src = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == "docker" && s["containers"] == 1)
        .unwrap_or_else(|| panic!("{:#}", v["engines"]));
    assert_eq!(
        src["path"],
        d.dir
            .path()
            .join("home/.local/share/docker")
            .display()
            .to_string()
    );
    // RootlessKit's own ports, from its api.sock (ours: launched in this world's netns;
    // other worlds on the machine may run RootlessKit too).
    let world = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/net").unwrap().ino()
    };
    let rk = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["parent_comm"] == "rootlesskit" && i["parent_netns"] == world)
        .unwrap_or_else(|| panic!("{:#}", v["instances"]));
    assert!(
        rk["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["spec"]["parentPort"] == port && p["spec"]["parentIP"] == "127.0.0.1"),
        "{rk:#}"
    );
    // The text says the same.
    let o = output(nsnet().args(["ns", "net"]));
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "  docker/web ({}) image nsnet-bb ports 127.0.0.1:{port}->80/tcp on bridge {addr}\n",
            &id[..12]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "(api.sock): 127.0.0.1:{port}->127.0.0.1:{port}/tcp4"
        )),
        "{text}"
    );
    let dot = stdout(&output(nsnet().args(["ns", "graph", "-f", "dot"])));
    assert!(
        dot.contains(&format!("container docker/web ({})", &id[..12])),
        "{dot}"
    );

    // Reachable: host port → RootlessKit's port driver → docker-proxy → the container.
    let t = trace(&me(), &format!("127.0.0.1:{port}"));
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    let steps = steps(&t);
    assert!(
        steps.iter().any(|s| s.contains("is the port driver of")),
        "{steps:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains(&format!("forwards to {ip}:80"))),
        "{steps:#?}"
    );
    assert_ends_in(&t, n);
    assert!(verdict(&t).1.starts_with("httpd "), "{t:#}");
    // Blocked: dockerd-rootless.sh passes --disable-host-loopback to RootlessKit.
    let t = trace("docker/web", "host:8080");
    let (o, r) = verdict(&t);
    assert_eq!(o, "blocked");
    assert!(
        r.starts_with("host loopback disabled by rootlesskit ")
            && r.ends_with(" --disable-host-loopback"),
        "{r}"
    );
    // On the way, Docker's iptables rules (iptables-nft: nftables tables in the child):
    // FORWARD accepts docker0 → tap0, POSTROUTING masquerades the container's address.
    let steps = self::steps(&t);
    assert!(
        steps.iter().any(|s| s.starts_with("forwarded from docker0 to tap0: accepted by \"iifname docker0 oifname != docker0 accept\" in table ip filter chain FORWARD")),
        "{steps:#?}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with(&format!("the source address of {ip} is translated by \"oifname != docker0 ip saddr 172.17.0.0/16 xt target MASQUERADE\" in table ip nat chain POSTROUTING"))),
        "{steps:#?}"
    );
    // No listener on another port of the container.
    let (o, r) = verdict(&trace("docker/web", &format!("{ip}:81")));
    assert_eq!(o, "no-listener");
    assert_eq!(
        r,
        format!(
            "no listener on {ip}:81 (tcp) in container docker/web ({}) net:[{}]",
            &id[..12],
            n["inode"]
        )
    );
    // --probe: one connection attempt from inside FROM after the walk, where it ended
    // inside the view: accepted on the reachable path, refused where nobody listens.
    let probe = |from: &str, to: &str| {
        json_of(nsnet().args(["ns", "trace", from, to, "--json", "--probe"]))["probe"].clone()
    };
    assert_eq!(
        probe(&me(), &format!("127.0.0.1:{port}")),
        serde_json::json!({"connected": true, "error": null})
    );
    let p = probe("docker/web", &format!("{ip}:81"));
    assert_eq!(p["connected"], false, "{p}");
    assert!(
        p["error"].as_str().unwrap().contains("Connection refused"),
        "{p}"
    );
    // `ns exec` by Docker's name: the container's netns.
    let o = output(nsnet().args([
        "ns",
        "exec",
        "docker/web",
        "-n",
        "--",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!(" {addr} ")), "{}", stdout(&o));
    // Between two Docker networks: Docker's isolation rule drops it.
    run_ok(&mut d.docker(&["network", "create", "dnet"]));
    run_ok(&mut d.docker(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--network",
        "dnet",
        "nsnet-bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let ip2 = stdout(&run_ok(&mut d.docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "web2",
    ])))
    .trim()
    .to_string();
    let (o, r) = verdict(&trace("docker/web", &format!("{ip2}:80")));
    assert_eq!(o, "blocked", "{r}");
    assert!(
        r.starts_with("dropped by the rule \"oifname br-")
            && r.ends_with(" drop\" in table ip filter chain DOCKER-ISOLATION-STAGE-2 (from FORWARD → DOCKER-ISOLATION-STAGE-1)"),
        "{r}"
    );
    // From the host, the container's address is not routed: the published port is named.
    let (o, r) = verdict(&trace(&me(), &format!("{ip}:80")));
    assert_eq!(o, "no-route", "{r}");
    assert!(
        r.ends_with(&format!("use its published port 127.0.0.1:{port}")),
        "{r}"
    );
}

// ---- rootless Podman 4.3 ----

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        world();
        subreaper();
        let dir = shared_dir("nsnet-podman");
        let b = dir.path();
        for d in ["run", "home", "storage", "runroot"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        std::fs::set_permissions(b.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(
            b.join("containers.conf"),
            "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        std::fs::write(
            b.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/runroot\"\n",
                b.display()
            ),
        )
        .unwrap();
        busybox_tar(b);
        chown_to_user(b);
        Podman { dir }
    }

    fn podman(&self, args: &[&str]) -> Command {
        let b = self.dir.path().display();
        let env: Vec<(String, String)> = [
            ("XDG_RUNTIME_DIR", format!("{b}/run")),
            ("HOME", format!("{b}/home")),
            ("CONTAINERS_CONF", format!("{b}/containers.conf")),
            ("CONTAINERS_STORAGE_CONF", format!("{b}/storage.conf")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut c = as_user(&env, "podman");
        c.arg(format!("--root={b}/storage"))
            .arg(format!("--runroot={b}/runroot"))
            .arg("--storage-driver=vfs")
            .args(args);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = output(&mut self.podman(&["rm", "-f", "-t", "0", "-a"]));
        stop_descendants("catatonit", Duration::from_secs(5));
        if !is_root() {
            let _ = Command::new("chmod")
                .args(["-R", "u+rwX"])
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
fn rootless_podman_containers_are_named_from_its_database_and_traced() {
    let p = Podman::new();
    let tar = p.dir.path().join("rootfs.tar");
    run_ok(&mut p.podman(&["import", tar.to_str().unwrap(), "localhost/nsnet-bb"]));
    let (p1, p2) = (free_port(), free_port());
    let httpd = [
        "localhost/nsnet-bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ];
    let pub1 = format!("127.0.0.1:{p1}:80");
    let mut args = vec!["run", "-d", "--name", "pweb", "-p", &pub1];
    args.extend(httpd);
    run_ok(&mut p.podman(&args));
    run_ok(&mut p.podman(&["network", "create", "pnet"]));
    let pub2 = format!("127.0.0.1:{p2}:80");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "pbr",
        "--network",
        "pnet",
        "-p",
        &pub2,
    ];
    args.extend(httpd);
    run_ok(&mut p.podman(&args));
    // A third through slirp4netns's own port forwarding (its API socket's add_hostfwd).
    let p3 = free_port();
    let pub3 = format!("127.0.0.1:{p3}:80");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "pslirp",
        "--network",
        "slirp4netns:port_handler=slirp4netns",
        "-p",
        &pub3,
    ];
    args.extend(httpd);
    run_ok(&mut p.podman(&args));
    for port in [p1, p2, p3] {
        let r = http_get(port, Duration::from_secs(20), |s| s.contains("200 OK"));
        assert!(r.ends_with("hello from the container\n"), "{r}");
    }
    let id = |name: &str| {
        stdout(&run_ok(&mut p.podman(&["inspect", "-f", "{{.Id}}", name])))
            .trim()
            .to_string()
    };
    let (id1, id2) = (id("pweb"), id("pbr"));

    let v = net_json();
    // pweb: its own netns, served by its slirp4netns.
    let n1 = netns_of(&v, "podman", "pweb");
    assert_eq!(n1["role"], "rootless-child");
    let l1 = n1["label"].as_str().unwrap();
    assert!(
        l1.starts_with(&format!(
            "podman/pweb ({}), served by slirp4netns ",
            &id1[..12]
        )),
        "{l1}"
    );
    let c1 = container(n1, "pweb");
    assert_eq!(c1["image"], "localhost/nsnet-bb:latest");
    assert_eq!(c1["network_mode"], "slirp4netns");
    assert_eq!(c1["ports"][0]["host_port"], p1);
    assert_eq!(c1["ports"][0]["container_port"], 80);
    // pbr: behind podman's bridge in the rootless netns.
    let n2 = netns_of(&v, "podman", "pbr");
    assert_eq!(n2["role"], "container");
    assert_eq!(n2["label"], format!("podman/pbr ({})", &id2[..12]));
    let c2 = container(n2, "pbr");
    assert_eq!(c2["networks"][0]["network"], "pnet");
    let addr = c2["networks"][0]["address"].as_str().unwrap();
    assert!(
        n2["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["addresses"].as_array().unwrap().contains(&addr.into())),
        "{n2:#}"
    );
    // The database was found through conmon's command line.
    let src = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == "podman" && s["containers"] == 3)
        .unwrap_or_else(|| panic!("{:#}", v["engines"]));
    assert_eq!(
        src["path"],
        p.dir.path().join("storage").display().to_string()
    );

    // Reachable through rootlessport into each container.
    for (port, n) in [(p1, n1), (p2, n2)] {
        let t = trace(&me(), &format!("127.0.0.1:{port}"));
        assert_eq!(verdict(&t).0, "reachable", "{t:#}");
        assert!(
            steps(&t).iter().any(|s| s.starts_with("rootlessport ")),
            "{t:#}"
        );
        assert_ends_in(&t, n);
    }
    // slirp4netns's host forward, read from its API socket, into pslirp's namespace.
    let n3 = netns_of(&v, "podman", "pslirp");
    let fwd = &n3["hostfwds"][0];
    assert_eq!(
        (
            fwd["proto"].as_str(),
            fwd["host_addr"].as_str(),
            fwd["host_port"].as_u64(),
            fwd["guest_port"].as_u64()
        ),
        (
            Some("tcp"),
            Some("127.0.0.1"),
            Some(u64::from(p3)),
            Some(80)
        ),
        "{n3:#}"
    );
    let t = trace(&me(), &format!("127.0.0.1:{p3}"));
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    assert!(
        steps(&t).iter().any(|s| s.contains("(add_hostfwd) to ")),
        "{t:#}"
    );
    assert_ends_in(&t, n3);
    // Podman 4.3 runs slirp4netns with --disable-host-loopback (allow_host_loopback=false).
    let (o, r) = verdict(&trace("podman/pweb", "host:9"));
    assert_eq!(o, "blocked");
    assert!(
        r.starts_with("host loopback disabled by slirp4netns ")
            && r.ends_with(" --disable-host-loopback"),
        "{r}"
    );
}

// ---- nsnet's own containers ----

#[test]
fn nsnet_containers_on_two_networks_and_an_internal_one_are_named_and_traced() {
    world();
    let data = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    let r = rootfs.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::create_dir_all(r.join("www")).unwrap();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::copy("/usr/bin/busybox", r.join("bin/busybox")).unwrap();
    for a in ["sh", "httpd", "sleep"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    std::fs::write(r.join("www/index.html"), "hello from nsnet\n").unwrap();
    let env = |c: &mut Command| {
        c.env("XDG_DATA_HOME", data.path())
            .env("XDG_RUNTIME_DIR", run.path());
    };
    let nsnet_ok = |args: &[&str]| {
        let mut c = nsnet();
        env(&mut c);
        stdout(&run_ok(c.args(args)))
    };
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let rf = r.to_str().unwrap();
    let httpd = ["--", "httpd", "-f", "-p", "80", "-h", "/www"];
    let mut a = vec![
        "container",
        "run",
        "-d",
        "--name",
        "ns-web",
        "-p",
        &publish,
        "--rootfs",
        rf,
    ];
    a.extend(httpd);
    let web_id = nsnet_ok(&a).trim().to_string();
    nsnet_ok(&["network", "create", "second"]);
    nsnet_ok(&["network", "create", "inner", "--internal"]);
    for (name, net) in [("ns-other", "second"), ("ns-secret", "inner")] {
        let mut a = vec![
            "container",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--rootfs",
            rf,
        ];
        a.extend(httpd);
        nsnet_ok(&a);
    }
    let reply = http_get(port, Duration::from_secs(20), |s| s.contains("200 OK"));
    assert!(reply.ends_with("hello from nsnet\n"), "{reply}");
    let stop = || {
        let mut c = nsnet();
        env(&mut c);
        let ids = stdout(&output(c.args(["container", "ps", "-aq"])));
        for id in ids.split_whitespace() {
            let mut c = nsnet();
            env(&mut c);
            let _ = output(c.args(["container", "rm", "-f", id]));
        }
        let pidfile = run.path().join("nsnet/default.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            wait_gone(pid, Duration::from_secs(10));
        }
    };
    let mut c = nsnet();
    env(&mut c);
    let v = json_of(c.args(["ns", "net", "--json"]));
    let check = std::panic::catch_unwind(|| {
        let web = netns_of(&v, "nsnet", "ns-web");
        assert_eq!(web["role"], "container");
        assert!(web_id.starts_with(&web["containers"][0]["id"].as_str().unwrap()[..12]));
        assert_eq!(
            web["label"],
            format!(
                "nsnet/ns-web ({})",
                &web["containers"][0]["id"].as_str().unwrap()[..12]
            )
        );
        assert_eq!(web["containers"][0]["ports"][0]["host_port"], port);
        assert_eq!(web["containers"][0]["networks"][0]["network"], "bridge");
        let secret = netns_of(&v, "nsnet", "ns-secret");
        assert_eq!(
            secret["containers"][0]["internal_networks"],
            serde_json::json!(["inner"])
        );
        let other = netns_of(&v, "nsnet", "ns-other");
        let other_ip = other["containers"][0]["networks"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();

        let tr = |from: &str, to: &str| {
            let mut c = nsnet();
            env(&mut c);
            json_of(c.args(["ns", "trace", from, to, "--json"]))
        };
        // Reachable: the builtin port driver lands on the container's address directly.
        let t = tr(&me(), &format!("127.0.0.1:{port}"));
        assert_eq!(verdict(&t).0, "reachable", "{t:#}");
        assert_ends_in(&t, web);
        // An --internal network has no route out.
        let (o, r) = verdict(&tr("nsnet/ns-secret", "192.0.2.10:9"));
        assert_eq!(o, "blocked", "{r}");
        assert!(
            r.starts_with("no route to 192.0.2.10 in container nsnet/ns-secret (")
                && r.ends_with("is on inner, an --internal network (no route out of it)"),
            "{r}"
        );
        // Between two networks: nsnet's isolation rule, read from the child's nft table.
        let (o, r) = verdict(&tr("nsnet/ns-web", &format!("{other_ip}:80")));
        assert_eq!(o, "blocked", "{r}");
        assert!(
            r.starts_with("dropped by the nft rule \"iifname nerdctl0 oifname @bridges oifname != nerdctl0 drop\" in table ip nsnet chain forward (nsnet network bridge)"),
            "{r}"
        );
        // The default instance closes the host's loopback to containers.
        let (o, r) = verdict(&tr("nsnet/ns-web", "host:9"));
        assert_eq!(o, "blocked", "{r}");
        assert!(
            r.starts_with("host loopback disabled by ") && r.ends_with(" --disable-host-loopback"),
            "{r}"
        );
    });
    stop();
    if let Err(e) = check {
        std::panic::resume_unwind(e);
    }
}

// ---- a pasta world ----

/// Debian's pasta serving a namespace (its netns file bind-mounted in the world, as Podman
/// 5 keeps them), in a sub-world of its own that holds pasta's template interface
/// (dummy0 192.0.2.1/24, default via 192.0.2.254; a new user namespace makes it possible
/// for the unprivileged pass). The fixture runs the inspector inside that sub-world, where
/// pasta's host side is.
#[test]
fn a_pasta_world_is_recognised_and_the_host_address_case_explained() {
    world();
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pasta_world.sh");
    std::fs::write(&script, PASTA_WORLD).unwrap();
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--net", "--mount", "--", "sh"])
        .arg(&script)
        .arg(nsnet_bin())
        .arg(dir.path());
    let o = output(&mut c);
    stop_descendants("passt.avx2", Duration::from_secs(2));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let read = |n: &str| -> Value {
        let t = std::fs::read_to_string(dir.path().join(n)).unwrap();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{n}: {e}: {t}"))
    };
    let v = read("net.json");
    let served = v["netns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| !n["pasta"].is_null())
        .unwrap_or_else(|| panic!("no pasta world: {v:#}"));
    assert_eq!(served["role"], "rootless-child");
    let pasta = &served["pasta"];
    assert!(
        served["label"].as_str().unwrap().starts_with("of pasta "),
        "{served:#}"
    );
    assert_eq!(
        pasta["args"]["forwards"][0],
        serde_json::json!({"option": "-t", "spec": "18080:80"})
    );
    assert_eq!(
        pasta["copied"],
        serde_json::json!([["192.0.2.1/24", "dummy0"]])
    );
    assert_eq!(
        pasta["host_loopback_at"],
        "192.0.2.254 (the gateway; pasta maps it to the host)"
    );
    // The container asks for the host by the host's own address: it reaches itself.
    let (o, r) = verdict(&read("trace-host-address.json"));
    assert_eq!(o, "blocked");
    assert_eq!(
        r,
        "the container's own address is the host's: use 192.0.2.254 (the gateway; pasta maps it to the host) for the host's loopback"
    );
    // The gateway is the host's loopback, where the fixture's server listens.
    let t = read("trace-gateway.json");
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    assert!(verdict(&t).1.starts_with("python3 "), "{t:#}");
    // Inbound: pasta's -t 18080:80 into the namespace's listener.
    let t = read("trace-inbound.json");
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    assert!(
        steps(&t)
            .iter()
            .any(|s| s.contains("forwards -t 18080 into")),
        "{t:#}"
    );
    assert_ends_in(&t, served);
}

// ---- nerdctl 2 and Podman 5: their on-disk state replayed beside a real namespace ----

/// A process in a network namespace of its own (a new user namespace makes it possible
/// for the unprivileged pass) holding `eth0` (a veth whose peer only keeps it up) with `addr` and a TCP listener on
/// port 80: it stands for the container's init process. Killed and reaped on drop.
struct StandIn {
    child: std::process::Child,
}

impl StandIn {
    fn start(addr: &str, dir: &Path) -> StandIn {
        world();
        let ready = dir.join("standin.ready");
        let script = format!(
            "ip link set lo up && ip link add eth0 type veth peer name peer0 && ip link set peer0 up && ip addr add {addr} dev eth0 && ip link set eth0 up && exec python3 -c \"import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 80)); s.listen(8); open(sys.argv[1], 'w').write('ready'); [c.close() for c, _ in iter(s.accept, None)]\" {}",
            ready.display()
        );
        let mut child = Command::new("unshare")
            .args(["--user", "--map-root-user", "--net", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let until = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(
                Instant::now() < until && child.try_wait().unwrap().is_none(),
                "the stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        StandIn { child }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nerdctl 2 over rootless containerd, as its files are on disk while a container runs:
/// `nerdctl run -d --name web -p 127.0.0.1:PORT:80 nginx:alpine` on the default `bridge`
/// network. The layout is nerdctl's (docs/dir.md, pkg/dnsutil/hostsstore,
/// pkg/portutil/portstore, pkg/labels) and containerd's (metadata/buckets.go; its root at
/// `$XDG_DATA_HOME/containerd`, where containerd-rootless.sh bind-mounts it), not one a
/// running nerdctl wrote: nerdctl is not packaged for this machine.
#[test]
fn nerdctl_containers_are_named_from_its_data_store_and_containerds_labels() {
    const ID: &str = "c4ed811cc361d26faffdee8d696ddbc45a9d93c571b5b3c54d3da01cb29caeb1";
    let dir = tempfile::tempdir().unwrap();
    let ctr = StandIn::start("10.4.0.5/24", dir.path());
    let port = free_port();
    let share = dir.path().join("share");
    // DATAROOT/<ADDRHASH>: the first 8 hex digits of sha256("/run/containerd/containerd.sock"),
    // the address nerdctl uses inside RootlessKit's namespaces.
    let store = share.join("nerdctl/1935db59");
    let state = store.join("containers/default").join(ID);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("hostname"), "c4ed811cc361\n").unwrap();
    std::fs::write(state.join("resolv.conf"), "nameserver 10.0.2.3\n").unwrap();
    std::fs::write(
        state.join("log-config.json"),
        r#"{"driver":"json-file","opts":{}}"#,
    )
    .unwrap();
    std::fs::write(
        state.join("ports.json"),
        format!(
            r#"[{{"HostPort":{port},"ContainerPort":80,"Protocol":"tcp","HostIP":"127.0.0.1"}}]"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        state.join("ports.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let names = store.join("names/default");
    std::fs::create_dir_all(&names).unwrap();
    std::fs::write(names.join("web"), ID).unwrap();
    let hosts = store.join("etchosts/default").join(ID);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts"),
        "127.0.0.1 localhost\n10.4.0.5 c4ed811cc361 web\n",
    )
    .unwrap();
    // The CNI 1.0 result of the bridge plugin, as nerdctl's OCI hook stores it; the
    // sandbox is /proc/<init PID>/ns/net (the hook's getNetNSPath).
    std::fs::write(
        hosts.join("meta.json"),
        format!(
            r#"{{"ID":"{ID}","Networks":{{"bridge":{{"cniVersion":"1.0.0","interfaces":[{{"name":"nerdctl0","mac":"3a:1f:7c:00:00:01"}},{{"name":"vethb2e4a1f0","mac":"3a:1f:7c:00:00:02"}},{{"name":"eth0","mac":"3a:1f:7c:00:00:03","sandbox":"/proc/{pid}/ns/net"}}],"ips":[{{"interface":2,"address":"10.4.0.5/24","gateway":"10.4.0.1"}}],"routes":[{{"dst":"0.0.0.0/0","gw":"10.4.0.1"}}],"dns":{{}}}}}},"Hostname":"c4ed811cc361","ExtraHosts":{{}},"Name":"web"}}"#,
            pid = ctr.pid()
        ),
    )
    .unwrap();
    // containerd's container record (the spec, a protobuf Any, is not read and left out).
    let tree = serde_json::json!({"v1": {"default": {"containers": {ID: {
        "image": "docker.io/library/nginx:alpine",
        "labels": {
            "nerdctl/name": "web",
            "nerdctl/namespace": "default",
            "nerdctl/hostname": "c4ed811cc361",
            "nerdctl/networks": "[\"bridge\"]",
            "nerdctl/platform": "linux/amd64",
            "nerdctl/state-dir": state.display().to_string(),
            "nerdctl/extraHosts": "null",
        },
        "runtime": {"name": "io.containerd.runc.v2"},
        "snapshotKey": ID,
        "snapshotter": "overlayfs",
    }}}}});
    let db_dir = share.join("containerd/io.containerd.metadata.v1.bolt");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::write(dir.path().join("tree.json"), tree.to_string()).unwrap();
    std::fs::write(dir.path().join("bbolt_write.py"), BBOLT_WRITE).unwrap();
    run_ok(
        Command::new("python3")
            .arg(dir.path().join("bbolt_write.py"))
            .arg(dir.path().join("tree.json"))
            .arg(db_dir.join("meta.db")),
    );

    let ns = |args: &[&str]| {
        let mut c = nsnet();
        c.env("XDG_DATA_HOME", &share).args(["ns"]).args(args);
        c
    };
    let v = json_of(&mut ns(&["net", "--json"]));
    let n = netns_of(&v, "nerdctl", "web");
    assert_eq!(n["label"], "nerdctl/web (c4ed811cc361)");
    assert_eq!(n["role"], "container");
    let c = container(n, "web");
    assert_eq!(c["image"], "docker.io/library/nginx:alpine");
    assert_eq!(c["pid"], ctr.pid());
    assert_eq!(c["network_mode"], "bridge");
    assert_eq!(
        c["ports"],
        serde_json::json!([{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": port, "container_port": 80}])
    );
    assert_eq!(
        c["networks"],
        serde_json::json!([{"network": "bridge", "address": "10.4.0.5/24", "gateway": "10.4.0.1"}])
    );
    let src = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == "nerdctl")
        .unwrap_or_else(|| panic!("{:#}", v["engines"]));
    assert_eq!(src["path"], share.join("nerdctl").display().to_string());
    assert_eq!(src["containers"], 1);
    let text = stdout(&output(&mut ns(&["net"])));
    assert!(
        text.contains(&format!(
            "  nerdctl/web (c4ed811cc361) image docker.io/library/nginx:alpine ports 127.0.0.1:{port}->80/tcp on bridge 10.4.0.5/24\n"
        )),
        "{text}"
    );
    // Traced by nerdctl's name.
    let tr = |to: &str| json_of(&mut ns(&["trace", "nerdctl/web", to, "--json"]));
    let t = tr("10.4.0.5:80");
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    assert_eq!(
        t["from"]["name"],
        format!("container nerdctl/web (c4ed811cc361) net:[{}]", n["inode"])
    );
    let (o, r) = verdict(&tr("10.4.0.5:81"));
    assert_eq!(o, "no-listener");
    assert!(
        r.starts_with("no listener on 10.4.0.5:81 (tcp) in container nerdctl/web"),
        "{r}"
    );
    // Stopped: nerdctl's postStop hook removes meta.json; the container is no longer named.
    std::fs::remove_file(hosts.join("meta.json")).unwrap();
    let v = json_of(&mut ns(&["net", "--json"]));
    assert!(
        !v["netns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["label"].as_str().unwrap().contains("nerdctl/")),
        "{v:#}"
    );
}

/// Podman 5's sqlite state (`GRAPHROOT/db.sql`, libpod's sqlite_state_internal.go schema;
/// Podman 5 is not packaged for this machine: Debian's is 4.3, whose bolt database the
/// Podman test above reads from a real run), the rows as `podman run -d --name p5web
/// --network pnet -p 127.0.0.1:PORT:80 …` leaves them while the container runs.
#[test]
fn podman_5_containers_are_named_from_its_sqlite_state() {
    const ID: &str = "5e0f0e8f6c1d4b2a9e3f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d";
    let dir = tempfile::tempdir().unwrap();
    let ctr = StandIn::start("10.89.0.2/24", dir.path());
    let port = free_port();
    let graph = dir.path().join("share/containers/storage");
    std::fs::create_dir_all(&graph).unwrap();
    let config = format!(
        r#"{{"spec":{{"ociVersion":"1.2.0"}},"id":"{ID}","name":"p5web","rootfsImageName":"quay.io/libpod/alpine:latest","rootfsImageID":"9c6f0724472873bb50a2ae67a9e7adcb57673a183cea8b06eb778dca859181b5","createNetNS":true,"newPortMappings":[{{"host_ip":"127.0.0.1","container_port":80,"host_port":{port},"range":1,"protocol":"tcp"}}],"newNetworks":{{"pnet":{{"interface_name":"eth0"}}}},"networkMode":"bridge"}}"#
    );
    let state = format!(
        r#"{{"state":3,"pid":{pid},"conmonPid":{pid},"netns":"/run/user/1002/netns/netns-5e0f0e8f-6c1d-4b2a-9e3f-7a6b5c4d3e2f","networkStatus":{{"pnet":{{"interfaces":{{"eth0":{{"subnets":[{{"ipnet":"10.89.0.2/24","gateway":"10.89.0.1"}}],"mac_address":"2e:de:eb:02:5f:8e"}}}}}}}}}}"#,
        pid = ctr.pid()
    );
    let script = format!(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA journal_mode=WAL')\nc.executescript(sys.argv[2])\nc.execute('INSERT INTO DBConfig VALUES (1, 1, \"linux\", ?, ?, ?, ?, \"overlay\", ?)', (sys.argv[3] + '/libpod', '/run/user/1002/libpod/tmp', sys.argv[3], '/run/user/1002/containers', sys.argv[3] + '/volumes'))\nc.execute('INSERT INTO IDNamespace VALUES (?)', ('{ID}',))\nc.execute('INSERT INTO ContainerConfig VALUES (?, ?, NULL, ?)', ('{ID}', 'p5web', sys.argv[4]))\nc.execute('INSERT INTO ContainerState VALUES (?, 3, 0, ?)', ('{ID}', sys.argv[5]))\nc.commit()\n"
    );
    run_ok(
        Command::new("python3")
            .args(["-c", &script])
            .arg(graph.join("db.sql"))
            .arg(PODMAN5_SCHEMA)
            .arg(&graph)
            .arg(&config)
            .arg(&state),
    );
    let ns = |args: &[&str]| {
        let mut c = nsnet();
        c.env("XDG_DATA_HOME", dir.path().join("share"))
            .args(["ns"])
            .args(args);
        c
    };
    let v = json_of(&mut ns(&["net", "--json"]));
    let n = netns_of(&v, "podman", "p5web");
    assert_eq!(n["label"], format!("podman/p5web ({})", &ID[..12]));
    let c = container(n, "p5web");
    assert_eq!(c["image"], "quay.io/libpod/alpine:latest");
    assert_eq!(c["ports"][0]["host_port"], port);
    assert_eq!(c["networks"][0]["address"], "10.89.0.2/24");
    assert_eq!(
        c["netns_path"],
        "/run/user/1002/netns/netns-5e0f0e8f-6c1d-4b2a-9e3f-7a6b5c4d3e2f"
    );
    let src = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["engine"] == "podman")
        .unwrap_or_else(|| panic!("{:#}", v["engines"]));
    assert_eq!(
        (src["containers"].as_u64(), &src["error"]),
        (Some(1), &Value::Null),
        "{src:#}"
    );
    let t = json_of(&mut ns(&["trace", "p5web", "10.89.0.2:80", "--json"]));
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    // Read-only: the database is as the fixture left it.
    let o = run_ok(
        Command::new("python3")
            .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM ContainerConfig').fetchone()[0])"])
            .arg(graph.join("db.sql")),
    );
    assert_eq!(stdout(&o).trim(), "1");
}

/// libpod's tables (sqlite_state_internal.go's createSQLiteTables), as Podman 5 creates them.
const PODMAN5_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS DBConfig(ID INTEGER PRIMARY KEY NOT NULL, SchemaVersion INTEGER NOT NULL, OS TEXT NOT NULL, StaticDir TEXT NOT NULL, TmpDir TEXT NOT NULL, GraphRoot TEXT NOT NULL, RunRoot TEXT NOT NULL, GraphDriver TEXT NOT NULL, VolumeDir TEXT NOT NULL, CHECK (ID IN (1)));
CREATE TABLE IF NOT EXISTS IDNamespace(ID TEXT PRIMARY KEY NOT NULL);
CREATE TABLE IF NOT EXISTS ContainerConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL, PodID TEXT, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES IDNamespace(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (ID) REFERENCES ContainerState(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (PodID) REFERENCES PodConfig(ID));
CREATE TABLE IF NOT EXISTS ContainerState(ID TEXT PRIMARY KEY NOT NULL, State INTEGER NOT NULL, ExitCode INTEGER, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES ContainerConfig(ID) DEFERRABLE INITIALLY DEFERRED, CHECK (ExitCode BETWEEN -1 AND 255));
CREATE TABLE IF NOT EXISTS ContainerExecSession(ID TEXT PRIMARY KEY NOT NULL, ContainerID TEXT NOT NULL, FOREIGN KEY (ContainerID) REFERENCES ContainerConfig(ID));
CREATE TABLE IF NOT EXISTS ContainerDependency(ID TEXT NOT NULL, DependencyID TEXT NOT NULL, PRIMARY KEY (ID, DependencyID), FOREIGN KEY (ID) REFERENCES ContainerConfig(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (DependencyID) REFERENCES ContainerConfig(ID), CHECK (ID <> DependencyID));
CREATE TABLE IF NOT EXISTS ContainerVolume(ContainerID TEXT NOT NULL, VolumeName TEXT NOT NULL, PRIMARY KEY (ContainerID, VolumeName), FOREIGN KEY (ContainerID) REFERENCES ContainerConfig(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (VolumeName) REFERENCES VolumeConfig(Name));
CREATE TABLE IF NOT EXISTS ContainerExitCode(ID TEXT PRIMARY KEY NOT NULL, Timestamp INTEGER NOT NULL, ExitCode INTEGER NOT NULL, CHECK (ExitCode BETWEEN -1 AND 255));
CREATE TABLE IF NOT EXISTS PodConfig(ID TEXT PRIMARY KEY NOT NULL, Name TEXT UNIQUE NOT NULL, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES IDNamespace(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (ID) REFERENCES PodState(ID) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE IF NOT EXISTS PodState(ID TEXT PRIMARY KEY NOT NULL, InfraContainerID TEXT, JSON TEXT NOT NULL, FOREIGN KEY (ID) REFERENCES PodConfig(ID) DEFERRABLE INITIALLY DEFERRED, FOREIGN KEY (InfraContainerID) REFERENCES ContainerConfig(ID) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE IF NOT EXISTS VolumeConfig(Name TEXT PRIMARY KEY NOT NULL, StorageID TEXT, JSON TEXT NOT NULL, FOREIGN KEY (Name) REFERENCES VolumeState(Name) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE IF NOT EXISTS VolumeState(Name TEXT PRIMARY KEY NOT NULL, JSON TEXT NOT NULL, FOREIGN KEY (Name) REFERENCES VolumeConfig(Name) DEFERRABLE INITIALLY DEFERRED);
";

/// nsnet's pasta personality with `-c SOCKET`: its forwarding tables are read through the
/// socket (pesto's protocol), so a forward added by `pesto` after the start, which pasta's
/// command line does not name, is shown and traced.
#[test]
fn a_pasta_control_socket_is_read_for_what_pasta_forwards_now() {
    world();
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["pasta", "pesto"] {
        std::os::unix::fs::symlink(nsnet_bin(), bin.join(name)).unwrap();
    }
    let script = dir.path().join("pasta_world.sh");
    std::fs::write(&script, PASTA_WORLD).unwrap();
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--net", "--mount", "--", "sh"])
        .arg(&script)
        .arg(nsnet_bin())
        .arg(dir.path())
        .arg(bin.join("pasta"))
        .arg(bin.join("pesto"));
    let o = output(&mut c);
    stop_descendants("pasta", Duration::from_secs(2));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let read = |n: &str| -> Value {
        let t = std::fs::read_to_string(dir.path().join(n)).unwrap();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{n}: {e}: {t}"))
    };
    let served = |v: &Value| -> Value {
        v["netns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| !n["pasta"].is_null())
            .cloned()
            .unwrap_or_else(|| panic!("no pasta world: {v:#}"))
    };
    let rules = |n: &Value| -> Vec<String> {
        n["pasta"]["socket_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["table"].as_str().unwrap(),
                    r["text"].as_str().unwrap()
                )
            })
            .collect()
    };
    // At the start the socket holds what the command line said.
    let before = served(&read("net.json"));
    assert_eq!(before["pasta"]["socket_error"], Value::Null, "{before:#}");
    assert_eq!(rules(&before), ["HOST TCP [*]:18080  =>  80"], "{before:#}");
    let t = read("trace-inbound.json");
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    // After `pesto --add -t 18081:80`: the new rule is there, and traced through.
    let after = served(&read("net-after-pesto.json"));
    assert_eq!(
        rules(&after),
        ["HOST TCP [*]:18080  =>  80", "HOST TCP [*]:18081  =>  80"],
        "{after:#}"
    );
    assert_eq!(after["pasta"]["args"]["forwards"][0]["spec"], "18080:80");
    let text = std::fs::read_to_string(dir.path().join("net-after-pesto.txt")).unwrap();
    let pid = after["pasta"]["pid"].as_i64().unwrap();
    assert!(
        text.contains(&format!(
            "forwarded by pasta {pid} ({}): HOST TCP [*]:18080  =>  80; HOST TCP [*]:18081  =>  80\n",
            dir.path().join("pasta.sock").display()
        )),
        "{text}"
    );
    let t = read("trace-pesto.json");
    assert_eq!(verdict(&t).0, "reachable", "{t:#}");
    assert!(
        steps(&t).iter().any(|s| s.contains("forwards 18081 into")
            && s.contains("by its -c socket's rule \"TCP [*]:18081  =>  80\"")),
        "{t:#}"
    );
    assert_ends_in(&t, &after);
}

/// State the inspecting user cannot read is said once, not guessed around: a Docker data
/// root only root can list (made by root, named as the user's own by its XDG_DATA_HOME).
#[test]
fn root_only_an_unreadable_docker_data_root_is_said_once() {
    assert!(
        is_root(),
        "root-only test: scripts/test skips it for the unprivileged run"
    );
    world();
    let dir = shared_dir("nsnet-unreadable");
    let root = dir.path().join("share/docker/containers");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(
        dir.path().join("share/docker"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("share"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut c = Command::new("runuser");
    c.args(["-u", USER, "--", "env"])
        .arg(format!(
            "XDG_DATA_HOME={}",
            dir.path().join("share").display()
        ))
        .arg(nsnet_bin())
        .args(["ns", "net"]);
    let o = output(&mut c);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let uid = nix::unistd::User::from_name(USER).unwrap().unwrap().uid;
    let want = format!(
        "note: docker state at {} (the default for uid {uid}) not readable: cannot list {}: Permission denied (os error 13)",
        dir.path().join("share/docker").display(),
        root.display()
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("note: docker state"))
            .collect::<Vec<_>>(),
        [want.as_str()],
        "{text}"
    );
    let mut c = Command::new("runuser");
    c.args(["-u", USER, "--", "env"])
        .arg(format!(
            "XDG_DATA_HOME={}",
            dir.path().join("share").display()
        ))
        .arg(nsnet_bin())
        .args(["ns", "net", "--json"]);
    let v: Value = serde_json::from_slice(&output(&mut c).stdout).unwrap();
    let bad: Vec<&Value> = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["error"].is_string())
        .collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert_eq!(bad[0]["engine"], "docker");
}
