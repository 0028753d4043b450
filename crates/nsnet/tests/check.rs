//! `nsnet check` on this machine and `nsnet setup` against temporary homes.
//!
//! `check` runs for real, as root and as the unprivileged test user, and its findings are
//! compared with what the test setup provides (subordinate ranges, setuid helpers,
//! /dev/net/tun 0666, user namespaces). `setup` runs with HOME in a temporary directory and a
//! PATH whose `dockerd`/`podman`/`nerdctl` are stub executables — fixtures that make a client
//! count as installed, nothing more; every file, link and line `setup` produces is checked, and
//! the whole temporary tree is compared before, during and after so that `--undo` is exact
//! and nothing outside HOME changes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A temporary world for setup: `home/` (HOME) and `bin/` (PATH, with the stub clients
/// named), everything under one directory that is snapshotted whole.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(clients: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        for c in clients {
            let p = dir.path().join("bin").join(c);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    /// The stubs, then only /usr/bin and /bin: Debian's docker.io puts dockerd in /usr/sbin,
    /// and the suite itself installs it (for dockerd-rootless.sh), so a client counts as
    /// installed here only when the test names it.
    fn path_env(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin().display())
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.home().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.home().join(rel)).unwrap()
    }
    fn nsnet(&self, args: &[&str]) -> std::process::Output {
        let mut c = nsnet();
        c.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", self.path_env())
            .current_dir(self.dir.path());
        output(&mut c)
    }
    /// Every entry under the fixture: path → file bytes, link target or "dir".
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                let meta = p.symlink_metadata().unwrap();
                if meta.file_type().is_symlink() {
                    let t = std::fs::read_link(&p).unwrap();
                    out.insert(rel, format!("-> {}", t.display()));
                } else if meta.is_dir() {
                    out.insert(rel, "dir".into());
                    walk(base, &p, out);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    out.insert(
                        rel,
                        format!(
                            "{:o} {}",
                            meta.permissions().mode(),
                            String::from_utf8_lossy(&bytes)
                        ),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

/// The paths whose entries differ between two snapshots.
fn changed(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut keys: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// nsnet's executable as the links must name it (symlinks resolved).
fn exe() -> PathBuf {
    std::fs::canonicalize(nsnet_bin()).unwrap()
}

fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name
}

#[test]
fn check_finds_this_host_ready() {
    let o = output(nsnet().arg("check"));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let uid = nix::unistd::geteuid().as_raw();
    let first = out.lines().next().unwrap();
    if is_root() {
        assert_eq!(first, "nsnet check for root (uid 0), as root");
        assert!(
            out.contains("\nok      subordinate ids: not needed as root"),
            "{out}"
        );
        assert!(
            out.contains("\nok      newuidmap: /usr/bin/newuidmap (not needed as root)\n"),
            "{out}"
        );
    } else {
        assert_eq!(
            first,
            format!("nsnet check for {} (uid {uid})", user_name())
        );
        let (uid_map, _, full) = expected_maps();
        assert!(full, "the test user has subordinate ranges");
        // "0 UID 1\n1 START COUNT": the range line check prints is START-END (COUNT).
        let f: Vec<u64> = uid_map
            .lines()
            .nth(1)
            .unwrap()
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        let want = format!(
            "\nok      subordinate uids: {}-{} ({}) in /etc/subuid\n",
            f[1],
            f[1] + f[2] - 1,
            f[2]
        );
        assert!(out.contains(&want), "{want} in {out}");
        assert!(
            out.contains("\nok      newuidmap: /usr/bin/newuidmap is setuid root\n"),
            "{out}"
        );
        assert!(
            out.contains("\nok      newgidmap: /usr/bin/newgidmap is setuid root\n"),
            "{out}"
        );
    }
    assert!(
        out.contains("\nok      /dev/net/tun: a character device this user can open (mode 0666)\n"),
        "{out}"
    );
    assert!(
        out.contains("\nok      user namespaces: this user can create them"),
        "{out}"
    );
    // Each world is a fresh network namespace: the sysctl has its default there.
    assert!(
        out.contains("\nnote    low ports: net.ipv4.ip_unprivileged_port_start=1024: ports below 1024 cannot be published rootless\n        fix: sudo sysctl -w net.ipv4.ip_unprivileged_port_start=0 && "),
        "{out}"
    );
    assert!(out.ends_with("ready: nothing needed is missing\n"), "{out}");
}

#[test]
fn check_without_the_id_helpers_fails_for_a_user_only() {
    let f = Fixture::new(&[]);
    // A PATH with every usual directory but none holding newuidmap.
    let o = output(
        nsnet()
            .arg("check")
            .env("HOME", f.home())
            .env("PATH", f.bin()),
    );
    let out = stdout(&o);
    if is_root() {
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(
            out.contains("\nok      newuidmap: not found; not needed as root\n"),
            "{out}"
        );
    } else {
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains("\nPROBLEM newuidmap: not found on PATH: only a single id can be mapped\n        fix: sudo apt-get install uidmap\n"),
            "{out}"
        );
        assert!(out.contains("\nPROBLEM newgidmap: "), "{out}");
        assert!(out.ends_with("not ready: 2 problems\n"), "{out}");
    }
}

#[test]
fn check_reports_clients_and_whether_they_use_nsnet() {
    let f = Fixture::new(&["podman", "dockerd"]);
    let o = f.nsnet(&["check"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let bin = f.bin();
    let b = bin.display();
    assert!(
        out.contains(&format!(
            "\nnote    docker: {b}/dockerd does not use nsnet\n        fix: nsnet setup docker\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\nnote    podman: {b}/podman does not use nsnet\n"
        )),
        "{out}"
    );
    assert!(
        out.contains("\nnote    nerdctl: not installed (no nerdctl on PATH)\n"),
        "{out}"
    );

    assert_eq!(f.nsnet(&["setup", "podman"]).status.code(), Some(0));
    let out = stdout(&f.nsnet(&["check"]));
    let conf = f
        .home()
        .join(".config/containers/containers.conf.d/nsnet.conf");
    assert!(
        out.contains(&format!(
            "\nok      podman: {b}/podman uses nsnet ({})\n",
            conf.display()
        )),
        "{out}"
    );
    // A link removed behind setup's back is noticed.
    std::fs::remove_file(f.home().join(".local/bin/slirp4netns")).unwrap();
    let out = stdout(&f.nsnet(&["check"]));
    assert!(
        out.contains(&format!(
            "\nnote    podman: {b}/podman does not use nsnet\n"
        )),
        "{out}"
    );
}

#[test]
fn setup_refuses_a_client_that_is_not_installed_and_changes_nothing() {
    let f = Fixture::new(&["podman"]);
    let before = f.snapshot();
    for (client, program) in [("docker", "dockerd"), ("nerdctl", "nerdctl")] {
        let o = f.nsnet(&["setup", client]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stderr(&o),
            format!(
                "nsnet setup {client}: error: {client} is not installed (no {program} on PATH)\n"
            )
        );
        assert_eq!(stdout(&o), "");
    }
    let o = f.nsnet(&["setup", "podman", "--undo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("nsnet setup podman --undo: error: nothing to undo for podman"),
        "{}",
        stderr(&o)
    );
    assert_eq!(changed(&before, &f.snapshot()), Vec::<PathBuf>::new());
}

#[test]
fn setup_docker_links_writes_the_drop_in_and_undo_restores_exactly() {
    let f = Fixture::new(&["docker", "dockerd"]);
    // The unit dockerd-rootless-setuptool.sh writes: its PATH is what the drop-in extends.
    let unit = "[Unit]\nDescription=Docker Application Container Engine (Rootless)\n\n[Service]\nEnvironment=PATH=/opt/docker/bin:/sbin:/usr/sbin:/usr/bin:/bin\nExecStart=/opt/docker/bin/dockerd-rootless.sh\n";
    f.write(".config/systemd/user/docker.service", unit);
    f.write(".local/bin/unrelated", "mine\n");
    let before = f.snapshot();

    let o = f.nsnet(&["setup", "docker"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h = f.home();
    let hb = h.join(".local/bin");
    let e = exe();
    for l in ["docker-rootlesskit", "rootlesskit", "rootlessctl"] {
        assert_eq!(std::fs::read_link(hb.join(l)).unwrap(), e, "{l}");
    }
    let dropin = ".config/systemd/user/docker.service.d/nsnet.conf";
    let want = format!(
        "# Written by `nsnet setup docker`; `nsnet setup docker --undo` removes it.\n\
         # The rootless script runs the first rootlesskit on PATH: nsnet's, with nsnet's\n\
         # in-process network (--net=builtin) and its MTU.\n\
         [Service]\n\
         Environment=\"PATH={}:/opt/docker/bin:/sbin:/usr/sbin:/usr/bin:/bin\"\n\
         Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_NET=builtin\"\n\
         Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_MTU=65520\"\n\
         Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=builtin\"\n",
        hb.display()
    );
    assert_eq!(f.read(dropin), want);
    let out = stdout(&o);
    let d = h.display();
    let bin = f.bin();
    let want_out = format!(
        "nsnet setup docker:\n  docker: {}/dockerd found\n  linked {d}/.local/bin/docker-rootlesskit -> {e}\n  linked {d}/.local/bin/rootlesskit -> {e}\n  linked {d}/.local/bin/rootlessctl -> {e}\n  wrote {d}/{dropin}:\n      [Service]\n      Environment=\"PATH={d}/.local/bin:/opt/docker/bin:/sbin:/usr/sbin:/usr/bin:/bin\"\n      Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_NET=builtin\"\n      Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_MTU=65520\"\n      Environment=\"DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=builtin\"\n  recorded {d}/.local/share/nsnet/setup/docker.json (for --undo)\n  next: systemctl --user daemon-reload && systemctl --user restart docker\n",
        bin.display(),
        e = e.display()
    );
    assert_eq!(out, want_out);
    let during = f.snapshot();
    for p in changed(&before, &during) {
        assert!(
            p.starts_with("home"),
            "{} changed outside HOME",
            p.display()
        );
    }
    // The unit itself and the user's own files are untouched.
    assert_eq!(f.read(".config/systemd/user/docker.service"), unit);
    // Running it again changes nothing.
    let again = f.nsnet(&["setup", "docker"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("docker already uses nsnet"),
        "{}",
        stdout(&again)
    );
    assert_eq!(changed(&during, &f.snapshot()), Vec::<PathBuf>::new());

    let o = f.nsnet(&["setup", "docker", "--undo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "nsnet setup docker --undo:\n  removed {d}/.local/bin/docker-rootlesskit\n  removed {d}/.local/bin/rootlesskit\n  removed {d}/.local/bin/rootlessctl\n  removed {d}/{dropin}\n  removed {d}/.local/share/nsnet/setup/\n  removed {d}/.local/share/nsnet/\n  removed {d}/.local/share/\n  removed {d}/.config/systemd/user/docker.service.d/\n  next: systemctl --user daemon-reload && systemctl --user restart docker\n"
        )
    );
    assert_eq!(changed(&before, &f.snapshot()), Vec::<PathBuf>::new());
}

/// The drop-in's `Environment=` values, unquoted.
fn dropin_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Environment=\""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_docker_drop_in_launches_nsnets_network_as_dockerd_rootless_sh_would() {
    let f = Fixture::new(&["dockerd"]);
    assert_eq!(f.nsnet(&["setup", "docker"]).status.code(), Some(0));
    let env = dropin_env(&f.read(".config/systemd/user/docker.service.d/nsnet.conf"));
    // dockerd-rootless.sh: the first docker-rootlesskit, else rootlesskit, on the unit's PATH.
    let path = &env["PATH"];
    let rk = path
        .split(':')
        .map(|d| Path::new(d).join("docker-rootlesskit"))
        .find(|p| p.exists())
        .expect("docker-rootlesskit on the drop-in's PATH");
    assert_eq!(rk, f.home().join(".local/bin/docker-rootlesskit"));
    let p = "DOCKERD_ROOTLESS_ROOTLESSKIT";
    let o = output(Command::new(&rk).env("PATH", path).args([
        format!("--net={}", env[&format!("{p}_NET")]),
        format!("--mtu={}", env[&format!("{p}_MTU")]),
        "--slirp4netns-sandbox=auto".into(),
        "--slirp4netns-seccomp=auto".into(),
        "--disable-host-loopback".into(),
        format!("--port-driver={}", env[&format!("{p}_PORT_DRIVER")]),
        "--copy-up=/etc".into(),
        "--copy-up=/run".into(),
        "--propagation=rslave".into(),
        "ip".into(),
        "-o".into(),
        "link".into(),
        "show".into(),
        "tap0".into(),
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("mtu 65520"), "{}", stdout(&o));
}

#[test]
fn setup_nerdctl_without_a_unit_uses_this_path_and_undo_leaves_home_as_it_was() {
    let f = Fixture::new(&["nerdctl"]);
    let before = f.snapshot();
    let o = f.nsnet(&["setup", "nerdctl"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let hb = f.home().join(".local/bin");
    assert_eq!(
        f.read(".config/systemd/user/containerd.service.d/nsnet.conf"),
        format!(
            "# Written by `nsnet setup nerdctl`; `nsnet setup nerdctl --undo` removes it.\n\
             # The rootless script runs the first rootlesskit on PATH: nsnet's, with nsnet's\n\
             # in-process network (--net=builtin) and its MTU.\n\
             [Service]\n\
             Environment=\"PATH={}:{}\"\n\
             Environment=\"CONTAINERD_ROOTLESS_ROOTLESSKIT_NET=builtin\"\n\
             Environment=\"CONTAINERD_ROOTLESS_ROOTLESSKIT_MTU=65520\"\n\
             Environment=\"CONTAINERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=builtin\"\n",
            hb.display(),
            f.path_env()
        )
    );
    assert_eq!(std::fs::read_link(hb.join("rootlesskit")).unwrap(), exe());
    assert!(hb.join("docker-rootlesskit").symlink_metadata().is_err());
    // nerdctl's script greps `rootlesskit --help` for --detach-netns: the link answers it.
    let help = output(Command::new(hb.join("rootlesskit")).arg("--help"));
    assert!(stdout(&help).contains("--detach-netns"));
    for p in changed(&before, &f.snapshot()) {
        assert!(
            p.starts_with("home"),
            "{} changed outside HOME",
            p.display()
        );
    }
    assert_eq!(
        f.nsnet(&["setup", "nerdctl", "--undo"]).status.code(),
        Some(0)
    );
    assert_eq!(changed(&before, &f.snapshot()), Vec::<PathBuf>::new());
}

#[test]
fn setup_podman_keeps_containers_conf_byte_identical_and_its_helper_dirs() {
    let f = Fixture::new(&["podman"]);
    let conf = "# my settings\n[containers]\nlog_size_max = -1\n\n[engine]\nhelper_binaries_dir = [\"/opt/mine\"]  # conmon lives here\nevents_logger = \"file\"\n";
    f.write(".config/containers/containers.conf", conf);
    let before = f.snapshot();
    let o = f.nsnet(&["setup", "podman", "--bin-dir", "home/tools"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tools = f.home().join("tools");
    assert_eq!(
        f.read(".config/containers/containers.conf.d/nsnet.conf"),
        format!(
            "# Written by `nsnet setup podman`; `nsnet setup podman --undo` removes it.\n\
             # Podman looks for slirp4netns and pasta in helper_binaries_dir before PATH.\n\
             [engine]\n\
             helper_binaries_dir = [\n  \"{}\",\n  \"/opt/mine\",\n  \"/usr/local/libexec/podman\",\n  \"/usr/local/lib/podman\",\n  \"/usr/libexec/podman\",\n  \"/usr/lib/podman\",\n]\nnetwork_cmd_path = \"{}/slirp4netns\"\n",
            tools.display(),
            tools.display()
        )
    );
    assert_eq!(f.read(".config/containers/containers.conf"), conf);
    assert_eq!(
        std::fs::read_link(tools.join("slirp4netns")).unwrap(),
        exe()
    );
    let v = output(Command::new(tools.join("slirp4netns")).arg("--version"));
    assert!(
        stdout(&v).starts_with("slirp4netns version"),
        "{}",
        stdout(&v)
    );
    assert!(
        stdout(&o).ends_with("  next: new Podman containers use it (podman system migrate restarts the pause process)\n"),
        "{}",
        stdout(&o)
    );
    let undo = f.nsnet(&["setup", "podman", "--undo"]);
    assert_eq!(undo.status.code(), Some(0), "{}", stderr(&undo));
    assert_eq!(changed(&before, &f.snapshot()), Vec::<PathBuf>::new());
    assert_eq!(f.read(".config/containers/containers.conf"), conf);
}

#[test]
fn setup_refuses_what_is_not_its_own_before_changing_anything() {
    let f = Fixture::new(&["dockerd", "podman"]);
    f.write(".local/bin/rootlesskit", "#!/bin/sh\n# the real one\n");
    f.write(
        ".config/containers/containers.conf.d/nsnet.conf",
        "[engine]\n",
    );
    let before = f.snapshot();
    let o = f.nsnet(&["setup", "docker"]);
    assert_eq!(o.status.code(), Some(1));
    let d = f.home();
    assert_eq!(
        stderr(&o),
        format!(
            "nsnet setup docker: error: {}/.local/bin/rootlesskit exists and is not a link to {}: move it away first\n",
            d.display(),
            exe().display()
        )
    );
    let o = f.nsnet(&["setup", "podman"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).ends_with(
            "nsnet.conf exists and was not written by nsnet setup: move it away first\n"
        ),
        "{}",
        stderr(&o)
    );
    let o = f.nsnet(&["setup", "podman", "--bin-dir", "/tmp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--bin-dir /tmp is outside HOME"),
        "{}",
        stderr(&o)
    );
    assert_eq!(changed(&before, &f.snapshot()), Vec::<PathBuf>::new());
}

#[test]
fn undo_keeps_what_the_user_changed_since() {
    let f = Fixture::new(&["nerdctl"]);
    assert_eq!(f.nsnet(&["setup", "nerdctl"]).status.code(), Some(0));
    // The user replaces a link and adds a file beside the drop-in.
    let link = f.home().join(".local/bin/rootlessctl");
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, "mine\n").unwrap();
    f.write(
        ".config/systemd/user/containerd.service.d/override.conf",
        "[Service]\n",
    );
    let o = f.nsnet(&["setup", "nerdctl", "--undo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(no longer nsnet's link)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "mine\n");
    assert_eq!(
        f.read(".config/systemd/user/containerd.service.d/override.conf"),
        "[Service]\n"
    );
    assert!(
        f.home()
            .join(".local/bin/rootlesskit")
            .symlink_metadata()
            .is_err()
    );
}
